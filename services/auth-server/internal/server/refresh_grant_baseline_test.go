package server_test

import (
	"testing"
)

// The refresh grant's baseline (code_grant_baseline_test.go): another
// client presenting the token is refused invalid_grant, the grant
// untouched; rotation; a repeat of the predecessor within the grace window
// gets the same successor; a repeat two rotations back is reuse and
// revokes the grant.
func TestTokenBaselineRefreshRotationGraceReuse(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	o := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	baselineCheck(t, "another client presents the refresh token", f.refresh(o, tr.RefreshToken), baselineWant{status: 400, err: "invalid_grant",
		desc: baselineInvalid + " The OAuth 2.0 Client ID from this request does not match the ID during the initial token issuance."})
	r1 := f.refresh(c, tr.RefreshToken)
	baselineCheck(t, "the owner after", r1, baselineWant{status: 200})
	if r1.RefreshToken == "" || r1.RefreshToken == tr.RefreshToken || r1.Scope != "openid profile email" || r1.IDToken != "" {
		t.Fatalf("rotation: new %v scope %q id token %v (none is issued at a refresh)", r1.RefreshToken != tr.RefreshToken, r1.Scope, r1.IDToken != "")
	}
	g := f.refresh(c, tr.RefreshToken)
	baselineCheck(t, "the predecessor again within the grace window", g, baselineWant{status: 200})
	if g.RefreshToken != r1.RefreshToken {
		t.Errorf("the grace answer's refresh token is not the successor already issued")
	}
	r2 := f.refresh(c, r1.RefreshToken)
	baselineCheck(t, "the successor", r2, baselineWant{status: 200})
	baselineCheck(t, "two rotations back (reuse)", f.refresh(c, tr.RefreshToken),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The refresh token was already used."})
	baselineCheck(t, "the current token after the reuse", f.refresh(c, r2.RefreshToken),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The refresh token is malformed or not valid."})
	if st, _ := f.userinfo(r2.AccessToken); st != 401 {
		// The announcement reaches userinfo's verifier at once on one process.
		t.Logf("userinfo with the reused grant's access token: %d", st)
	}
}
