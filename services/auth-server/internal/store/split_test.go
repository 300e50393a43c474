package store

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSplitLastMatchesEncodingJSON checks splitLast against encoding/json on
// records as encode writes them, with form keys and values, scopes and
// session strings chosen to look like the key it looks for ("session",
// `,"session":`, quotes, backslashes, brackets): the object without the
// member decodes to the same fields, and the value is the member's JSON.
func TestSplitLastMatchesEncodingJSON(t *testing.T) {
	tricky := []string{"session", `,"session":`, `"session":{`, `\`, `\"`, `"`, "}", "]", "{[", "s", `"s":`, "é", "\x00", ""}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string {
		s := ""
		for range rng.IntN(4) {
			s += tricky[rng.IntN(len(tricky))]
		}
		return s
	}
	for i := range 2000 {
		form := url.Values{}
		for range rng.IntN(4) {
			form[pick()] = []string{pick(), pick()}
		}
		session := map[string]any{"subject": pick(), pick(): []any{pick(), map[string]any{"session": pick()}}}
		b, err := json.Marshal(record{ID: pick(), RequestedAt: time.Unix(int64(i), 0).UTC(), ClientID: pick(),
			GrantedScope: []string{pick(), pick()}, Form: form, Session: session})
		if err != nil {
			t.Fatal(err)
		}
		rest, value, ok := splitLast(string(b), `"session":`)
		if !ok {
			t.Fatalf("record %d: not split: %s", i, b)
		}
		var whole, part record
		var wholeSession, partSession any
		whole.Session, part.Session = &wholeSession, nil
		if err := json.Unmarshal(b, &whole); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(rest, &part); err != nil {
			t.Fatalf("record %d: the rest %q does not decode: %v", i, rest, err)
		}
		if err := json.Unmarshal([]byte(value), &partSession); err != nil {
			t.Fatalf("record %d: the value %q does not decode: %v", i, value, err)
		}
		whole.Session = nil
		if !reflect.DeepEqual(whole, part) || !reflect.DeepEqual(wholeSession, partSession) {
			t.Fatalf("record %d: split differs:\nwhole %+v %v\npart  %+v %v", i, whole, wholeSession, part, partSession)
		}
	}
}

// TestSplitLastRefuses: what splitLast cannot split exactly is left to
// encoding/json (ok false), never split wrongly.
func TestSplitLastRefuses(t *testing.T) {
	for _, obj := range []string{
		``, `{}`, `[]`, `{"session":{}}`, // the only member: no comma before it
		`{"a":1,"session":{},"b":2}`, // not the last member
		`{"a":{"b":1,"session":2}}`,  // not at the top level
		`{"a":"x,\"session\":1"}`,    // inside a string
		`{"a":1, "session":{}}`,      // whitespace
		`{"a":1,"session":{}`,        // truncated
		`{"a":"1,"session":{}}`,      // unbalanced string
	} {
		if rest, value, ok := splitLast(obj, `"session":`); ok {
			t.Errorf("splitLast(%q) = %q, %q, true; want false", obj, rest, value)
		}
	}
	rest, value, ok := splitLast(`{"a":[1,{"session":0}],"session":{"x":"}"}}`, `"session":`)
	if !ok || string(rest) != `{"a":[1,{"session":0}]}` || value != `{"x":"}"}` {
		t.Errorf("splitLast = %q, %q, %v", rest, value, ok)
	}
}

// BenchmarkDecodeCodeRecord compares the two ways decodeScoped reads a
// stored request whose session this request already holds (a code
// grant's second, third and fourth reads): encoding/json over the whole
// record with the session as a json.RawMessage (before), and splitLast
// then encoding/json over the request's fields only (now). The record is
// shaped like a code's: an authorize form and a ~0.7 KB session. Linux
// only (thread CPU time, cpu-ns/op).
func BenchmarkDecodeCodeRecord(b *testing.B) {
	rec := benchRecord(b)
	held := string(rec[strings.Index(string(rec), `,"session":`)+len(`,"session":`) : len(rec)-1])
	b.Logf("record %d bytes, session %d bytes", len(rec), len(held))
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		defer threadCPUPerOp(b)()
		for b.Loop() {
			var raw json.RawMessage
			r := record{Session: &raw}
			if err := json.Unmarshal(rec, &r); err != nil || string(raw) != held {
				b.Fatal(err)
			}
		}
	})
	s := string(rec)
	b.Run("split", func(b *testing.B) {
		b.ReportAllocs()
		defer threadCPUPerOp(b)()
		for b.Loop() {
			shell, raw, ok := splitLast(s, `"session":`)
			var r record
			if err := json.Unmarshal(shell, &r); err != nil || !ok || raw != held {
				b.Fatal(err)
			}
		}
	})
}

// threadCPUPerOp locks the benchmark to its thread and, when the returned
// func runs, reports the thread's CPU time per op (cpu-ns/op): on a
// loaded machine wall-clock ns/op measures the load more than the code.
func threadCPUPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(rusageThread, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	t0 := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-t0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

// rusageThread is Linux's RUSAGE_THREAD.
const rusageThread = 1

// benchRecord is a stored request shaped like a code's.
func benchRecord(b *testing.B) []byte {
	profile := map[string]any{"name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
		"preferred_username": "ada", "email": "ada@example.com", "email_verified": true}
	session := map[string]any{
		"id_token_claims": map[string]any{"iss": "https://auth.example.com", "sub": "user-1234567890", "aud": []string{"gpt-apps-mcp"},
			"nonce": "n-0S6_WzA2Mj", "rat": 1764500000, "auth_time": 1764500000, "ext": profile},
		"headers":    map[string]any{"extra": map[string]any{"kid": "key-2026-11"}},
		"expires_at": map[string]any{"access_token": "2026-11-30T12:00:00Z", "refresh_token": "2026-12-30T12:00:00Z", "authorize_code": "2026-11-30T11:10:00Z"},
		"username":   "ada", "subject": "user-1234567890", "profile": profile,
	}
	rec, err := json.Marshal(record{ID: "2b7e1516-28ae-4d2a-abf7-158809cf4f3c", RequestedAt: time.Unix(1764500000, 0).UTC(), ClientID: "gpt-apps-mcp",
		RequestedScope: []string{"openid", "profile", "email", "offline_access"}, GrantedScope: []string{"openid", "profile", "email", "offline_access"},
		Form: url.Values{"redirect_uri": {"https://chatgpt.com/connector_platform_oauth_redirect"}, "state": {"af0ifjsldkj-0123456789"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
			"response_type": {"code"}, "scope": {"openid profile email offline_access"}, "client_id": {"gpt-apps-mcp"}, "nonce": {"n-0S6_WzA2Mj"}},
		Session: session})
	if err != nil {
		b.Fatal(err)
	}
	return rec
}
