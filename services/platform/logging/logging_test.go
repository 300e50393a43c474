package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
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
