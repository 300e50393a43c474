package oauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// ErrConnectionNotFound means the grant is not one of the subject's live
// grants (revoked, expired, never issued, or another subject's).
var ErrConnectionNotFound = store.ErrGrantNotFound

// Connection is one of a subject's grants with its client's name.
type Connection struct {
	store.Grant
	ClientName string
	ClientURI  string
}

func newStoredSession() fosite.Session { return NewSession() }

// Connections lists sub's live grants, most recently used first (the
// connected-apps capability). A grant whose client no longer resolves is
// listed by its client id.
func (s *Server) Connections(ctx context.Context, sub string) ([]Connection, error) {
	grants, err := s.store.Grants(ctx, sub, newStoredSession)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, len(grants))
	for i, g := range grants {
		out[i] = Connection{Grant: g, ClientName: g.ClientID}
		if c, err := s.store.GetClient(ctx, g.ClientID); err == nil {
			if cc, ok := c.(*clients.Client); ok {
				out[i].ClientName, out[i].ClientURI = cc.Name, cc.ClientURI
			}
		}
	}
	return out, nil
}

// TokenGrant says whether an access token of sub whose grant_id is
// grantID may act for sub in connected apps (store.TokenGrantLive), or
// why not: its grant is gone — revoked, expired, or deleted by the
// provider-change purge (docs/guides/upstream-idp.md), after which its sub
// may be the new provider's user's (OpenID Connect Core §2) —
// (store.TokenGrantGone), or was made by a sign-in at an upstream issuer
// this server no longer accepts (store.TokenGrantRefused). err is a store
// outage.
func (s *Server) TokenGrant(ctx context.Context, sub, grantID string) (store.TokenGrant, error) {
	return s.store.TokenGrantOf(ctx, sub, grantID, newStoredSession)
}

// Disconnect cuts off the app of grantID, if grantID is one of sub's live
// grants: it forgets the user's remembered consent to the grant's client,
// so the app must ask again, ends the codes issued to the client for sub
// and not redeemed yet (store.EndCodes: each is refused from then on, 400
// invalid_grant, instead of redeeming into a new grant for up to
// AUTH_CODE_TTL), then revokes every live grant of sub with that client
// — the app's other grants of the user (each authorization makes one: a
// re-link, a silent authorization with the consent remembered) and grantID itself, last (store.RevokeGrant: each announced
// to every verifier, each audited). A user cutting an app off expects the
// app to lose access, not one of its grants. A grant id that is not one
// of sub's live grants — unknown, expired, revoked before, another
// subject's — is ErrConnectionNotFound and changes nothing, whether or not
// the grant exists. Another subject's grants, and sub's grants refused by
// the store's WithGrantOwner check (an upstream issuer no longer accepted:
// another user's), are never touched.
//
// nil means all were done. A failure of any step is returned (a store
// outage is store.ErrUnavailable) and a retry with the same grant id does
// the rest: the consent is forgotten first because the grant is what names
// the client, and grantID is revoked last for the same reason — revoked
// first, a failed forgetting or a failed revocation of another grant could
// never be retried (the grant would be gone, so ErrConnectionNotFound) and
// the app would keep access or get a new grant without the consent page. A
// failure leaves grantID live and listed.
//
// What is forgotten, ended and revoked is what exists when the call reads
// it; nothing locks out authorizations of the same client meanwhile. An
// approval the user gives on a consent page while Disconnect runs is a new
// consent and is kept, and an authorization that found the old consent
// before it was forgotten may still end in a code — ended when it was
// issued before the codes are read, not when after. Either makes a new
// grant, a connection of its own that Connections lists and Disconnect can
// end; the grants listed when Disconnect read them are revoked in every
// case. If grantID ends otherwise between the steps (another Disconnect,
// expiry), the rest is still done and the answer is ErrConnectionNotFound.
//
// Each revocation's audit record names who disconnected what: the subject
// (hashed), the revoked grant and its client (client_id, not
// authenticated by this request), the app whose verified access token
// asked (token_client_id, from tokens.FromContext when ctx carries the
// verified principal), endpoint "connections", reason "user disconnect"
// for grantID and "user disconnect: another grant of the app" for the
// others, and the request id (docs/operations/audit-log.md).
//
// A refused disconnect — grantID is none of sub's live grants: another
// user's, unknown, expired or revoked before — revokes nothing and is
// recorded too, with result "not_found", the grant id asked for and no
// client_id (none is the caller's): a user's app probing grant ids shows
// in the audit log.
func (s *Server) Disconnect(ctx context.Context, sub, grantID string) error {
	clientID, err := s.store.SubjectGrantClient(ctx, sub, grantID, newStoredSession)
	if errors.Is(err, ErrConnectionNotFound) {
		rec := audit.Record{Event: audit.Revocation, Result: "not_found", Subject: sub, GrantID: grantID,
			Endpoint: "connections", Reason: "user disconnect: not one of the user's live grants"}
		if c, ok := tokens.FromContext(ctx); ok {
			rec.TokenClientID = c.ClientID
		}
		s.audit.Log(ctx, rec)
	}
	if err != nil {
		return err
	}
	if err := s.RevokeConsent(ctx, sub, clientID); err != nil {
		return fmt.Errorf("forget the consent to %s: %w", clientID, err)
	}
	// The app's codes for the user not redeemed yet: each would redeem
	// into a new grant for up to AUTH_CODE_TTL. A code redeemed before
	// this is a grant: EndCodes names it, as the listing below may not
	// yet (on a Redis Cluster the redemption lists its grant in parallel
	// with redeeming the code), and it is revoked with the listed ones.
	_, redeemed, err := s.store.EndCodes(ctx, sub, clientID)
	if err != nil {
		return fmt.Errorf("end the unredeemed codes of %s: %w", clientID, err)
	}
	grants, err := s.store.Grants(ctx, sub, newStoredSession)
	if err != nil {
		return fmt.Errorf("list the other grants of %s: %w", clientID, err)
	}
	done := map[string]bool{grantID: true} // revoked last
	for _, g := range grants {
		if g.ClientID != clientID || done[g.ID] {
			continue
		}
		done[g.ID] = true
		err := s.disconnectGrant(ctx, sub, clientID, g.ID, "user disconnect: another grant of the app")
		if err != nil && !errors.Is(err, ErrConnectionNotFound) { // ended meanwhile: nothing left to do
			return fmt.Errorf("revoke grant %s of %s: %w", g.ID, clientID, err)
		}
	}
	for _, id := range redeemed {
		if done[id] {
			continue
		}
		done[id] = true
		if err := s.disconnectCodeGrant(ctx, sub, clientID, id); err != nil {
			return fmt.Errorf("revoke grant %s of %s: %w", id, clientID, err)
		}
	}
	return s.disconnectGrant(ctx, sub, clientID, grantID, "user disconnect")
}

// disconnectGrant revokes grantID, one of sub's grants with clientID, for
// Disconnect, with its audit record (reason).
func (s *Server) disconnectGrant(ctx context.Context, sub, clientID, grantID, reason string) error {
	rec := &audit.Record{Event: audit.Revocation, Subject: sub, ClientID: clientID, Endpoint: "connections", Reason: reason}
	if c, ok := tokens.FromContext(ctx); ok {
		rec.TokenClientID = c.ClientID
	}
	_, err := s.store.RevokeSubjectGrant(context.WithValue(ctx, revocationRecordKey{}, rec), sub, grantID, newStoredSession)
	return err
}

// disconnectCodeGrant revokes grantID, the grant of a code issued to
// clientID for sub that EndCodes found redeemed, by its id: it may not be
// listed under sub yet (EndCodes). The same audit record as the listed
// grants' (disconnectGrant).
func (s *Server) disconnectCodeGrant(ctx context.Context, sub, clientID, grantID string) error {
	rec := &audit.Record{Event: audit.Revocation, Subject: sub, ClientID: clientID, Endpoint: "connections",
		Reason: "user disconnect: another grant of the app"}
	if c, ok := tokens.FromContext(ctx); ok {
		rec.TokenClientID = c.ClientID
	}
	return s.store.RevokeGrant(context.WithValue(ctx, revocationRecordKey{}, rec), grantID)
}

// disconnectScope is the scope that lets an app disconnect the user's
// apps (GrantsService.RevokeGrant) and withdraw the user's consent to
// another app (mayForgetConsent); the user approves it on the consent page.
const disconnectScope = "connections.revoke"

// mayForgetConsent reports whether the access token ar may withdraw its
// user's remembered consent to clientID at /oauth/consent/revoke: the
// consent to its own client always (an app may forget its own approval);
// another client's only when it was granted connections.revoke, as a
// disconnect needs — otherwise an app the user approved for openid alone
// could make the user approve every other app again.
func mayForgetConsent(ar fosite.AccessRequester, clientID string) bool {
	if c := ar.GetClient(); c != nil && c.GetID() == clientID {
		return true
	}
	return ar.GetGrantedScopes().Has(disconnectScope)
}

// revocationRecordKey holds the audit record prepared for the grant its
// caller revokes (Disconnect, revokeForeignGrant); auditingRevoker fills
// in the grant id and the outcome.
type revocationRecordKey struct{}
