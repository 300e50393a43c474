package store

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"reflect"
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
		if err := json.Unmarshal([]byte(rest), &part); err != nil {
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
	if !ok || rest != `{"a":[1,{"session":0}]}` || value != `{"x":"}"}` {
		t.Errorf("splitLast = %q, %q, %v", rest, value, ok)
	}
}
