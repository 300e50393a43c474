package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// token is the token endpoint: authorization_code and refresh_token grants.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if auditOf(r) == nil { // guard's client authentication made it (startClientAuth)
		r, _ = s.withAudit(r, audit.Record{}) // learns the grant a reuse revokes
	}
	ctx := r.Context()
	grant := r.PostForm.Get("grant_type")
	if !slices.Contains(clients.GrantTypes, grant) {
		s.metrics.grants.WithLabelValues("other", "unknown", "unsupported_grant_type").Inc()
		s.metrics.errors.WithLabelValues("token", "unsupported_grant_type").Inc()
		if grant == "" {
			writeJSONError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		}
		writeJSONError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	// The request's turn in the signing queue comes once its client is
	// authenticated and before anything of its grant is read
	// (authenticateClient, signGate).
	// One read of the authorization code serves fosite's four lookups.
	ctx = withParsedRefresh(store.WithRequestScope(ctx))
	// A code's redemption (one Redis round trip) runs while fosite signs
	// the ID token; nothing is answered before its outcome is known.
	store.DeferRedemption(ctx)
	if grant == "authorization_code" {
		// Its two signatures in the turn it is admitted with (signGate).
		ctx = withHeldTurn(ctx)
		defer s.gate.release(ctx)
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		// A refresh of a grant whose resource its client may no longer
		// use: fosite's targetStrategy, told what the client may use.
		s.tokenError(w, r, grant, ar, targetsAllowedTo(ar, missingParam(r.PostForm, grant, err)))
		return
	}
	if s.grantOutlivedItsClient(ar) {
		// The client was removed from the registry after this grant was
		// made, and added back: the removal ended the grant (its access
		// tokens are refused fleet-wide); a refresh or a code of it gets
		// no new token. The user authorizes the client again.
		s.tokenError(w, r, grant, ar, fosite.ErrInvalidGrant.WithHint("The grant was made before its client was removed from the registry; authorize again."))
		return
	}
	if iss, ok := s.upstreamIssuerRefused(ar); ok {
		// The user signed in at an upstream issuer this server no longer
		// accepts: the grant's subject is that issuer's user, not one of
		// today's provider (OpenID Connect Core §2). The grant ends (a
		// refresh's; a code's is not made), announced to every verifier.
		if err := s.revokeForeignGrant(ctx, r, grant, ar, iss); err != nil {
			s.tokenError(w, r, grant, ar, err)
			return
		}
		s.tokenError(w, r, grant, ar, fosite.ErrInvalidGrant.WithHint(foreignIssuerHint))
		return
	}
	if err := grantedTargetsAllowed(ar); err != nil {
		// RFC 8707 §2: a code issued for a resource its client may no
		// longer use (a self-registered client after DYNAMIC_CLIENT_RESOURCES
		// was narrowed, a static client after its entry was) gets no token.
		// A refresh is refused so by fosite (targetStrategy). The
		// description names the refused resource (a URL from the client's
		// own grant, no secret), as a refresh's does. Logged, counted and
		// audited as every refused token request (tokenError).
		s.tokenError(w, r, grant, ar, targetsAllowedTo(ar, err))
		return
	}
	if rs := r.PostForm["resource"]; len(rs) > 0 {
		// RFC 8707: the token's audience is the grant's resource; a request
		// may name it again but not widen or change it.
		// Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1).
		// The description names the grant's resource, the one value this
		// request may send (the client's own grant's, as the refused
		// value is not echoed: it is the request's).
		if _, ok := clients.CanonicalResource(ar.GetRequestedAudience(), s.canonicalResource(rs[0])); len(rs) > 1 || !ok {
			s.tokenError(w, r, grant, ar, errInvalidTarget.WithHint(grantResourceOnly(ar, len(rs))))
			return
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	s.gate.release(ctx) // its signatures are made
	if rerr := store.AwaitRedemption(ctx); rerr != nil && err == nil {
		// As fosite's code handler wraps an error of Commit.
		err = fosite.ErrServerError.WithWrap(rerr).WithDebug(rerr.Error())
	}
	if err != nil {
		s.tokenError(w, r, grant, ar, err)
		return
	}
	// expires_in is the access token's exp - iat (GenerateAccessToken),
	// not fosite's exp minus its own later clock reading, which said 3600
	// of a token whose exp - iat was 3601 (RFC 6749 §5.1: the lifetime).
	resp.SetExpiresIn(s.strategy.lifetime())
	s.metrics.okGrant(grant, s.clientLabel(ar.GetClient()))
	s.auditEvent(r, audit.Record{Event: audit.Grant, GrantType: grant, ClientID: ar.GetClient().GetID(), ClientAuthenticated: true,
		Subject: ar.GetSession().GetSubject(), GrantID: ar.GetID()})
	writeAccessResponse(w, resp)
}

// grantedTargetsAllowed is nil when every audience of ar's grant is one
// its client may be issued tokens for now (clients.Client.Resources), and
// otherwise targetStrategy's invalid_target, naming the first refused one.
// After fosite's NewAccessRequest the grant's audience is the requested
// one (authorize grants the audience it requests; fosite copies the
// granted one of a code only when it answers) — the granted one too of a
// refresh.
func grantedTargetsAllowed(ar fosite.AccessRequester) error {
	allowed := ar.GetClient().GetAudience()
	if err := targetStrategy(allowed, ar.GetRequestedAudience()); err != nil {
		return err
	}
	return targetStrategy(allowed, ar.GetGrantedAudience())
}

// targetStrategy is fosite's exact audience matching, answered with RFC
// 8707 §2's invalid_target instead of invalid_request: fosite applies it
// to a refresh (the grant's audience against its client's resources now)
// and to an authorization request's audience parameter. Its error says
// what the client may use (allowed, the client's own resources); its
// cause, a *targetRefused, lets targetsAllowedTo say where that is set.
func targetStrategy(allowed, requested []string) error {
	for _, r := range requested {
		if !slices.Contains(allowed, r) {
			return errInvalidTarget.WithHintf("The resource %q is not allowed for this client: it may use %s.", r, resourceList(allowed)).
				WithWrap(&targetRefused{resource: r})
		}
	}
	return nil
}

// targetRefused is the resource targetStrategy refused.
type targetRefused struct{ resource string }

func (e *targetRefused) Error() string { return "resource not allowed for the client: " + e.resource }

// targetsAllowedTo is err, when targetStrategy refused a resource of ar's
// grant, told what ar's client may ask for instead and where that is set
// (RFC 8707 §2: invalid_target; the client's developer sees which
// resource to drop and which to ask for): its own resources, never
// another client's. Any other error is returned as it is.
func targetsAllowedTo(ar fosite.AccessRequester, err error) error {
	var refused *targetRefused
	if ar == nil || !errors.As(err, &refused) {
		return err
	}
	c, ok := ar.GetClient().(*clients.Client)
	if !ok {
		return err
	}
	return errInvalidTarget.WithHintf("The resource %q is not allowed for this client: %s.", refused.resource, resourcesOf(c)).WithWrap(refused)
}

// resourcesOf says what c may be issued tokens for, and where that list is
// set: the auth-server's DYNAMIC_CLIENT_RESOURCES for a client that
// registered itself or is known by its metadata document, its entry's
// resources in CLIENTS_FILE otherwise (as the authorization endpoint's
// resourceRefusal says it).
func resourcesOf(c *clients.Client) string {
	if c.Kind == clients.KindStatic {
		return "it may use " + resourceList(c.Resources) + " (its resources in CLIENTS_FILE)"
	}
	return "a self-registered client may use " + resourceList(c.Resources) + " (the auth-server's DYNAMIC_CLIENT_RESOURCES)"
}

// resourceList is resources, space-separated, or "none".
func resourceList(resources []string) string {
	if len(resources) == 0 {
		return "none"
	}
	return strings.Join(resources, " ")
}

// grantResourceOnly is the invalid_target description of a token
// request's resource parameter (n of them) that does not name its grant's
// resource: the one value it may name (RFC 8707 §2; a token has one
// audience here, and a token request does not widen or change it).
func grantResourceOnly(ar fosite.AccessRequester, n int) string {
	grant := resourceList(ar.GetRequestedAudience())
	if n > 1 {
		return fmt.Sprintf("Only one resource parameter is supported: name this grant's resource, %s, or none.", grant)
	}
	return fmt.Sprintf("The resource parameter does not match the grant's resource: name %s, or none.", grant)
}

// errInvalidTarget is RFC 8707 §2's error, which fosite does not define.
var errInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, missing, unknown, or malformed.",
	CodeField:        http.StatusBadRequest,
}

// fosite's hints for the checks that fail when a parameter a grant
// requires is missing (fosite v0.49; TestTokenMissingParameters pins them).
const (
	hintRedirectURIMismatch = `The "redirect_uri" from this request does not match the one from the authorize request.`
	hintVerifierTooShort    = "The PKCE code verifier must be at least 43 characters."
)

// missingParam turns fosite's invalid_grant for a required parameter that
// is missing (or sent empty: RFC 6749 §3.2, dropEmptyParams) into
// invalid_request, RFC 6749 §5.2's error for "a request missing a required
// parameter": code (§4.1.3), refresh_token (§6), redirect_uri when the
// authorization request had one (§4.1.3), code_verifier when it had a
// code_challenge (RFC 7636 §4.5; OAuth 2.1 §4.1.3). fosite authenticates
// the client first, so invalid_client still comes before these. Any other
// error is returned as it is.
func missingParam(form url.Values, grant string, err error) error {
	if !errors.Is(err, fosite.ErrInvalidGrant) {
		return err
	}
	hint := fosite.ErrorToRFC6749Error(err).HintField
	switch {
	case grant == "refresh_token" && !form.Has("refresh_token"):
		return fosite.ErrInvalidRequest.WithHint("refresh_token is required (RFC 6749 section 6).")
	case grant == "authorization_code" && !form.Has("code"):
		return fosite.ErrInvalidRequest.WithHint("code is required (RFC 6749 section 4.1.3).")
	case grant == "authorization_code" && !form.Has("redirect_uri") && hint == hintRedirectURIMismatch:
		return fosite.ErrInvalidRequest.WithHint("redirect_uri is required: the authorization request included it (RFC 6749 section 4.1.3).")
	case grant == "authorization_code" && !form.Has("code_verifier") && hint == hintVerifierTooShort:
		return fosite.ErrInvalidRequest.WithHint("code_verifier is required: the authorization request had a code_challenge (RFC 7636 section 4.5).")
	}
	return err
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, grant string, ar fosite.AccessRequester, err error) {
	status, code, desc := classify(err)
	authFailed := code == "invalid_client"
	// A request client authentication refused (back-off, the client's
	// limit, its limiter failing) is recorded as what guard answers.
	refused := false
	if st, cd, ds := clientAuthFrom(r.Context()).answered(); st != 0 {
		status, code, desc, refused = st, cd, ds, true
	}
	client, clientID, authenticated := "unknown", claimedClientID(r), false
	var c fosite.Client
	if ar != nil {
		c = ar.GetClient()
	}
	if c == nil || c.GetID() == "" { // fosite's empty client: authenticated, then refused by the signing queue or a limit
		c = clientAuthFrom(r.Context()).authenticatedClient()
	}
	if c != nil && !authFailed {
		client, clientID, authenticated = s.clientLabel(c), c.GetID(), !c.IsPublic()
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.ErrorContext(r.Context(), "token endpoint failed", "grant_type", grant, "err", err)
	} else {
		s.log.InfoContext(r.Context(), "token request refused", "grant_type", grant, "client_id", clientID, "client_authenticated", authenticated, "error", code, "debug", fosite.ErrorToRFC6749Error(err).GetDescription()+" "+fosite.ErrorToRFC6749Error(err).Debug())
	}
	s.metrics.grants.WithLabelValues(grant, client, code).Inc()
	if !refused { // refusedWriter counts what it answers
		s.metrics.errors.WithLabelValues("token", code).Inc()
	}
	revoked := revokedGrant(r)
	switch {
	case authFailed:
		s.auditEvent(r, audit.Record{Event: audit.ClientAuthFailure, Result: code, ClientID: clientID, Endpoint: "token"})
	case grant == "refresh_token" && errors.Is(err, fosite.ErrInactiveToken) && revoked != "":
		rec := audit.Record{Event: audit.RefreshReuse, Result: code, ClientID: clientID, ClientAuthenticated: authenticated, GrantType: grant, GrantID: revoked,
			Reason: "a rotated refresh token was presented again; the grant is revoked"}
		if held := auditOf(r); held != nil {
			// The client the token was issued to (reuseWitness): another
			// one than the presenting client's when a stolen token is used.
			rec.TokenClientID = held.TokenClientID
		}
		s.auditEvent(r, rec)
	case grant == "refresh_token" && errors.Is(err, fosite.ErrInactiveToken):
		// Refused without revoking: a repeat within the grace window whose
		// grant was rotated to a successor this replica does not derive
		// (another TOKEN_HMAC_SECRET, during a rotation's rollout).
		s.auditEvent(r, s.presentedGrantOf(r, audit.Record{Event: audit.Grant, Result: code, ClientID: clientID, ClientAuthenticated: authenticated, GrantType: grant,
			Reason: "a repeated refresh within the grace window was rotated, by another replica, to a successor this one does not derive; the grant stays live"}))
	default:
		s.auditEvent(r, s.presentedGrantOf(r, audit.Record{Event: audit.Grant, Result: code, ClientID: clientID, ClientAuthenticated: authenticated, GrantType: grant}))
	}
	if code == "invalid_client" {
		status = invalidClient(w, r)
	}
	if status == http.StatusServiceUnavailable {
		retry := "5"
		if errors.Is(err, errSigningBusy) {
			retry = signingRetryAfter
		}
		w.Header().Set("Retry-After", retry)
	}
	writeJSONError(w, status, code, desc)
}

// presentedGrantOf is rec, the record of a token request refused after
// the store found the grant of the code or refresh token it presented
// (notePresented), naming that grant (grant_id), its user (subject_hash)
// and the client the code or token was issued to (token_client_id: the
// presenting client's own, or another's — a stolen code or refresh token,
// docs/operations/audit-log.md) — only for a code or token the server
// made: a refresh token's store handle exists only for one whose MAC
// checked (RefreshTokenSignature); a code's hash is found by its grant id
// and MAC, so a code with another key under a real code's MAC is found
// too, and its MAC is checked here (fosite's own check refused it). The
// read is the one fosite's handler made (no Redis round trip is added);
// a request refused before it, or whose token was not found, is rec as
// it is.
func (s *Server) presentedGrantOf(r *http.Request, rec audit.Record) audit.Record {
	p := clientAuthFrom(r.Context()).presentedOf()
	if !store.ValidGrantID(p.grant) || p.code && (s.strategy == nil || !s.strategy.authenticCode(r.Context(), r.PostForm.Get("code"))) {
		return rec
	}
	rec.GrantID, rec.Subject, rec.TokenClientID = p.grant, p.subject, p.client
	return rec
}

// clientLabel bounds the metrics' client label: self-registered clients
// share one value per kind.
func (s *Server) clientLabel(c fosite.Client) string {
	if cc, ok := c.(*clients.Client); ok && cc.Kind != clients.KindStatic {
		return string(cc.Kind)
	}
	if c == nil {
		return "unknown"
	}
	return c.GetID()
}

// userinfo returns the profile bound to the access token, per its scopes.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	sess, ar, ok := s.bearer(w, r, "userinfo")
	if !ok {
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		s.metrics.errors.WithLabelValues("userinfo", "insufficient_scope").Inc()
		s.bearerError(w, http.StatusForbidden, "insufficient_scope", "the openid scope is required")
		return
	}
	out := profileMap(ScopedProfile(sess.Profile, ar.GetGrantedScopes()))
	out["sub"] = sess.Subject
	writeJSON(w, http.StatusOK, out)
}

// revokeConsent forgets the signed-in user's approval of client_id: the
// next authorization of that client shows the consent page again. The user
// is identified by a valid access token of ours: any, for the consent to
// the token's own client; one granted connections.revoke for another
// client's (mayForgetConsent), else 403 insufficient_scope (RFC 6750
// §3.1). A request whose token verified writes one consent_revocation
// audit record (subject, the client named, the token's client, outcome,
// request id); a refused token writes none (no subject is known).
func (s *Server) revokeConsent(w http.ResponseWriter, r *http.Request) {
	sess, ar, ok := s.bearer(w, r, "consent")
	if !ok {
		return
	}
	clientID := r.PostForm.Get("client_id")
	rec := audit.Record{Event: audit.ConsentRevocation, Subject: sess.Subject, ClientID: clientID, Endpoint: "consent"}
	if c := ar.GetClient(); c != nil {
		rec.TokenClientID = c.GetID()
	}
	if clientID == "" {
		rec.Result = "invalid_request"
		s.auditEvent(r, rec)
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	if !mayForgetConsent(ar, clientID) {
		rec.Result = "insufficient_scope"
		s.auditEvent(r, rec)
		s.metrics.errors.WithLabelValues("consent", "insufficient_scope").Inc()
		const desc = "withdrawing the consent to another app than the access token's own needs the " + disconnectScope + " scope"
		w.Header().Set("WWW-Authenticate", bearerChallenge("insufficient_scope", desc)+`, scope="`+disconnectScope+`"`)
		writeJSONError(w, http.StatusForbidden, "insufficient_scope", desc)
		return
	}
	if err := s.RevokeConsent(r.Context(), sess.Subject, clientID); err != nil {
		rec.Result = "temporarily_unavailable"
		s.auditEvent(r, rec)
		s.unavailable(w)
		return
	}
	s.auditEvent(r, rec)
	w.WriteHeader(http.StatusNoContent)
}

// bearer authenticates the request's access token (exactly one
// Authorization header, never the query or body) and answers the error.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, endpoint string) (*Session, fosite.AccessRequester, bool) {
	ctx := r.Context()
	raw, err := tokens.FromRequest(r)
	switch {
	case errors.Is(err, tokens.ErrDuplicateAuthorization), errors.Is(err, tokens.ErrQueryToken):
		s.bearerError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return nil, nil, false
	case r.PostForm.Has("access_token"):
		s.bearerError(w, http.StatusBadRequest, "invalid_request", "send the access token in the Authorization header")
		return nil, nil, false
	case errors.Is(err, tokens.ErrNoToken), errors.Is(err, tokens.ErrNotBearer),
		errors.Is(err, tokens.ErrEmptyBearer), errors.Is(err, tokens.ErrMalformedBearer):
		// RFC 6750 §3.1: no credentials (or another scheme, or a Bearer
		// without a usable token), no error code. The description says
		// which of the last two it was: "no bearer token" is not true of
		// "Bearer a b".
		desc := "no bearer token"
		if errors.Is(err, tokens.ErrEmptyBearer) || errors.Is(err, tokens.ErrMalformedBearer) {
			desc = err.Error()
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", desc)
		return nil, nil, false
	case err != nil:
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", err.Error())
		return nil, nil, false
	}
	sess := NewSession()
	tu, ar, err := s.provider.IntrospectToken(ctx, raw, fosite.AccessToken, sess)
	if err == nil && tu != fosite.AccessToken {
		// fosite's introspection falls back from the hinted access token to
		// the other token types: a refresh token is no bearer credential
		// (RFC 6749 §1.5: it is sent to the token endpoint only; RFC 6750
		// §2: the bearer is an access token), so it is an invalid token here.
		err = fosite.ErrInvalidTokenFormat
	}
	if err != nil {
		status, code, desc := classify(err)
		if status == http.StatusServiceUnavailable {
			retry := unavailableRetryAfter
			if d, _, ok := fetchNotDone(err); ok {
				// The token's client's metadata document could not be
				// fetched: the fetch's words and Retry-After, as at the
				// other endpoints (fetchNotDone; brk48 #2, auth49 #2).
				retry = retryAfter(d)
			} else {
				desc = "the service is temporarily unavailable; retry later"
			}
			w.Header().Set("Retry-After", retry)
			writeJSONError(w, status, code, desc)
			return nil, nil, false
		}
		s.metrics.errors.WithLabelValues(endpoint, "invalid_token").Inc()
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return nil, nil, false
	}
	if !s.issuers.acceptsGrant(sess.UpstreamIssuer) {
		// Its grant's user signed in at an upstream issuer this server no
		// longer accepts: another provider's user (issuerSet).
		s.metrics.errors.WithLabelValues(endpoint, "invalid_token").Inc()
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token's user signed in at an identity provider this server no longer accepts")
		return nil, nil, false
	}
	return sess, ar, true
}

func (s *Server) bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", bearerChallenge(code, desc))
	writeJSONError(w, status, code, desc)
}

// bearerChallenge is the Bearer WWW-Authenticate challenge of an error
// (RFC 6750 §3): realm, error and error_description, the description in
// its characters (errorDescription; RFC 6750 §3 allows the same set as
// RFC 6749 §5.2, so it is a quoted-string without escapes).
func bearerChallenge(code, desc string) string {
	return `Bearer realm="tollgate", error="` + code + `", error_description="` + errorDescription(desc, 0) + `"`
}

// revoke is RFC 7009 token revocation (whole grant). Each request writes
// one revocation audit record (or one client_authentication_failure),
// saying what it did: the grant revoked; no active grant; the error, with
// the grant whose revocation failed — also when one of fosite's two
// revocations of the grant succeeded and the other failed
// (revocationFailure): the grant is then revoked, the request is answered
// as failed, and its record says both (docs/operations/audit-log.md).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if !r.PostForm.Has("token") {
		// RFC 7009 §2.1: token is REQUIRED; a missing (or empty, RFC 6749
		// §3.2) required parameter is invalid_request (RFC 6749 §5.2, which
		// RFC 7009 §2.2.1 uses). Checked before client authentication, as
		// grant_type at the token endpoint (fosite answered "The POST body
		// can not be empty", or 200 when other parameters were sent).
		s.metrics.errors.WithLabelValues("revoke", "invalid_request").Inc()
		s.auditEvent(r, audit.Record{Event: audit.Revocation, Result: "invalid_request", ClientID: claimedClientID(r),
			Endpoint: "revoke", Reason: "no token (RFC 7009 §2.1)"})
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "token is required (RFC 7009 section 2.1).")
		return
	}
	// fosite's revocation handler revokes the token's grant twice (its
	// refresh token, then its access token); the store revokes the whole
	// grant each time, and the request's scope keeps a grant revoked once
	// in the request from being announced and deleted again
	// (store.RevokeGrant).
	ctx := withRevocationFailure(store.WithRequestScope(r.Context()))
	if err := s.provider.NewRevocationRequest(ctx, r); err != nil {
		s.revokeFailed(w, r, revokeError(ctx, err), revocationFailureOf(ctx))
		return
	}
	rec := audit.Record{Event: audit.Revocation, ClientID: authenticatedClientID(r), ClientAuthenticated: true, Endpoint: "revoke",
		Reason: "no active grant for the token (RFC 7009 §2.2: answered 200)"}
	if grant, revoked, _ := revocationFailureOf(ctx).outcome(); revoked {
		rec.GrantID, rec.Reason = grant, "revocation request (RFC 7009)"
		rec.Subject = revocationFailureOf(ctx).user()
	}
	s.auditEvent(r, rec)
	// RFC 7009: an unknown or already revoked token is a success.
	w.WriteHeader(http.StatusOK)
}

// revokeFailed answers a revocation request fosite refused or could not
// complete: every error is an error answer (RFC 7009 §2.2.1, RFC 6749
// §5.2), never 200 — a client told its token was revoked would stop
// trying. A store failure is answered as at the token endpoint: a Redis
// outage 503 with Retry-After (the client may retry), anything else 500
// server_error (revokeError). Each is counted and audited with its code,
// in one record: a store failure's names the grant whose revocation failed
// (rf), and says whether the grant was revoked all the same — by the
// other of fosite's two revocations of it, in which case a retry is
// answered 200.
func (s *Server) revokeFailed(w http.ResponseWriter, r *http.Request, err error, rf *revocationFailure) {
	status, code, desc := classify(err)
	if st, cd, ds := clientAuthFrom(r.Context()).answered(); st != 0 {
		// Refused by client authentication (back-off, the client's
		// limit, its limiter failing): recorded as what guard answers,
		// which refusedWriter counts.
		if code == "invalid_client" {
			s.auditEvent(r, audit.Record{Event: audit.ClientAuthFailure, Result: cd, ClientID: claimedClientID(r), Endpoint: "revoke"})
		} else {
			// The client that authenticated, not the id the request
			// named: a private_key_jwt client may send none.
			s.auditEvent(r, audit.Record{Event: audit.Revocation, Result: cd, ClientID: authenticatedClientID(r), ClientAuthenticated: true, Endpoint: "revoke"})
		}
		writeJSONError(w, st, cd, ds)
		return
	}
	s.metrics.errors.WithLabelValues("revoke", code).Inc()
	if code == "invalid_client" {
		status = invalidClient(w, r)
		s.auditEvent(r, audit.Record{Event: audit.ClientAuthFailure, Result: code, ClientID: claimedClientID(r), Endpoint: "revoke"})
		writeJSONError(w, status, code, desc)
		return
	}
	// unauthorized_client: the client authenticated, but the token is
	// another client's (RFC 7009 §2.1); a store failure after
	// authentication: the record names the client that authenticated.
	// Refusals before authentication finished (a second authentication
	// method, Redis unavailable) name only the claimed id, marked
	// client_authenticated:false as a client_authentication_failure's is.
	rec := audit.Record{Event: audit.Revocation, Result: code, ClientID: claimedClientID(r), Endpoint: "revoke"}
	if c := clientAuthFrom(r.Context()).authenticatedClient(); c != nil {
		rec.ClientID, rec.ClientAuthenticated = c.GetID(), true
	}
	if status >= 500 {
		rec.Reason = "the revocation failed; the token may still be valid (RFC 7009 §2.2.1)"
		if grant, revoked, failed := rf.outcome(); failed {
			rec.GrantID, rec.Subject = grant, rf.user()
			if revoked {
				rec.Reason = "the revocation failed in part: the grant was revoked by one of its two revocations (refresh token, access token), the other failed; answered as a failure (RFC 7009 §2.2.1), a retry is answered 200"
			}
		}
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.ErrorContext(r.Context(), "revocation failed", "client_id", rec.ClientID, "err", err)
	}
	if code == "unauthorized_client" {
		// fosite's description asks the client to check its id and
		// secret, which were right: the token is another client's. The
		// record names whose (the security owner's clue that a token
		// leaked); nothing was revoked.
		desc = "the token was not issued to this client (RFC 7009 section 2.1)"
		rec.TokenClientID, rec.Subject = rf.tokenClient(), rf.user()
		rec.Reason = "the token was issued to another client (RFC 7009 §2.1); nothing revoked"
	}
	s.auditEvent(r, rec)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", unavailableRetryAfter)
	}
	writeJSONError(w, status, code, desc)
}

// basicChallenge is the challenge of an invalid_client answer to a client
// that used HTTP Basic or sent no client authentication at all.
const basicChallenge = `Basic realm="tollgate", charset="UTF-8"`

// invalidClient is the status of an invalid_client answer, 401, and sets
// its WWW-Authenticate challenge on w (RFC 9110 §15.5.2: a 401 carries
// one):
//   - the client used the Authorization header: the scheme it used (RFC
//     6749 §5.2 MUST), Basic even when its credentials did not decode,
//     any other scheme (a bearer token at introspection) named back;
//   - no client authentication at all (no Authorization, client_id nor
//     client_assertion): Basic, the scheme the endpoint takes.
//
// A client that authenticated in the body (client_secret_post,
// private_key_jwt, none) gets none: RFC 6749 §5.2 asks the scheme only of
// a client that used the header, and openid-client/oauth4webapi turn any
// challenge into WWWAuthenticateChallengeError instead of the body's
// ResponseBodyError (docs/reference/oauth.md, Interoperability).
func invalidClient(w http.ResponseWriter, r *http.Request) int {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		scheme, _, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "basic") || !isToken(scheme) {
			w.Header().Set("WWW-Authenticate", basicChallenge)
		} else {
			w.Header().Set("WWW-Authenticate", scheme+` realm="tollgate"`)
		}
		return http.StatusUnauthorized
	}
	if r.PostForm.Get("client_id") == "" && !r.PostForm.Has("client_assertion") && !r.PostForm.Has("client_assertion_type") {
		w.Header().Set("WWW-Authenticate", basicChallenge)
	}
	return http.StatusUnauthorized
}

// isToken reports whether s is an RFC 9110 §5.6.2 token (an auth-scheme).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// clientAuthenticator is fosite's client authentication (client_secret_basic,
// client_secret_post, private_key_jwt, none), as the token endpoint uses it.
type clientAuthenticator interface {
	AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error)
}

// introspectionAuthMethods are the client authentication methods the
// introspection endpoint accepts (and discovery advertises).
var introspectionAuthMethods = []string{clients.AuthBasic, clients.AuthPost, clients.AuthPrivateKeyJWT}

// introspect is RFC 7662 token introspection. The caller authenticates as
// a confidential client exactly as at the token endpoint (RFC 7662 §2.1;
// public clients and bearer tokens are refused with 401 invalid_client).
// It learns about a token only if the token was issued to it or if it is a
// resource server in the static registry (resource_server: true); for any
// other token, and for unknown, expired or revoked ones, the answer is
// {"active":false} (RFC 7662 §2.2: the server may answer inactive to a
// caller not allowed to know, so the answer reveals nothing).
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(status int, code, desc string) {
		s.metrics.errors.WithLabelValues("introspect", code).Inc()
		if code == "invalid_client" {
			status = invalidClient(w, r)
			s.auditEvent(r, audit.Record{Event: audit.ClientAuthFailure, Result: code, ClientID: claimedClientID(r), Endpoint: "introspect"})
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", unavailableRetryAfter)
		}
		writeJSONError(w, status, code, desc)
	}
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); scheme != "" && !strings.EqualFold(scheme, "basic") {
		fail(http.StatusUnauthorized, "invalid_client", "authenticate as a client (client_secret_basic, client_secret_post or private_key_jwt); bearer tokens are not accepted here")
		return
	}
	auth, ok := s.provider.(clientAuthenticator)
	if !ok {
		fail(http.StatusInternalServerError, "server_error", "the server could not complete the request")
		return
	}
	client, err := auth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		status, code, desc := classify(err)
		if st, cd, ds := clientAuthFrom(ctx).answered(); st != 0 {
			// Refused by client authentication: recorded as what guard
			// answers (refusedWriter counts it); an authenticated client
			// over its limit did not fail to authenticate.
			if code == "invalid_client" {
				s.auditEvent(r, audit.Record{Event: audit.ClientAuthFailure, Result: cd, ClientID: claimedClientID(r), Endpoint: "introspect"})
			}
			writeJSONError(w, st, cd, ds)
			return
		}
		if code != "invalid_request" && code != "temporarily_unavailable" && code != "server_error" {
			code = "invalid_client"
		}
		fail(status, code, desc)
		return
	}
	if client.IsPublic() {
		fail(http.StatusUnauthorized, "invalid_client", "public clients cannot use the introspection endpoint (RFC 7662 section 2.1 requires client authentication)")
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		fail(http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	tu, ar, err := s.provider.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), NewSession())
	if err != nil {
		if status, code, desc := classify(err); status == http.StatusServiceUnavailable {
			fail(status, code, desc)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	if !mayIntrospect(client, ar.GetClient(), tu) || s.upstreamIssuerRefusedOf(ar) {
		// Another client's token it may not see; a token of a grant whose
		// user signed in at an upstream issuer this server no longer
		// accepts (issuerSet), inactive as its refresh is refused.
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	resp := &fosite.IntrospectionResponse{Active: true, AccessRequester: ar, TokenUse: tu}
	if tu == fosite.AccessToken {
		// RFC 6750 §6.1.1 registers the type as "Bearer" (fosite's
		// BearerAccessToken is "bearer"; the value is case-insensitive,
		// RFC 6749 §5.1).
		resp.AccessTokenType = "Bearer"
	}
	resp.AccessRequester = introspected{ar, introspectedSession{ar.GetSession(), introspectionMembers(resp), tu}}
	s.provider.WriteIntrospectionResponse(ctx, w, resp)
}

// mayIntrospect: a client may introspect its own tokens; a resource server
// of the static registry may introspect every access token (tu), and
// another client's refresh token no more than any other client: a refresh
// token is no bearer credential (RFC 6749 §1.5: it goes to the token
// endpoint only; RFC 6750 §2), and a resource server told it is active
// could take it for one.
func mayIntrospect(caller, owner fosite.Client, tu fosite.TokenUse) bool {
	if owner != nil && owner.GetID() == caller.GetID() {
		return true
	}
	c, ok := caller.(*clients.Client)
	return ok && c.Kind == clients.KindStatic && c.ResourceServer && tu == fosite.AccessToken
}

// introspectionMembers are the members of an active token's introspection
// answer that fosite's WriteIntrospectionResponse (v0.49) leaves out
// although r holds them:
//   - token_type (RFC 7662 §2.2): the access token type of RFC 6749 §7.1,
//     r's AccessTokenType ("Bearer" for an access token); none for a
//     refresh token, which has no such type;
//   - token_use: "access_token" or "refresh_token" (fosite.TokenUse), the
//     member Ory Hydra's introspection answers with, so that the owner of
//     a refresh token is told which kind it asked about (RFC 7662 §2.2
//     allows members beyond its list).
func introspectionMembers(r fosite.IntrospectionResponder) map[string]any {
	m := map[string]any{"token_use": string(r.GetTokenUse())}
	if t := r.GetAccessTokenType(); t != "" {
		m["token_type"] = t
	}
	return m
}

// introspected is an introspected token's request whose session is
// introspectedSession: fosite's writer adds a session's extra claims
// (fosite.ExtraClaimsSession) to its answer — the one way it has to say
// more — and never lets them replace the members it writes itself.
type introspected struct {
	fosite.AccessRequester
	session fosite.Session
}

func (i introspected) GetSession() fosite.Session { return i.session }

// introspectedSession is the token's session with extra members for the
// introspection answer (introspectionMembers), and the expiry of the
// introspected token (use) where fosite's writer reads its exp: fosite's
// WriteIntrospectionResponse (v0.49) writes the session's access-token
// expiry whatever the token, which a refresh token's stored grant does not
// hold, so an active refresh token was answered without exp (RFC 7662
// §2.2) and its owner could not tell when it dies. A refresh token's exp
// is its grant's refresh expiry (Unix seconds): the instant after which
// the token endpoint refuses it (ValidateRefreshToken), REFRESH_TOKEN_TTL
// after it was issued.
type introspectedSession struct {
	fosite.Session
	extra map[string]any
	use   fosite.TokenUse
}

func (s introspectedSession) GetExtraClaims() map[string]any { return s.extra }

// GetExpiresAt answers the refresh token's expiry for fosite.AccessToken
// when the introspected token is a refresh token (see introspectedSession).
func (s introspectedSession) GetExpiresAt(key fosite.TokenType) time.Time {
	if key == fosite.AccessToken && s.use == fosite.RefreshToken {
		return s.Session.GetExpiresAt(fosite.RefreshToken)
	}
	return s.Session.GetExpiresAt(key)
}

var _ fosite.ExtraClaimsSession = introspectedSession{}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.ring.PublicJWKSJSON())
}

// discovery serves OpenID Connect discovery and RFC 8414 metadata.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Metadata())
}

// discoveryAtPath serves the metadata at RFC 8414 §3.1's path-inserted
// location, /.well-known/oauth-authorization-server/<path>, for two paths
// only, and answers 404 for every other:
//   - the issuer's own path, when PUBLIC_ISSUER_URL has one: §3.1's
//     location of its metadata;
//   - the MCP endpoint's path (MCP_RESOURCE_URL's, "mcp"): MCP clients that
//     predate protected resource metadata (MCP 2025-03-26 "Server Metadata
//     Discovery"), or find none, build the authorization server's metadata
//     URL from the MCP server URL, and the MCP TypeScript SDK does so by
//     path insertion (…/oauth-authorization-server/mcp) before it tries the
//     root; MCP 2025-06-18 "Authorization Server Discovery" has clients use
//     the issuer from RFC 9728 metadata, whose URL is the root one.
//
// Any other path names an issuer this server is not (RFC 8414 §3.3: the
// metadata's issuer must be the one the URL was built from), so serving
// this server's document there only told such a client to use it.
func (s *Server) discoveryAtPath(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.PathValue("path"), "/")
	if p != "" && (p == urlPath(s.issuer) || p == urlPath(s.cfg.MCPResource)) {
		s.discovery(w, r)
		return
	}
	writeJSONError(w, http.StatusNotFound, "invalid_request", "no authorization server metadata here: this server's is at "+s.issuer+"/.well-known/oauth-authorization-server (RFC 8414 section 3.1), or "+s.issuer+"/.well-known/openid-configuration")
}

// urlPath is the path of the URL raw without its leading and trailing
// slashes ("" when it has none or does not parse).
func urlPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.Trim(u.Path, "/")
}

// accessAlgs are the algorithms of access tokens this server issued that
// verify now: ACCESS_TOKEN_SIGNING_ALG's first, then each other one of
// tokens.AccessTokenAlgorithms with a published key. After a switch
// (RS256 to ES256, or back while the EC keys stay published) the tokens
// signed before it are still valid until they expire — the fleet's
// verifiers take either algorithm, each with the keys published for it —
// and a resource server that admits only the listed algorithms must not
// refuse them. The RSA key is always published (it signs ID tokens), so
// RS256 is always listed.
func (s *Server) accessAlgs() []string {
	out := []string{s.accessAlg()}
	if s.ring == nil {
		return out
	}
	for _, alg := range tokens.AccessTokenAlgorithms {
		if string(alg) != out[0] && s.ring.Supports(alg) {
			out = append(out, string(alg))
		}
	}
	return out
}

// Metadata is the authorization server metadata document.
func (s *Server) Metadata() map[string]any {
	iss := s.issuer
	m := map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + "/oauth/authorize",
		"token_endpoint":                                   iss + "/oauth/token",
		"userinfo_endpoint":                                iss + "/oauth/userinfo",
		"jwks_uri":                                         iss + "/oauth/jwks",
		"revocation_endpoint":                              iss + "/oauth/revoke",
		"introspection_endpoint":                           iss + "/oauth/introspect",
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            clients.GrantTypes,
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            clients.AuthMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{clients.AssertionSigningAlg},
		"revocation_endpoint_auth_methods_supported":       clients.AuthMethods,
		"introspection_endpoint_auth_methods_supported":    introspectionAuthMethods,
		// RFC 8414 §2: each endpoint that lists private_key_jwt MUST list
		// its signing algorithms (no default is implied); revocation and
		// introspection check assertions as the token endpoint does.
		"revocation_endpoint_auth_signing_alg_values_supported":    []string{clients.AssertionSigningAlg},
		"introspection_endpoint_auth_signing_alg_values_supported": []string{clients.AssertionSigningAlg},
		"scopes_supported": s.ScopeNames(),
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"name", "given_name", "family_name", "preferred_username", "email", "email_verified"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		// Not registered with IANA, but in use (RFC 8414 §2 allows more
		// metadata): the algorithms of our JWT access tokens (RFC 9068).
		"access_token_signing_alg_values_supported":      s.accessAlgs(),
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          s.cfg.CIMDEnabled,
		"resource_indicators_supported":                  true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     false,
	}
	if s.cfg.DCREnabled {
		m["registration_endpoint"] = iss + "/oauth/register"
	}
	return m
}

// grantOutlivedItsClient reports whether ar's grant was made (its
// authorization request reached this server: the session's rat, kept
// across refreshes — not auth_time, which an upstream single sign-on may
// date before the removal for a grant made after it) at or before a
// removal of its client from the registry that this replica knows of
// (records of removed clients, kept for the refresh-token lifetime): a
// client added back does not bring back the grants its removal ended. A
// grant without that time is not judged.
func (s *Server) grantOutlivedItsClient(ar fosite.AccessRequester) bool {
	if s.removed == nil || ar == nil || ar.GetClient() == nil {
		return false
	}
	sess, ok := ar.GetSession().(*Session)
	if !ok || sess.Claims == nil || sess.Claims.RequestedAt.IsZero() {
		return false
	}
	return s.removed.ClientRemoved(ar.GetClient().GetID(), sess.Claims.RequestedAt)
}
