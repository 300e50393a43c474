package server_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

const (
	hmacRollOld = "hmac-roll-old-secret-0123456789abcdef0123"
	hmacRollNew = "hmac-roll-new-secret-fedcba9876543210fedc"
)

// replica starts a second auth-server on f's Redis, issuer and registry,
// with env over f's environment, and returns a copy of f whose requests go
// to it. It stops with the test.
func (f *fleet) replica(env map[string]string) *fleet {
	f.t.Helper()
	ln := testharness.Listener(f.t)
	e := maps.Clone(f.env)
	maps.Copy(e, env)
	e["HTTP_ADDR"] = ln.Addr().String()
	g := *f
	g.env = e
	g.Base = "http://" + ln.Addr().String()
	g.AS = testharness.RunService(f.t, server.Run, e, ln)
	return &g
}

// TestHMACSecretRotationAcrossReplicas: the two-phase rotation of
// TOKEN_HMAC_SECRET in docs/operations/key-rotation.md, with replicas of
// each phase serving the same grants at once, as during a rollout.
//
//   - A single-step rotation (the new secret current on restarted pods while
//     the others know only the old one) refuses, on a pod not yet restarted,
//     the refresh tokens a restarted pod issued: why the new secret is
//     first added as a rotated (accepted) secret everywhere.
//   - Step 1 done (old current, new accepted) and step 2 rolling (new
//     current, old accepted): codes and refresh tokens issued by either
//     pod are served by the other; a refresh repeated within the grace at
//     a pod of the other secret is refused, and the grant stays live.
func TestHMACSecretRotationAcrossReplicas(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacRollOld})
	cl := f.Clients["test-public"]

	// A single step: the restarted pod has the new secret (the old one
	// accepted), the pod not yet restarted only the old one.
	restarted := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacRollNew, "TOKEN_HMAC_SECRETS_ROTATED": hmacRollOld})
	a := newAuthRequest(cl)
	tr := restarted.exchange(cl, a, f.authorize(a))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("a code of the old secret at a pod that accepts it: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if r := f.refresh(cl, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("single-step rotation: a refresh token of the new secret at a pod that knows only the old one: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}

	// Step 1 rolled out: every pod signs with the old secret and accepts
	// the new one. Step 2 rolling: one pod restarted with the new secret
	// current and the old one accepted.
	step1 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacRollOld, "TOKEN_HMAC_SECRETS_ROTATED": hmacRollNew})
	step2 := f.replica(map[string]string{"TOKEN_HMAC_SECRET": hmacRollNew, "TOKEN_HMAC_SECRETS_ROTATED": hmacRollOld})

	// A code issued by a step-1 pod (f.authorize signs in through f, whose
	// secret step 1 leaves current), redeemed at the step-2 pod; then
	// the grant's refresh tokens go back and forth.
	a = newAuthRequest(cl)
	tr = step2.exchange(cl, a, f.authorize(a))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("a step-1 code at a step-2 pod: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	rt := tr.RefreshToken
	for i, pod := range []*fleet{step1, step2, step1, step2} {
		r := pod.refresh(cl, rt)
		if r.Status != http.StatusOK || r.RefreshToken == "" || r.AccessToken == "" {
			t.Fatalf("refresh %d (issued by the other phase's pod): %d %s %s", i, r.Status, r.Error, r.Description)
		}
		rt = r.RefreshToken
	}
	// The latest refresh token is live at a step-1 pod, and its access
	// token is accepted at a step-2 pod.
	last := step1.refresh(cl, rt)
	if last.Status != http.StatusOK {
		t.Fatalf("the latest refresh token at a step-1 pod: %d %s", last.Status, last.Error)
	}
	if st, _ := step2.userinfo(last.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo at a step-2 pod with a step-1 pod's access token: %d", st)
	}

	// One refresh token sent twice within the grace window (a client's
	// retry), to pods of different current secrets: they derive different
	// successors, so the second is refused without revoking the grant, and
	// the first one's token goes on.
	first := step2.refresh(cl, last.RefreshToken)
	if first.Status != http.StatusOK {
		t.Fatalf("refresh at a step-2 pod: %d %s", first.Status, first.Error)
	}
	again := step1.refresh(cl, last.RefreshToken)
	if again.Status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("the same refresh token again within the grace, at a pod with the other current secret: %d %s, want 400 invalid_grant", again.Status, again.Error)
	}
	if r := step1.refresh(cl, first.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("the first refresh's token after the refused repeat: %d %s (the grant must stay live)", r.Status, r.Error)
	}
	// Its audit line says so: no reuse detected, no revocation.
	events := auditEvents(t, step1)
	if e := findEvent(events, map[string]any{"event": "refresh_reuse_detected"}); e != nil {
		t.Errorf("a refused repeat that revoked nothing is audited as reuse: %v", e["_line"])
	}
	if e := findEvent(events, map[string]any{"event": "revocation"}); e != nil {
		t.Errorf("revocation audited at the step-1 pod: %v", e["_line"])
	}
	if e := findEvent(events, map[string]any{"event": "grant", "grant_type": "refresh_token", "result": "invalid_grant"}); e == nil || !strings.Contains(e["reason"].(string), "stays live") {
		t.Errorf("no audit line for the refused repeat saying the grant stays live: %v", e)
	}

	// A code issued while the old secret is current, redeemed at a
	// step-1 pod, still works (nothing changed for step-1 pods).
	a = newAuthRequest(cl)
	if tr := step1.exchange(cl, a, f.authorize(a)); tr.Status != http.StatusOK {
		t.Fatalf("a code at a step-1 pod: %d %s", tr.Status, tr.Error)
	}
}
