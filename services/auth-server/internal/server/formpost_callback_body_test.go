package server_test

import (
	"bytes"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestFormPostCallbackBodies: the form_post callback takes a form body
// only, whatever else a browser or an attacker sends: a charset parameter
// is a form still; multipart, JSON or text, a repeated parameter, and a
// body over the form limit are refused 400 with what is wrong, and none of
// them spends the sign-in's state (the form then completes).
func TestFormPostCallbackBodies(t *testing.T) {
	f, p := startShaped(t, idptest.Shape{ResponseModes: []string{"form_post"}, UserinfoClaims: fullProfile},
		map[string]string{"UPSTREAM_RESPONSE_MODE": "form_post"})
	c := f.Clients["local-test"]
	post := func(ans upstreamAnswer, ct string, body []byte) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, ans.Callback, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Origin", p.Server.URL)
		req.AddCookie(&http.Cookie{Name: ans.Cookie.Name, Value: ans.Cookie.Value})
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	t.Run("a charset parameter is a form", func(t *testing.T) {
		a := newAuthRequest(c)
		ans := f.startUpstreamLogin(t, a)
		resp, body := post(ans, "application/x-www-form-urlencoded; charset=UTF-8", []byte(ans.Params.Encode()))
		codeFrom(t, a, resp, body)
	})
	for name, tc := range map[string]struct {
		ct   func(ans upstreamAnswer) (string, []byte)
		want string
	}{
		"multipart": {func(ans upstreamAnswer) (string, []byte) {
			var b bytes.Buffer
			w := multipart.NewWriter(&b)
			for k := range ans.Params {
				_ = w.WriteField(k, ans.Params.Get(k))
			}
			_ = w.Close()
			return w.FormDataContentType(), b.Bytes()
		}, "the callback POST must be a form (Content-Type: application/x-www-form-urlencoded)"},
		"JSON": {func(ans upstreamAnswer) (string, []byte) {
			return "application/json", []byte(`{"state":"` + ans.Params.Get("state") + `","code":"` + ans.Params.Get("code") + `"}`)
		}, "the callback POST must be a form"},
		"text/plain (a CORS simple request)": {func(ans upstreamAnswer) (string, []byte) {
			return "text/plain", []byte(ans.Params.Encode())
		}, "the callback POST must be a form"},
		"a repeated state": {func(ans upstreamAnswer) (string, []byte) {
			return "application/x-www-form-urlencoded", []byte(ans.Params.Encode() + "&state=other")
		}, "parameter state is repeated"},
		"a body over the form limit": {func(ans upstreamAnswer) (string, []byte) {
			return "application/x-www-form-urlencoded", []byte(ans.Params.Encode() + "&user=" + strings.Repeat("a", 2<<20))
		}, "the request body is larger than 65536 bytes"},
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			a := newAuthRequest(c)
			ans := f.startUpstreamLogin(t, a)
			ct, body := tc.ct(ans)
			status := http.StatusBadRequest
			if strings.Contains(tc.want, "larger than") {
				status = http.StatusRequestEntityTooLarge // RFC 9110 §15.5.14 (TestBodyOverTheLimitIs413)
			}
			resp, got := post(ans, ct, body)
			if resp.StatusCode != status || !strings.Contains(html.UnescapeString(got), tc.want) {
				t.Fatalf("%d, want %d saying %q:\n%.400s", resp.StatusCode, status, tc.want, got)
			}
			resp, got = post(ans, "application/x-www-form-urlencoded", []byte(ans.Params.Encode()))
			codeFrom(t, a, resp, got)
		})
	}
}
