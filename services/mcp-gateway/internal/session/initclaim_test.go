package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A legacy session's initialize is claimed once (ClaimInitialize): the
// claim is refused while it is held, and, once a version was negotiated,
// with that version; given back (ReleaseInitialize) before negotiation it
// can be taken again, after negotiation it stays. A session that is gone
// is ErrNotFound and is not created.
func TestInitializeClaim(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			s := session.NewStore(rdb, time.Minute)
			id := session.NewID()
			if err := s.Create(ctx, id, session.Record{Subject: "u", Transport: session.LegacySSE}); err != nil {
				t.Fatal(err)
			}
			claim := func(want bool, wantVersion string) string {
				t.Helper()
				tok, v, err := s.ClaimInitialize(ctx, id)
				if (tok != "") != want || v != wantVersion || err != nil {
					t.Fatalf("claim: %q %q %v, want %v %q", tok, v, err, want, wantVersion)
				}
				return tok
			}
			tok := claim(true, "")
			claim(false, "")
			if err := s.ReleaseInitialize(ctx, id, tok); err != nil {
				t.Fatal(err)
			}
			tok = claim(true, "")
			if err := s.Negotiated(ctx, id, "2024-11-05", `{"name":"x"}`, ""); err != nil {
				t.Fatal(err)
			}
			if err := s.ReleaseInitialize(ctx, id, tok); err != nil {
				t.Fatal(err)
			}
			claim(false, "2024-11-05")
			// A session negotiated without a claim (a previous version's).
			old := session.NewID()
			if err := s.Create(ctx, old, session.Record{Subject: "u", Transport: session.LegacySSE, ProtocolVersion: "2025-03-26"}); err != nil {
				t.Fatal(err)
			}
			if tok, v, err := s.ClaimInitialize(ctx, old); tok != "" || v != "2025-03-26" || err != nil {
				t.Errorf("claim of a negotiated session: %q %q %v", tok, v, err)
			}
			gone := session.NewID()
			if _, _, err := s.ClaimInitialize(ctx, gone); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("claim of a session that is gone: %v", err)
			}
			if err := s.ReleaseInitialize(ctx, gone, "x"); err != nil {
				t.Errorf("release of a session that is gone: %v", err)
			}
			if ok, _ := s.Exists(ctx, gone); ok {
				t.Error("claim or release created a session")
			}
		})
	}
}

// The claim had no owner and no expiry: when its owner could neither
// record the negotiated version nor give it back (Redis failed after
// mcp-go answered, a lost reply to the claim), the session could never
// initialize; and a release by one replica could drop another's claim.
// A claim now expires (InitializeClaimTTL, here 1 s) unless a version was
// recorded, and is given back only by its own token.
func TestInitializeClaimExpiresAndHasAnOwner(t *testing.T) {
	ttl := session.InitializeClaimTTL
	session.InitializeClaimTTL = time.Second
	t.Cleanup(func() { session.InitializeClaimTTL = ttl })
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			s := session.NewStore(rdb, time.Minute)
			id := session.NewID()
			if err := s.Create(ctx, id, session.Record{Subject: "u", Transport: session.LegacySSE}); err != nil {
				t.Fatal(err)
			}
			first, _, err := s.ClaimInitialize(ctx, id)
			if first == "" || err != nil {
				t.Fatalf("claim: %q %v", first, err)
			}
			if err := s.ReleaseInitialize(ctx, id, "another"); err != nil {
				t.Fatal(err)
			}
			if tok, _, err := s.ClaimInitialize(ctx, id); tok != "" || err != nil {
				t.Fatalf("claim after another token's release: %q %v, want still held", tok, err)
			}
			var second string
			for deadline := time.Now().Add(3 * time.Second); second == "" && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				if second, _, err = s.ClaimInitialize(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if second == "" || second == first {
				t.Fatalf("claim after its expiry: %q (first %q), want a new one", second, first)
			}
			if err := s.ReleaseInitialize(ctx, id, first); err != nil {
				t.Fatal(err)
			}
			if tok, _, err := s.ClaimInitialize(ctx, id); tok != "" || err != nil {
				t.Fatalf("claim after the expired owner's release: %q %v, want the second still held", tok, err)
			}
			if err := s.Negotiated(ctx, id, "2024-11-05", `{"name":"x"}`, ""); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			if tok, v, err := s.ClaimInitialize(ctx, id); tok != "" || v != "2024-11-05" || err != nil {
				t.Fatalf("claim of a negotiated session after the expiry: %q %q %v", tok, v, err)
			}
		})
	}
}

// A relayed initialize's claim is settled by whichever of its two replicas
// comes first: the stream's replica confirms it (ConfirmInitialize) before
// handing the initialize on, the replica it was posted to gives it back
// when its relay failed (ReleaseUnconfirmed). Released first, the late
// confirmation fails and the claim can be taken again at once;
// confirmed first, the release leaves it held and reports it confirmed.
// Another token confirms nothing; an expired claim cannot be confirmed.
func TestInitializeClaimConfirmedOrReleased(t *testing.T) {
	ttl := session.InitializeClaimTTL
	t.Cleanup(func() { session.InitializeClaimTTL = ttl })
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			session.InitializeClaimTTL = ttl
			ctx := context.Background()
			rdb := testharness.RedisClient(t, setup)
			s := session.NewStore(rdb, time.Minute)
			id := session.NewID()
			if err := s.Create(ctx, id, session.Record{Subject: "u", Transport: session.LegacySSE}); err != nil {
				t.Fatal(err)
			}
			claim := func() string {
				t.Helper()
				tok, _, err := s.ClaimInitialize(ctx, id)
				if tok == "" || err != nil {
					t.Fatalf("claim: %q %v, want taken", tok, err)
				}
				return tok
			}
			tok := claim()
			if got, err := s.ReleaseUnconfirmed(ctx, id, tok); got != session.Released || err != nil {
				t.Fatalf("release of an unconfirmed claim: %v %v, want released", got, err)
			}
			if ok, err := s.ConfirmInitialize(ctx, id, tok); ok || err != nil {
				t.Fatalf("confirmation after the release: %v %v, want refused", ok, err)
			}
			tok = claim()
			if ok, err := s.ConfirmInitialize(ctx, id, "another"); ok || err != nil {
				t.Fatalf("confirmation by another token: %v %v, want refused", ok, err)
			}
			if ok, err := s.ConfirmInitialize(ctx, id, tok); !ok || err != nil {
				t.Fatalf("confirmation: %v %v, want confirmed", ok, err)
			}
			if got, err := s.ReleaseUnconfirmed(ctx, id, tok); got != session.Confirmed || err != nil {
				t.Fatalf("release of a confirmed claim: %v %v, want confirmed", got, err)
			}
			if again, _, err := s.ClaimInitialize(ctx, id); again != "" || err != nil {
				t.Fatalf("claim while a confirmed one is held: %q %v, want refused", again, err)
			}
			if got, err := s.ReleaseUnconfirmed(ctx, id, "another"); got != session.NotHeld || err != nil {
				t.Fatalf("release by another token: %v %v, want not held", got, err)
			}
			if err := s.Negotiated(ctx, id, "2024-11-05", `{"name":"x"}`, ""); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ReleaseUnconfirmed(ctx, id, tok); got != session.Confirmed || err != nil {
				t.Fatalf("release after negotiation: %v %v, want confirmed", got, err)
			}
			// An expired claim is not confirmed (another may take it).
			session.InitializeClaimTTL = 200 * time.Millisecond
			other := session.NewID()
			if err := s.Create(ctx, other, session.Record{Subject: "u", Transport: session.LegacySSE}); err != nil {
				t.Fatal(err)
			}
			late, _, err := s.ClaimInitialize(ctx, other)
			if late == "" || err != nil {
				t.Fatalf("claim: %q %v", late, err)
			}
			time.Sleep(300 * time.Millisecond)
			if ok, err := s.ConfirmInitialize(ctx, other, late); ok || err != nil {
				t.Fatalf("confirmation of an expired claim: %v %v, want refused", ok, err)
			}
		})
	}
}
