package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
)

// TestUpstreamLogText: the body of an upstream error answer that is no
// OAuth error is cut from the logged text, the status kept; an OAuth error
// keeps its code and description.
func TestUpstreamLogText(t *testing.T) {
	page := []byte("<html>echo: ada@example.com code=abc</html>")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("code exchange: %w", &oauth2.RetrieveError{Response: &http.Response{Status: "502 Bad Gateway"}, Body: page}),
			"code exchange: oauth2: cannot fetch token: 502 Bad Gateway (response body not logged)"},
		{fmt.Errorf("code exchange: %w", &oauth2.RetrieveError{Response: &http.Response{Status: "400 Bad Request"}, Body: page, ErrorCode: "invalid_grant", ErrorDescription: "expired"}),
			`code exchange: oauth2: "invalid_grant" "expired"`},
		{fmt.Errorf("userinfo: %w", fmt.Errorf("http status not ok: %s %s", "500 Internal Server Error", page)),
			"userinfo: http status not ok: 500 (response body not logged)"},
		{fmt.Errorf("userinfo: %v", fmt.Errorf("http status not ok: %s %s", "401 Unauthorized", page)),
			"userinfo: http status not ok: 401 (response body not logged)"},
		{errors.New("id_token: signature invalid"), "id_token: signature invalid"},
	} {
		if got := upstreamLogText(tc.err); got != tc.want {
			t.Errorf("upstreamLogText(%q)\n = %q\nwant %q", tc.err, got, tc.want)
		}
	}
}
