package clients

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestFetchAnsweredNamesTheStatus: a metadata document fetch answered with
// a status other than 200 says the status its server answered — and that
// redirects are not followed only for a 3xx — definitive for 404, 410 and
// 302, no answer (ErrFetchUnavailable) for 500. Before, every such answer
// read "fetch answered 404 (redirects are not followed)" with its own
// number: a 404 or a 410 was said to be about redirects.
func TestFetchAnsweredNamesTheStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(strings.Trim(r.URL.Path, "/"))
		if status >= 300 && status <= 399 {
			w.Header().Set("Location", "/200")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	f := NewMetadataFetcher(FetchOptions{AllowPrivate: true})
	for _, tc := range []struct {
		status      int
		reason      string
		unavailable bool
	}{
		{404, "fetch answered 404", false},
		{410, "fetch answered 410", false},
		{302, "fetch answered 302, a redirect (redirects are not followed)", false},
		{301, "fetch answered 301, a redirect (redirects are not followed)", false},
		{500, "fetch answered 500", true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			_, _, err := f.Fetch(context.Background(), srv.URL+"/"+strconv.Itoa(tc.status))
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("%v, want a MetadataError", err)
			}
			if me.Reason != tc.reason || errors.Is(err, ErrFetchUnavailable) != tc.unavailable {
				t.Errorf("reason %q (unavailable %v), want %q (unavailable %v)", me.Reason, errors.Is(err, ErrFetchUnavailable), tc.reason, tc.unavailable)
			}
		})
	}
}
