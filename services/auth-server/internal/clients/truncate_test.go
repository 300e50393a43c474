package clients

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"", 0, ""},
		{"ab\u00e9", 3, "ab…"},      // é is 2 bytes: not cut in half
		{"ab\u00e9", 4, "ab\u00e9"}, // exactly n bytes
		{"\u20ac\u20ac", 4, "\u20ac…"},
		{strings.Repeat("x", 100), QuoteLimit, strings.Repeat("x", 64) + "…"},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestMetadataDuplicateLongNameQuotedWhole: a repeated member name longer
// than the quote limit is cut at a character boundary with "…": the
// description is valid UTF-8. Before, a cut inside a character left half
// of it in the description.
func TestMetadataDuplicateLongNameQuotedWhole(t *testing.T) {
	name := strings.Repeat("a", 63) + "\u00e9x"
	var id string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"client_id":"` + id + `","` + name + `":1,"` + name + `":2}`))
	}))
	defer srv.Close()
	id = srv.URL + "/c.json"
	_, _, err := NewMetadataFetcher(FetchOptions{AllowPrivate: true}).Fetch(context.Background(), id)
	want := `member "` + strings.Repeat("a", 63) + `…" appears more than once`
	if err == nil || !strings.Contains(err.Error(), want) || !utf8.ValidString(err.Error()) {
		t.Errorf("%v, want a valid UTF-8 refusal containing %q", err, want)
	}
}
