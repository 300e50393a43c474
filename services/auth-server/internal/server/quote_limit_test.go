package server_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestQuotedValuesCutWhole: a request value an error description quotes is
// cut at 64 bytes on a character boundary and marked "…" — a Content-Type
// at the token endpoint, a repeated member name at registration (one
// helper, clients.Truncate) — then written in error_description's
// characters: each "é" is "?", the mark "..." (RFC 6749 §5.2,
// TestErrorDescriptionsStayInRFC6749Set). Before, the Content-Type was cut
// inside a character (its quote ended in \xc3) and without a mark.
func TestQuotedValuesCutWhole(t *testing.T) {
	f := startFleet(t, map[string]string{"DCR_ENABLED": "true"})
	ct := "application/x" + strings.Repeat("\u00e9", 40)
	st, code, desc := guardAnswer(t, f, "/oauth/token", []string{ct}, "", "grant_type=refresh_token&refresh_token=x")
	want := `the Content-Type header 'application/x` + strings.Repeat("?", 25) + `...' is not a valid media type (RFC 9110 section 8.3.1)`
	if st != http.StatusBadRequest || code != "invalid_request" || !strings.HasPrefix(desc, want) || !utf8.ValidString(desc) {
		t.Errorf("%d %s %q, want 400 invalid_request starting %q", st, code, desc, want)
	}
	name := strings.Repeat("a", 63) + "\u00e9x"
	body := `{"redirect_uris":["http://127.0.0.1:8986/cb"],"` + name + `":1,"` + name + `":2}`
	st, code, desc = guardAnswer(t, f, "/oauth/register", []string{"application/json"}, "", body)
	want = `member '` + strings.Repeat("a", 63) + `...' appears more than once in the client metadata (RFC 8259 section 4: names must be unique)`
	if st != http.StatusBadRequest || code != "invalid_client_metadata" || desc != want {
		t.Errorf("%d %s %q, want 400 invalid_client_metadata %q", st, code, desc, want)
	}
}
