package oauth

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// issuerSet is which upstream issuers' sign-ins this server's grants and
// remembered consents may come from, and which of them name the same
// users. A subject is unique only within its issuer (OpenID Connect Core
// 1.0 §2; iss and sub together are the only stable identifier, §5.7):
// after UPSTREAM_ISSUER_URL names another provider, a grant or consent
// made by a sign-in at the former one is another user's, whatever its
// sub.
//
// The issuers accepted are UPSTREAM_ISSUER_URL (as written, without or
// with a trailing slash — the discovery document's spelling may differ
// from the setting's by one — and accounts.google.com for Google's),
// an Entra ID tenant's issuer under a multi-tenant UPSTREAM_ISSUER_URL
// while the tenant is in UPSTREAM_ALLOWED_TENANTS, and
// UPSTREAM_PREVIOUS_ISSUERS (spelled in the same ways). The current
// provider's and the previous issuers' are one set of users; each Entra
// tenant is a set of its own.
type issuerSet struct {
	// current and previous are the spellings of the current provider's
	// issuer and of UPSTREAM_PREVIOUS_ISSUERS: one user space.
	current, previous []string
	// tenantPrefix and tenantSuffix surround the tenant id of an Entra ID
	// multi-tenant issuer's template; tenants are those allowed ("*":
	// any). multi is false for any other issuer.
	multi                      bool
	tenantPrefix, tenantSuffix string
	tenants                    []string
}

func newIssuerSet(u config.Upstream) issuerSet {
	s := issuerSet{current: issuerSpellings(u.Issuer)}
	for _, iss := range u.PreviousIssuers {
		s.previous = append(s.previous, issuerSpellings(iss)...)
	}
	if template, ok := config.EntraMultiTenant(u.Issuer); ok {
		// No sign-in carries the template's …/common/v2.0: each its
		// tenant's issuer (the sign-in refuses any other).
		s.current, s.multi, s.tenants = nil, true, u.AllowedTenants
		s.tenantPrefix, s.tenantSuffix, _ = strings.Cut(template, "{tenantid}")
	}
	return s
}

// issuerSpellings are the iss values a sign-in at the provider whose
// issuer setting is iss can carry: iss as written, the same without or
// with a trailing slash, and Google's bare accounts.google.com (Core
// §15.6.2).
func issuerSpellings(iss string) []string {
	if iss == "" {
		return nil
	}
	out := []string{iss}
	if t, ok := strings.CutSuffix(iss, "/"); ok {
		out = append(out, t)
	} else {
		out = append(out, iss+"/")
	}
	if strings.TrimSuffix(iss, "/") == "https://accounts.google.com" {
		out = append(out, "accounts.google.com")
	}
	return out
}

// userSpace names the set of users iss's subjects belong to when iss is
// accepted ("" and false when it is not): the current provider's (with
// the previous issuers) or one Entra ID tenant's. A string compare
// against a few short strings; no allocation.
func (s *issuerSet) userSpace(iss string) (string, bool) {
	if slices.Contains(s.current, iss) || slices.Contains(s.previous, iss) {
		return "", true
	}
	if !s.multi {
		return "", false
	}
	tenant, ok := strings.CutPrefix(iss, s.tenantPrefix)
	if ok {
		tenant, ok = strings.CutSuffix(tenant, s.tenantSuffix)
	}
	if !ok || !config.IsTenantID(tenant) || !(slices.Contains(s.tenants, "*") || slices.Contains(s.tenants, tenant)) {
		return "", false
	}
	return tenant, true
}

// acceptsGrant reports whether a grant made by a sign-in at iss may still
// be used. A grant written before grants recorded their upstream issuer
// has none (""): nothing tells whose it is, and it is accepted.
func (s *issuerSet) acceptsGrant(iss string) bool {
	if iss == "" {
		return true
	}
	_, ok := s.userSpace(iss)
	return ok
}

// consentCounts reports whether a consent remembered from a sign-in at
// consentIss counts for a user who signed in at signInIss: both accepted
// and of the same users. A consent without an issuer (remembered before
// consents recorded one) does not count: the user is asked once more.
func (s *issuerSet) consentCounts(consentIss, signInIss string) bool {
	if consentIss == "" {
		return false
	}
	a, ok := s.userSpace(consentIss)
	if !ok {
		return false
	}
	b, ok := s.userSpace(signInIss)
	return ok && a == b
}

// foreignIssuerHint is the error_description of a token request whose
// grant a sign-in at an upstream issuer no longer accepted made.
const foreignIssuerHint = "The user signed in at an identity provider this server no longer accepts (its UPSTREAM_ISSUER_URL changed since): the grant is ended; authorize again."

// grantIssuerAccepted is the store's WithGrantOwner check: a grant of an
// upstream issuer no longer accepted is not its subject's (connected
// apps).
func (s *Server) grantIssuerAccepted(sess fosite.Session) bool {
	gs, ok := sess.(*Session)
	return !ok || s.issuers.acceptsGrant(gs.UpstreamIssuer)
}

// upstreamIssuerRefused returns the upstream issuer of ar's grant (a
// refresh's, or the one a code would make) and true when this server no
// longer accepts it: a compare of the session the request decoded
// already, no store read.
func (s *Server) upstreamIssuerRefused(ar fosite.AccessRequester) (string, bool) {
	sess, ok := ar.GetSession().(*Session)
	if !ok || s.issuers.acceptsGrant(sess.UpstreamIssuer) {
		return "", false
	}
	return sess.UpstreamIssuer, true
}

// upstreamIssuerRefusedOf is upstreamIssuerRefused's verdict alone.
func (s *Server) upstreamIssuerRefusedOf(ar fosite.AccessRequester) bool {
	_, refused := s.upstreamIssuerRefused(ar)
	return refused
}

// revokeForeignGrant revokes the grant of a refresh refused by
// upstreamIssuerRefused (store.RevokeGrant: announced to every verifier,
// so its access tokens are refused fleet-wide as a user's disconnect's
// are), with a revocation audit record naming the reason and the issuer.
// A code's grant is not made, and nothing is revoked.
func (s *Server) revokeForeignGrant(ctx context.Context, r *http.Request, grant string, ar fosite.AccessRequester, iss string) error {
	if grant != "refresh_token" {
		return nil
	}
	rec := &audit.Record{Event: audit.Revocation, Subject: ar.GetSession().GetSubject(), ClientID: ar.GetClient().GetID(),
		ClientAuthenticated: provedIdentity(ctx), ClientAddr: s.remoteAddr(r), Endpoint: "token", GrantType: grant,
		UpstreamIssuer: iss, Reason: "the grant's sign-in was at an upstream issuer no longer accepted (UPSTREAM_ISSUER_URL, UPSTREAM_PREVIOUS_ISSUERS)"}
	return s.store.RevokeGrant(context.WithValue(ctx, revocationRecordKey{}, rec), ar.GetID())
}
