package oauth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// fosite asks every token endpoint handler to populate every token
// response, and its handlers answer a grant they do not handle with
// errorsx.WithStack(fosite.ErrUnknownRequest): a stack trace per handler
// and request, 1.3 % of a refresh's CPU (docs/benchmarks/auth-server-history.md).
// These wrappers answer the plain sentinel when the handler's own
// CanHandleTokenEndpointRequest says no — the check the handler makes
// first — and call the handler otherwise; every other method is the
// handler's.

// populateIfHandled is each wrapper's PopulateTokenEndpointResponse: the
// plain fosite.ErrUnknownRequest when h cannot handle r, else h's own.
func populateIfHandled(ctx context.Context, h fosite.TokenEndpointHandler, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.PopulateTokenEndpointResponse(ctx, r, resp)
}

type codeGrantHandler struct {
	*oauth2.AuthorizeExplicitGrantHandler
	// store revokes a replayed code's grant (nil: fosite's handler
	// alone); pkce is fosite's PKCE check, as composed after this handler.
	store *store.Store
	pkce  *pkce.Handler
}

// codeGrantFactory is compose.OAuth2AuthorizeExplicitFactory whose
// handler revokes a reused code's grant only for a presentation that
// would have redeemed the code (codeGrantHandler.HandleTokenEndpointRequest),
// and whose own revocations do nothing (revokedByStore): fosite's handler
// revokes as soon as the store says the code was used, before it checks
// who presents it, and ignores the revocation's error. Its code reads are
// seen through codeWitness.
func codeGrantFactory(c fosite.Configurator, storage, strategy any) any {
	h := compose.OAuth2AuthorizeExplicitFactory(c, storage, strategy).(*oauth2.AuthorizeExplicitGrantHandler)
	h.TokenRevocationStorage = revokedByStore{h.TokenRevocationStorage}
	g := codeGrantHandler{AuthorizeExplicitGrantHandler: h}
	if st, ok := storage.(*store.Store); ok {
		h.CoreStorage = codeWitness{st}
		g.store = st
		g.pkce = compose.OAuth2PKCEFactory(c, storage, strategy).(*pkce.Handler)
	}
	return g
}

// HandleTokenEndpointRequest is fosite's code check, which refuses a code
// redeemed before (the store's "used" mark) only where an unused code
// would have passed: the code's MAC, the client (the authenticated
// confidential client, or a public client's client_id, is the one the
// code was issued to), the redirect_uri (RFC 6749 §4.1.3) and the PKCE
// verifier against the code's challenge (RFC 7636 §4.6, fosite's own PKCE
// handler). Such a presentation is a second use of the code by its client
// (or by whoever holds everything the client holds): it is denied with
// invalid_grant ("The authorization code has already been used.") and the
// grant the code created is revoked (OAuth 2.1 §4.1.3, RFC 6749 §4.1.2
// "SHOULD revoke"; RFC 9700 §4.5) — 503 when the revocation fails, so the
// grant is never left live behind an invalid_grant. Any other presentation
// of a used code gets what the same presentation of an unused code gets
// (invalid_grant for another client, redirect_uri or verifier;
// invalid_request for a missing verifier or redirect_uri, missingParam)
// and revokes nothing: a code leaked without its verifier — browser
// history, a Referer, a log — is not a switch that ends its user's grant.
//
// A code its user's disconnect of the app ended before it was redeemed
// (store.EndCodes) is refused the same way: a presentation that passes the
// checks is answered invalid_grant saying so (classify), any other as the
// unused code would be; nothing is revoked (the disconnect did).
func (h codeGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest // as populateIfHandled, without fosite's stack trace
	}
	if h.store == nil {
		return h.AuthorizeExplicitGrantHandler.HandleTokenEndpointRequest(ctx, r)
	}
	u := &usedCode{}
	if err := h.AuthorizeExplicitGrantHandler.HandleTokenEndpointRequest(context.WithValue(ctx, usedCodeKey{}, u), r); err != nil || u.sig == "" {
		return err
	}
	// The code was used (or ended), and fosite's code checks passed; the
	// PKCE check fosite would make next (compose order, server.go) decides.
	if err := h.pkce.HandleTokenEndpointRequest(ctx, r); err != nil {
		return err
	}
	if u.ended {
		return fosite.ErrInvalidGrant.WithWrap(store.ErrCodeEnded).WithDebug(store.ErrCodeEnded.Error())
	}
	if err := h.store.RevokeReplayedCode(ctx, u.sig); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return fosite.ErrInvalidGrant.WithHint(hintCodeUsed)
}

// hintCodeUsed is fosite's hint for a code used before.
const hintCodeUsed = "The authorization code has already been used."

// usedCode is a code grant's note of a used or ended code (usedCodeKey):
// the code's store handle, once codeWitness found the code used or ended
// ("": neither), and whether it was ended (store.ErrCodeEnded).
type usedCode struct {
	sig   string
	ended bool
}

type usedCodeKey struct{}

// codeWitness is the store (every method, its transactions included) as
// the code handler sees it, noting the grant of the code the request
// presented once the store finds the code (notePresented) — before
// fosite's checks of the code's MAC, its client, redirect URI and PKCE
// verifier, any of which may refuse it: the refused request's audit
// record names the grant, its user and the client the code was issued to
// (presentedGrantOf, which checks the MAC first).
//
// Within codeGrantHandler's check (usedCodeKey in ctx) a used or ended
// code is noted there and answered as an unused one, so that fosite's
// handler goes on to check who presents it.
type codeWitness struct{ *store.Store }

func (w codeWitness) GetAuthorizeCodeSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, err := w.Store.GetAuthorizeCodeSession(ctx, sig, session)
	used, ended := errors.Is(err, fosite.ErrInvalidatedAuthorizeCode), errors.Is(err, store.ErrCodeEnded)
	if err == nil || used || ended {
		notePresented(ctx, r, true)
	}
	if u, _ := ctx.Value(usedCodeKey{}).(*usedCode); u != nil && r != nil && (used || ended) {
		u.sig, u.ended = sig, ended
		return r, nil
	}
	return r, err
}

// revokedByStore is the code handler's revocation storage: fosite calls
// RevokeAccessToken and RevokeRefreshToken only for a code used again,
// before its checks of who presents it; codeGrantHandler revokes instead,
// after them. They do nothing.
type revokedByStore struct{ oauth2.TokenRevocationStorage }

func (revokedByStore) RevokeAccessToken(context.Context, string) error  { return nil }
func (revokedByStore) RevokeRefreshToken(context.Context, string) error { return nil }

// revocationFactory is compose.OAuth2TokenRevocationFactory whose storage
// keeps the store's error for the revocation endpoint: fosite's handler
// answers any storage error but "not found" with a bare
// fosite.ErrTemporarilyUnavailable (storeErrorsToRevocationError), which
// drops it, and the endpoint answers a Redis outage (store.ErrUnavailable:
// 503, Retry-After) and any other failure (500 server_error) as the token
// endpoint does (revokeError).
func revocationFactory(c fosite.Configurator, storage, strategy any) any {
	h := compose.OAuth2TokenRevocationFactory(c, storage, strategy).(*oauth2.TokenRevocationHandler)
	h.TokenRevocationStorage = keptRevocationErrors{ownerWitness{h.TokenRevocationStorage}}
	return h
}

// revocationFailure is what fosite's revocation handler met in the store
// during one revocation request (context value, set by the revocation
// endpoint, which writes the request's one audit record from it): the
// storage errors it does not take for "no such token", joined, so that a
// Redis outage in any of them is answered 503; and the outcome of the
// two revocations it makes for the token's grant — its refresh token's,
// then its access token's (RevokeRefreshToken, RevokeAccessToken), each of
// which revokes the whole grant in the store.
type revocationFailure struct {
	mu  sync.Mutex
	err error
	// grant is the grant fosite's handler revoked the tokens of ("":
	// none, the token has no active grant or is another client's);
	// revoked and failed say whether one of its two revocations
	// succeeded, and whether one failed.
	grant           string
	revoked, failed bool
	// owner is the client the presented token was issued to, and
	// subject its grant's user, once the store found its grant ("": not
	// found).
	owner, subject string
}

// found notes the client the presented token was issued to and its
// grant's user.
func (rf *revocationFailure) found(r fosite.Requester) {
	if rf == nil || r == nil || r.GetClient() == nil {
		return
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.owner = r.GetClient().GetID()
	if sess := r.GetSession(); sess != nil {
		rf.subject = sess.GetSubject()
	}
}

// user is the subject of the presented token's grant, or "".
func (rf *revocationFailure) user() string {
	if rf == nil {
		return ""
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.subject
}

// tokenClient is the client the presented token was issued to, or "".
func (rf *revocationFailure) tokenClient() string {
	if rf == nil {
		return ""
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.owner
}

type revocationFailureKey struct{}

func withRevocationFailure(ctx context.Context) context.Context {
	return context.WithValue(ctx, revocationFailureKey{}, &revocationFailure{})
}

// revocationFailureOf is ctx's revocationFailure: non-nil only within an
// RFC 7009 request.
func revocationFailureOf(ctx context.Context) *revocationFailure {
	rf, _ := ctx.Value(revocationFailureKey{}).(*revocationFailure)
	return rf
}

func (rf *revocationFailure) keep(err error) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.err = errors.Join(rf.err, err)
}

func (rf *revocationFailure) get() error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.err
}

// revocation notes one of fosite's two revocations of grant: err is the
// store's answer.
func (rf *revocationFailure) revocation(grant string, err error) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.grant = grant
	if err == nil {
		rf.revoked = true
	} else {
		rf.failed = true
	}
}

// outcome is the grant fosite's handler revoked the tokens of, and whether
// one of its revocations succeeded and one failed (nil: none).
func (rf *revocationFailure) outcome() (grant string, revoked, failed bool) {
	if rf == nil {
		return "", false, false
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return rf.grant, rf.revoked, rf.failed
}

// revokeError is err of fosite's NewRevocationRequest with a failure of
// the store in place of fosite's bare ErrTemporarilyUnavailable, wrapped
// as fosite's token handlers wrap one (ErrServerError, which classify
// answers 503 for store.ErrUnavailable and 500 otherwise).
func revokeError(ctx context.Context, err error) error {
	rf := revocationFailureOf(ctx)
	if rf == nil || !errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		return err
	}
	if kept := rf.get(); kept != nil {
		return fosite.ErrServerError.WithWrap(kept).WithDebug(kept.Error())
	}
	return err
}

// keptRevocationErrors is the revocation handler's storage: it keeps each
// error fosite's handler does not take for "no such token" in the
// request's revocationFailure.
type keptRevocationErrors struct{ oauth2.TokenRevocationStorage }

func keepRevocationError(ctx context.Context, err error) error {
	if err != nil && !errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrInactiveToken) {
		if rf := revocationFailureOf(ctx); rf != nil {
			rf.keep(err)
		}
	}
	return err
}

// GetRefreshTokenSession is the store's, with a rotated refresh token of
// a live grant (the store's request with fosite.ErrInactiveToken) found:
// fosite's handler took that error for "no such token" and answered 200
// with the grant live, though the same token at the token endpoint is
// reuse that revokes the grant, and the previous token within the grace
// window revoked it here too. Found, the token's grant is revoked as any
// other's (RFC 7009 §2.1: the whole grant), and another client's rotated
// token is refused with unauthorized_client (fosite's owner check).
func (k keptRevocationErrors) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := k.TokenRevocationStorage.GetRefreshTokenSession(ctx, signature, session)
	if rotatedOfLiveGrant(r, err) {
		return r, nil
	}
	return r, keepRevocationError(ctx, err)
}

func (k keptRevocationErrors) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := k.TokenRevocationStorage.GetAccessTokenSession(ctx, signature, session)
	return r, keepRevocationError(ctx, err)
}

// rotatedOfLiveGrant reports whether the store answered a rotated refresh
// token of a live grant: the grant's request with fosite.ErrInactiveToken.
func rotatedOfLiveGrant(r fosite.Requester, err error) bool {
	return r != nil && r.GetID() != "" && errors.Is(err, fosite.ErrInactiveToken)
}

// ownerWitness is the store as the revocation handler sees it (under
// keptRevocationErrors), noting in the request's revocationFailure the
// client the presented token was issued to once the store finds the
// token's grant — a live access or refresh token's, or a rotated refresh
// token's of a live grant (rotatedOfLiveGrant) — as reuseWitness notes it
// for the token endpoint: the revocation audit record names it
// (token_client_id), and the grant's user (subject_hash). fosite's
// handler asks without a session (nil: the store skips decoding it); the
// witness asks with one, so that the user is known — the same read, its
// session decoded too.
type ownerWitness struct{ oauth2.TokenRevocationStorage }

func (w ownerWitness) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	if session == nil {
		session = NewSession()
	}
	r, err := w.TokenRevocationStorage.GetRefreshTokenSession(ctx, signature, session)
	witnessOwner(ctx, r, err)
	return r, err
}

func (w ownerWitness) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	if session == nil {
		session = NewSession()
	}
	r, err := w.TokenRevocationStorage.GetAccessTokenSession(ctx, signature, session)
	witnessOwner(ctx, r, err)
	return r, err
}

func witnessOwner(ctx context.Context, r fosite.Requester, err error) {
	if err == nil || rotatedOfLiveGrant(r, err) {
		revocationFailureOf(ctx).found(r)
	}
}

// RevokeRefreshToken and RevokeAccessToken are fosite's two revocations
// of the token's grant (requestID, the grant's id): their outcome is
// noted for the request's audit record.
func (k keptRevocationErrors) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return noteRevocation(ctx, requestID, k.TokenRevocationStorage.RevokeRefreshToken(ctx, requestID))
}

func (k keptRevocationErrors) RevokeAccessToken(ctx context.Context, requestID string) error {
	return noteRevocation(ctx, requestID, k.TokenRevocationStorage.RevokeAccessToken(ctx, requestID))
}

// noteRevocation records err, the store's answer to one of fosite's two
// revocations of grant, in the request's revocationFailure (outcome, and
// keepRevocationError's failure) and returns it.
func noteRevocation(ctx context.Context, grant string, err error) error {
	if rf := revocationFailureOf(ctx); rf != nil {
		rf.revocation(grant, err)
	}
	return keepRevocationError(ctx, err)
}

func (h codeGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.AuthorizeExplicitGrantHandler, r, resp)
}

type refreshGrantHandler struct {
	*oauth2.RefreshTokenGrantHandler
	s    *Server
	core *accessStrategy
}

// refreshGrantFactory is compose.OAuth2RefreshTokenGrantFactory wrapped in
// refreshGrantHandler, which tells the store beforehand what the refresh
// will do (expect) and applies the scope parameter.
//
// Its storage is the store seen through reuseWitness.
func (s *Server) refreshGrantFactory(core *accessStrategy) compose.Factory {
	return func(c fosite.Configurator, _, strategy any) any {
		return refreshGrantHandler{compose.OAuth2RefreshTokenGrantFactory(c, reuseWitness{s.store}, strategy).(*oauth2.RefreshTokenGrantHandler), s, core}
	}
}

// reuseWitness is the store (every method, its transactions included) as
// the refresh handler sees it, noting whose token a reused one is: when
// the store answers a rotated refresh token with its grant's request and
// fosite.ErrInactiveToken — reuse, which fosite's handler revokes before
// its owner check — the request's audit record learns the client the
// token was issued to (audit.Record.TokenClientID), for the
// refresh_reuse_detected and revocation records, which name the
// presenting client: another client's reuse of a stolen token then reads
// as what it is. Any grant the store finds for the token is noted
// (notePresented) for the record of a request refused after the read —
// another client's current token, a scope or resource the grant does not
// have.
type reuseWitness struct{ *store.Store }

func (w reuseWitness) GetRefreshTokenSession(ctx context.Context, handle string, session fosite.Session) (fosite.Requester, error) {
	r, err := w.Store.GetRefreshTokenSession(ctx, handle, session)
	if errors.Is(err, fosite.ErrInactiveToken) && r != nil && r.GetClient() != nil {
		if held, _ := ctx.Value(auditKey{}).(*audit.Record); held != nil {
			held.TokenClientID = r.GetClient().GetID()
		}
	}
	if err == nil || errors.Is(err, fosite.ErrInactiveToken) {
		notePresented(ctx, r, false)
	}
	return r, err
}

// HandleTokenEndpointRequest is fosite's refresh check, then RFC 6749 §6's
// scope parameter: a scope it names must have been granted, exactly as
// written (scope tokens are case-sensitive, §3.3; fosite's
// handler replaced the requested scope with the grant's without looking,
// so a request for more got 200 instead of invalid_scope, §5.2), and the
// tokens issued carry the scopes it names only. The grant keeps its scope
// (the store's record is not rewritten from the request), so the new
// refresh token's scope is identical to the old one's, as §6 requires, and
// a later refresh may ask for the whole scope again. Nothing is written
// when a check fails: the store rotates only when it can tell that none
// will (expect), else at Commit, so a refused request leaves the refresh
// token as it was.
func (h refreshGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if h.CanHandleTokenEndpointRequest(ctx, r) {
		h.expect(ctx, r)
	}
	if err := h.RefreshTokenGrantHandler.HandleTokenEndpointRequest(ctx, r); err != nil {
		return err
	}
	requested := strings.Fields(r.GetRequestForm().Get("scope"))
	for _, sc := range requested {
		// Exact match: scope tokens are case-sensitive (RFC 6749 §3.3).
		// fosite's Arguments.Has compares without regard to case, so
		// "OPENID" passed here and was then dropped by the exact narrowing
		// below: 200 with tokens of no scope at all (brk49 #1).
		if !slices.Contains(r.GetGrantedScopes(), sc) {
			if h.s.unsupportedScope([]string{sc}) != "" {
				return scopeNotSupported(sc)
			}
			return fosite.ErrInvalidScope.WithHintf("The scope '%s' was not granted to this grant: a refresh may ask for the granted scopes only (RFC 6749 §6); sign in again to get more.", quotedValue(sc))
		}
	}
	if ar, ok := r.(*fosite.AccessRequest); ok && len(requested) > 0 {
		var keep fosite.Arguments
		for _, sc := range ar.GrantedScope {
			if slices.Contains(requested, sc) {
				keep = append(keep, sc)
			}
		}
		ar.GrantedScope, ar.RequestedScope = keep, fosite.Arguments(requested)
	}
	return nil
}

// expect tells the store what this refresh will do (store.ExpectRefresh),
// so that its read of the grant rotates the token in the same round trip.
// It says nothing it cannot state exactly (a value with whitespace would
// blur the store script's space-separated lists): the store then rotates
// at Commit.
func (h refreshGrantHandler) expect(ctx context.Context, r fosite.AccessRequester) {
	c := r.GetClient()
	if c == nil || h.core == nil {
		return
	}
	form := r.GetRequestForm()
	id, mac, ok := h.core.parseRefresh(ctx, form.Get("refresh_token"))
	if !ok {
		return
	}
	_, succ := h.core.successorOf(ctx, id, mac)
	in := store.RefreshIntent{
		Successor: succ, ClientID: c.GetID(), Scopes: strings.Fields(form.Get("scope")),
		ClientScopes: c.GetScopes(), ClientAudiences: c.GetAudience(), RefreshScopes: h.Config.GetRefreshTokenScopes(ctx),
	}
	if rs := form["resource"]; len(rs) > 0 {
		// token.go's check: exactly one resource, the grant's.
		in.Resource = store.NoResource
		if res := h.s.canonicalResource(rs[0]); len(rs) == 1 && res != "" && !hasSpace(res) {
			in.Resource = res
		}
	}
	for _, l := range [][]string{in.ClientScopes, in.ClientAudiences, in.RefreshScopes} {
		for _, v := range l {
			if v == "" || hasSpace(v) {
				return
			}
		}
	}
	store.ExpectRefresh(ctx, id+"."+mac, in)
}

// hasSpace reports whether s holds ASCII white space (" \t\n\r\v\f", as
// strings.Fields splits on): a byte loop, where strings.ContainsAny built
// its set of six bytes on every call (eight calls a refresh; session 40
// "perf12").
func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ' ' || c >= '\t' && c <= '\r' {
			return true
		}
	}
	return false
}

func (h refreshGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.RefreshTokenGrantHandler, r, resp)
}

type oidcCodeHandler struct {
	*openid.OpenIDConnectExplicitHandler
}

func oidcCodeFactory(c fosite.Configurator, storage, strategy any) any {
	return oidcCodeHandler{compose.OpenIDConnectExplicitFactory(c, storage, strategy).(*openid.OpenIDConnectExplicitHandler)}
}

func (h oidcCodeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return populateIfHandled(ctx, h.OpenIDConnectExplicitHandler, r, resp)
}

// HandleTokenEndpointRequest is the OpenID Connect code handler's, which
// does nothing at this step but answer errorsx.WithStack(ErrUnknownRequest)
// — to every code grant, since its CanHandleTokenEndpointRequest says yes
// to them: a stack trace per code grant (0.6–0.7 µs and 304 B alone, with
// a test's shallow stack; 0.27 % of a 4,000-grant CPU profile, where the
// request's stack is deeper; docs/benchmarks/auth-server-history.md, session
// "codecpu"). It answers the plain sentinel, which fosite treats the same
// (errors.Is).
func (h oidcCodeHandler) HandleTokenEndpointRequest(context.Context, fosite.AccessRequester) error {
	return fosite.ErrUnknownRequest
}

var (
	_ fosite.AuthorizeEndpointHandler = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = codeGrantHandler{}
	_ fosite.TokenEndpointHandler     = refreshGrantHandler{}
	_ fosite.AuthorizeEndpointHandler = oidcCodeHandler{}
	_ fosite.TokenEndpointHandler     = oidcCodeHandler{}
)
