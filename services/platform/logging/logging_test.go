package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSecretsNeverReachTheLog(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX2J5dGVz"
	var buf bytes.Buffer
	log := New(&buf, "json", slog.LevelDebug, "test")
	log.Info("request",
		"authorization", "Bearer "+jwt,
		"client_secret", "s3cr3t-value",
		"http.cookie", "__Host-session=abc",
		"url", "/oauth/token?code=c0de-value&state=ok",
		"redis", "redis://default:hunter2@redis:6379/0",
		"err", errors.New("upstream said: Bearer abc.def.ghi and "+jwt),
		"detail", "refresh_token=rt-value&client_id=gpt",
		"code", "authz-code-value",
		"grpc.code", "OK",
	)
	out := buf.String()
	for _, leaked := range []string{jwt, "s3cr3t-value", "abc", "c0de-value", "hunter2", "rt-value", "abc.def.ghi", "authz-code-value"} {
		if strings.Contains(out, leaked) {
			t.Errorf("log contains secret %q:\n%s", leaked, out)
		}
	}
	for _, kept := range []string{"client_id=gpt", "redis:6379/0", `"service":"test"`, "upstream said", `"grpc.code":"OK"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("log lost non-secret %q:\n%s", kept, out)
		}
	}
}

// TestScrubURLUserInfoAndOpaqueTokens: the user information of a URL of
// any scheme and the auth-server's opaque tokens (fosite's ory_at_,
// ory_rt_, ory_ac_ prefixes) are redacted wherever they appear in free
// text — a client_id sent as "https://u:SECRET@x.example/cb" or as a
// refresh token is logged as the request sent it; text that only looks
// alike is left as it is.
func TestScrubURLUserInfoAndOpaqueTokens(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:SECRET@x.example/cb":              "https://[REDACTED]@x.example/cb",
		"unknown client https://SECRET@x.example":    "unknown client https://[REDACTED]@x.example",
		"HTTP://u:SECRET@127.0.0.1:8976/cb":          "HTTP://[REDACTED]@127.0.0.1:8976/cb",
		"postgres://app:SECRET@db:5432/x?sslmode=on": "postgres://[REDACTED]@db:5432/x?sslmode=on",
		"svc+grpc://:SECRET@h":                       "svc+grpc://[REDACTED]@h",
		"redis://default:SECRET@redis:6379/0":        "redis://[REDACTED]@redis:6379/0",
		"rediss://:SEC/RET@redis:6380":               "rediss://[REDACTED]@redis:6380",
		"a https://u:SECRET@h and http://v:SECRET@i": "a https://[REDACTED]@h and http://[REDACTED]@i",
		"ory_rt_SECRETkey-_.SECRETmac_-":             "ory_rt_[REDACTED]",
		"client ory_ac_SECRET.SECRET unknown":        "client ory_ac_[REDACTED] unknown",
		"token ory_at_SECRET.SECRET, expired":        "token ory_at_[REDACTED], expired",
		`"ory_rt_SECRET"`:                            `"ory_rt_[REDACTED]"`,
		// Not secrets: no user information, an "@" after the host, a mail
		// address, other prefixes.
		"https://x.example/cb":              "https://x.example/cb",
		"https://x.example/u/ada@x.example": "https://x.example/u/ada@x.example",
		"https://x.example/cb?to=a@b":       "https://x.example/cb?to=a@b",
		"https://x.example/cb#a@b":          "https://x.example/cb#a@b",
		"ada@example.com":                   "ada@example.com",
		"mailto:ada@example.com":            "mailto:ada@example.com",
		"ory_xx_abc ORY_RT_abc ory_rt_":     "ory_xx_abc ORY_RT_abc ory_rt_",
		"memory_rt_cache":                   "memory_rt_cache",
		// A URL in JSON followed by a mail address: the match stops at
		// the characters user information may hold.
		`{"issuer":"https://idp.example","contact":"ops@idp.example"}`: `{"issuer":"https://idp.example","contact":"ops@idp.example"}`,
		// Percent-encoded, as a Basic client id is sent (RFC 6749
		// §2.3.1), also with an invalid sequence the decoder refuses.
		"https%3A%2F%2Fu%3AS3CRETpw%40x.example%2Fcb%zz": "https://[REDACTED]@x.example/cb%zz",
		"ory_rt_S3CRET%2ES3CRET":                         "ory_rt_[REDACTED]",
		"https%3A%2F%2Fx.example%2Fcb":                   "https%3A%2F%2Fx.example%2Fcb",
		"https://u:pa^ss|{S}@x.example/cb":               "https://[REDACTED]@x.example/cb",
		"100%":                                           "100%",
	} {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
	var buf bytes.Buffer
	New(&buf, "json", slog.LevelInfo, "svc").Info("authorize: unknown client",
		"client_id", "https://u:SECRET@x.example/cb", "err", errors.New(`client "ory_rt_SECRET.SECRET" not found`))
	if out := buf.String(); strings.Contains(out, "SECRET") || !strings.Contains(out, "x.example/cb") || !strings.Contains(out, "ory_rt_") {
		t.Errorf("log line:\n%s", out)
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", slog.LevelInfo, "svc").Debug("hidden")
	New(&buf, "text", slog.LevelInfo, "svc").Info("shown", "password", "pw")
	if strings.Contains(buf.String(), "hidden") || strings.Contains(buf.String(), "pw\n") || !strings.Contains(buf.String(), "service=svc") {
		t.Fatalf("unexpected text log: %q", buf.String())
	}
}

// TestValuesBounded: a value of any size becomes at most MaxValueBytes (cut
// at a UTF-8 boundary) plus its original length; a secret in it is still
// redacted; short values are unchanged.
func TestValuesBounded(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", slog.LevelInfo, "svc")
	huge := "é" + strings.Repeat("ab", MaxValueBytes) + "é"
	tok := "Bearer abcdefghijklmnop"
	log.Info("m", "client_id", huge, "note", tok+" "+strings.Repeat("x", 5*MaxValueBytes), "short", "ok", "err", errors.New(huge))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "err"} {
		v := line[k].(string)
		want := "…[" + strconv.Itoa(len(huge)) + " bytes]"
		if !strings.HasSuffix(v, want) || len(v) > MaxValueBytes+len(want) || !utf8.ValidString(v) {
			t.Errorf("%s: %d bytes, ends %q, want ≤ %d bytes ending %q", k, len(v), v[len(v)-20:], MaxValueBytes+len(want), want)
		}
	}
	if note := line["note"].(string); strings.Contains(note, "abcdefghijklmnop") || !strings.HasPrefix(note, Redacted) {
		t.Errorf("the secret of a long value is not redacted: %.60s", note)
	}
	if line["short"] != "ok" {
		t.Errorf("short value changed: %v", line["short"])
	}
	if got := Bound("ok"); got != "ok" {
		t.Errorf("Bound(ok) = %q", got)
	}
}

// TestScrubSkipsOnlyWhatCannotMatch: Scrub's shortcut (maySecret) returns
// a value as it is only when no expression could match it — the same
// result as running them all, for secrets in every case and shape and for
// random text over the characters they look for.
func TestScrubSkipsOnlyWhatCannotMatch(t *testing.T) {
	cases := []string{
		"", "ok", "/oauth/token", "POST", "request", "gpt-apps-mcp", "0123456789abcdef",
		"Bearer abcdefghijklmnop", "BEARER abc", "bEaReR\tabc", "Basic dXNlcjpwYXNz", "baſic dXNlcjpwYXNz", "x basic y",
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.",
		"code=abc", "https://h/cb?CODE=abc&state=x", "client_secret=s3cr3t", "redis://user:pw@redis:6379", "REDISS://:pw@h",
		"https://u:SECRET@x.example/cb", "ftp://tok@h", "ory_rt_abc.def", "ory_ac_x", "ory_at_", "ory_xx_abc", "xory_rt_a",
		"é", "bearer", "basic", "eyJ", "ory_",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "B", "e", "E", "y", "J", "r", "R", "s", "S", "ſ", "i", "c", "C", "=", "@", ":", "/", " ", "\t", ".", "x", "_", "-", "0", "code", "bearer ", "Basic ", "eyJ", "redis://",
		"o", "ory_", "rt_", "ac_", "at_", "https://", "://", "?", "#"}
	for range 20000 {
		var sb strings.Builder
		for range rng.IntN(24) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, sb.String())
	}
	for _, s := range cases {
		if got, want := Scrub(s), scrub(s); got != want {
			t.Errorf("Scrub(%q) = %q, the expressions give %q", s, got, want)
		}
	}
	for _, s := range []string{"Bearer abcdefghijklmnop", "baſic dXNlcjpwYXNz", "redis://user:pw@redis:6379", "https://u:pw@h", "ory_rt_abc"} {
		if Scrub(s) == s {
			t.Errorf("Scrub(%q) left the secret", s)
		}
	}
}

// BenchmarkScrub: the values of an access-log line, with and without the
// shortcut (expressions: every expression on every value).
func BenchmarkScrub(b *testing.B) {
	values := []string{"request", "POST", "/oauth/token", "4bf92f3577b34da6a3ce929d0e0e4736", "gpt-apps-mcp"}
	b.Run("shortcut", func(b *testing.B) {
		for b.Loop() {
			for _, v := range values {
				Scrub(v)
			}
		}
	})
	b.Run("expressions", func(b *testing.B) {
		for b.Loop() {
			for _, v := range values {
				scrub(v)
			}
		}
	})
}

// secretValuer is a LogValuer whose value is a secret, or a group holding
// one.
type secretValuer struct{ group bool }

func (v secretValuer) LogValue() slog.Value {
	if v.group {
		return slog.GroupValue(slog.String("password", "pw-valuer"), slog.String("url", "https://u:pw-url@h/x"))
	}
	return slog.StringValue("Bearer abcdefghijklmnop-valuer")
}

// TestRedactHandlerAsReplaceAttr: New's loggers write, in both formats,
// byte for byte what slog's own handlers write with redaction as their
// ReplaceAttr option (how New redacted until 2026-12-06) — records with
// and without secrets, in attributes, groups, nested and empty groups,
// LogValuers, errors, the message, WithAttrs and WithGroup.
func TestRedactHandlerAsReplaceAttr(t *testing.T) {
	replace := func(_ []string, a slog.Attr) slog.Attr { r, _ := redacted(a); return r }
	when := time.Date(2026, 12, 6, 1, 2, 3, 456789000, time.UTC)
	long := strings.Repeat("é", MaxValueBytes)
	pool := []slog.Attr{
		slog.String("route", "/oauth/token"), slog.String("client_id", "gpt-apps-mcp"), slog.Int("status", 200),
		slog.Float64("duration_ms", 1.25), slog.Bool("ok", true), slog.Duration("d", 3*time.Millisecond),
		slog.Time("at", when), slog.Any("n", nil), slog.Any("list", []string{"a", "b"}), slog.Any("m", map[string]int{"a": 1}),
		slog.String("client_secret", "s3cr3t"), slog.String("CODE", "c0de"), slog.String("grpc.code", "OK"),
		slog.String("note", "refresh_token=rt-value&x=1"), slog.String("url", "redis://default:hunter2@redis:6379/0"),
		slog.String("big", long), slog.String("empty", ""), slog.Any("err", errors.New("Bearer abc.def.ghi failed")),
		slog.Any("err2", errors.New("plain")), slog.Any("v", secretValuer{}), slog.Any("vg", secretValuer{group: true}),
		slog.Group("g", slog.String("token", "tok"), slog.String("k", "v"), slog.Group("inner", slog.String("password", "pw"))),
		slog.Group("clean", slog.String("k", "v"), slog.Int("i", 1)), slog.Group("empty"), slog.Group("", slog.String("inline", "x"), slog.String("secret", "s")),
		slog.Group("password", slog.String("k", "v")), slog.Attr{}, slog.String("", "no key"),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	messages := []string{"request", "", "upstream said Bearer abcdefghijk", long}
	for _, format := range []string{"json", "text"} {
		for i := range 200 {
			var got, want bytes.Buffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			ref := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: replace}
			var h, r slog.Handler
			if format == "json" {
				h, r = contextHandler{redactHandler{slog.NewJSONHandler(&got, opts)}}, contextHandler{slog.NewJSONHandler(&want, ref)}
			} else {
				h, r = contextHandler{redactHandler{slog.NewTextHandler(&got, opts)}}, contextHandler{slog.NewTextHandler(&want, ref)}
			}
			pick := func(n int) []slog.Attr {
				as := make([]slog.Attr, n)
				for j := range as {
					as[j] = pool[rng.IntN(len(pool))]
				}
				return as
			}
			if i%3 == 1 {
				as := pick(1 + rng.IntN(3))
				h, r = h.WithAttrs(as), r.WithAttrs(as)
			}
			if i%4 == 2 {
				h, r = h.WithGroup("grp"), r.WithGroup("grp")
			}
			rec := slog.NewRecord(when, slog.LevelInfo, messages[rng.IntN(len(messages))], 0)
			rec.AddAttrs(pick(rng.IntN(9))...)
			ctx := WithRequestID(context.Background(), "req-1")
			if err := h.Handle(ctx, rec.Clone()); err != nil {
				t.Fatal(err)
			}
			if err := r.Handle(ctx, rec.Clone()); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("%s line %d:\n got  %s\n want %s", format, i, got.String(), want.String())
			}
		}
	}
}

// countingValuer counts its LogValue calls.
type countingValuer struct{ n *int }

func (v countingValuer) LogValue() slog.Value { *v.n++; return slog.StringValue("v") }

// TestLogValuerResolvedOnce: redaction resolves a LogValuer, and the line
// holds that value: LogValue runs once per line, as with ReplaceAttr.
func TestLogValuerResolvedOnce(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		n := 0
		New(&buf, format, slog.LevelInfo, "svc").Info("m", "k", countingValuer{&n}, slog.Group("g", "k2", countingValuer{&n}))
		if n != 2 {
			t.Errorf("%s: LogValue ran %d times for 2 values", format, n)
		}
	}
}

// TestIsSecretKeyRemembered: IsSecretKey answers alike for a key seen
// before (remembered) and for one seen the first time, in any case and
// after a dot, also past the keys it remembers.
func TestIsSecretKeyRemembered(t *testing.T) {
	keys := map[string]bool{
		"authorization": true, "HTTP.Authorization": true, "client_secret": true, "x.token": true, "code": true,
		"CODE": true, "grpc.code": false, "state": true, "a.state": false, "key": true, "redis.key": false,
		"route": false, "client_id": false, "duration_ms": false, "Mcp-Session-Id": true, "": false,
	}
	for range 2 {
		for k, want := range keys {
			if got := IsSecretKey(k); got != want {
				t.Errorf("IsSecretKey(%q) = %v, want %v", k, got, want)
			}
		}
	}
	for i := range 2 * secretKeyCacheSize {
		k := "k" + strconv.Itoa(i)
		if IsSecretKey(k) || IsSecretKey(k+".password") != true {
			t.Fatalf("key %d answered wrong", i)
		}
	}
	if m := secretKeyCache.m.Load(); m == nil || len(*m) != secretKeyCacheSize {
		t.Errorf("remembered keys: %v, want %d", m, secretKeyCacheSize)
	}
	for k, want := range keys {
		if got := IsSecretKey(k); got != want {
			t.Errorf("full cache: IsSecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}
