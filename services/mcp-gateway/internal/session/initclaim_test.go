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
			claim := func(want bool, wantVersion string) {
				t.Helper()
				if ok, v, err := s.ClaimInitialize(ctx, id); ok != want || v != wantVersion || err != nil {
					t.Fatalf("claim: %v %q %v, want %v %q", ok, v, err, want, wantVersion)
				}
			}
			claim(true, "")
			claim(false, "")
			if err := s.ReleaseInitialize(ctx, id); err != nil {
				t.Fatal(err)
			}
			claim(true, "")
			if err := s.Negotiated(ctx, id, "2024-11-05", `{"name":"x"}`, ""); err != nil {
				t.Fatal(err)
			}
			if err := s.ReleaseInitialize(ctx, id); err != nil {
				t.Fatal(err)
			}
			claim(false, "2024-11-05")
			// A session negotiated without a claim (a previous version's).
			old := session.NewID()
			if err := s.Create(ctx, old, session.Record{Subject: "u", Transport: session.LegacySSE, ProtocolVersion: "2025-03-26"}); err != nil {
				t.Fatal(err)
			}
			if ok, v, err := s.ClaimInitialize(ctx, old); ok || v != "2025-03-26" || err != nil {
				t.Errorf("claim of a negotiated session: %v %q %v", ok, v, err)
			}
			gone := session.NewID()
			if _, _, err := s.ClaimInitialize(ctx, gone); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("claim of a session that is gone: %v", err)
			}
			if err := s.ReleaseInitialize(ctx, gone); err != nil {
				t.Errorf("release of a session that is gone: %v", err)
			}
			if ok, _ := s.Exists(ctx, gone); ok {
				t.Error("claim or release created a session")
			}
		})
	}
}
