package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestBackoffWhateverTheBasicSpacing: the (client id, address) failure
// budget is the client's whatever spelling of the Authorization header
// carries the secret. Credentials after two spaces ("Basic  <b64>", RFC
// 9110 §11.4 1*SP) authenticate the client (basicCredentials rewrites the
// header before fosite reads it), but the client id the budget is keyed on
// was taken (claimedClientID, in startClientAuth) before that rewrite, when
// net/http's BasicAuth could not read the header: the budget of client ""
// at the address was spent and asked instead. A guesser whose budget for
// the client is spent then gets a second budget of checked guesses, and a
// secret proved only from other addresses is accepted from its address —
// the right-guess oracle closed in session 41 (brk42).
func TestBackoffWhateverTheBasicSpacing(t *testing.T) {
	f, ops := startOperatorFleet(t, 6, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "10",
	})
	const prover, guesser = "198.51.100.90", "198.51.100.91"
	send := func(authz, from string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(badRefresh().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", authz)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m struct{ Error string }
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m.Error
	}
	basic := func(spaces int, secret string) string {
		return "Basic" + strings.Repeat(" ", spaces) + base64.StdEncoding.EncodeToString([]byte(opClientID+":"+secret))
	}
	// The operator secret is proved (and cached) from another address.
	if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: prover}); r.Error != "invalid_grant" {
		t.Fatalf("operator client, right secret: %d %s", r.Status, r.Error)
	}
	// The guesser spends the client's budget at its address.
	for i := range 10 {
		if st, _ := send(basic(1, "wrong-"+strconv.Itoa(i)), guesser); st != http.StatusUnauthorized {
			t.Fatalf("wrong guess %d: %d, want 401", i, st)
		}
	}
	if st, _ := send(basic(1, "wrong"), guesser); st != http.StatusTooManyRequests {
		t.Fatalf("wrong guess after the budget: %d, want 429", st)
	}
	if st, e := send(basic(1, opSecret1), guesser); st != http.StatusTooManyRequests {
		t.Errorf("right guess (proved only elsewhere) in back-off: %d %s, want 429 as a wrong one", st, e)
	}
	// The same credentials after two spaces are the same client at the
	// same address: in back-off too.
	if st, e := send(basic(2, opSecret1), guesser); st != http.StatusTooManyRequests {
		t.Errorf("right guess after two spaces in back-off: %d %s, want 429 (the oracle of session 41)", st, e)
	}
	checked := 0
	for i := range 10 {
		if st, _ := send(basic(2, "again-"+strconv.Itoa(i)), guesser); st == http.StatusUnauthorized {
			checked++
		}
	}
	if checked > 0 {
		t.Errorf("%d wrong guesses after two spaces were checked (401) with the client's budget spent, want every one 429", checked)
	}
}
