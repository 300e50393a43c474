package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
)

// Client authentication at the token, revocation and introspection
// endpoints (docs/reference/oauth.md, "Client authentication"):
//
//  1. guard limits the request by its client address (platform/clientip).
//  2. fosite authenticates the client; our fosite.ClientAuthenticationStrategy
//     first refuses mixed methods (RFC 6749 §2.3), lets a client issued a
//     secret send it by either secret method (client_secret_basic or
//     client_secret_post, whichever it registered; clientLookups), and clients.SecretHasher
//     checks the secret (HMAC fast path, bcrypt behind a cache and a bound).
//  3. A wrong secret spends one token of the (client id, address) failure
//     budget; with the budget spent, wrong secrets answer 429 and bcrypt
//     checks of secrets not verified before are not run at all. A bcrypt
//     check takes its token before it runs (identical checks in flight
//     share one, clients.SecretHasher), and is not run when Redis does
//     not answer (503).
//  4. After authentication the request spends one token of the verified
//     client id's bucket; a public client, which proves nothing, spends one
//     of its bucket at the client address. Tokens of busy buckets (1 and
//     4) are leased from Redis a few at a time (ratelimit.Leasing).
//  5. A dynamic registration whose secret verified under a rotated client
//     secret key (the hasher reports it: clients.Attempt.Rehash) has its
//     stored hash rewritten under the current key (rehashDynamic).
//  6. At the token endpoint, the request then takes its turn in the signing
//     queue (signGate.admit; 503 when it does not come in time), before
//     fosite's handler reads its code or refresh token.
//
// A refusal in 2–4 that is not "wrong secret" (429 back-off or limit, 503
// busy or limiter unavailable) is answered by guard whatever fosite's
// handler wrote.

// Client-auth rate-limit scopes (Redis bucket names).
const (
	scopeAuthFailures = "client_auth_failures"
	clientScopeSuffix = "_client"
)

// errClientRefused is what our strategy returns when it refuses an
// authenticated client (rate limit, or the limiter unavailable); guard
// answers 429/503 with Retry-After whatever the handler writes.
var errClientRefused = &fosite.RFC6749Error{
	ErrorField: rateLimited, CodeField: http.StatusTooManyRequests,
	DescriptionField: "Too many requests for this client; retry after the Retry-After delay.",
}

// clientAuth is one request's client-authentication state (context value).
type clientAuth struct {
	endpoint string
	addr     string
	attempt  *clients.Attempt

	mu         sync.Mutex
	status     int // 0, or the refusal guard answers (429/503)
	retryAfter time.Duration
	desc       string
	// client is the client fosite's authentication accepted (nil: none
	// yet), set before any later step (the client's limit, the signing
	// queue) may refuse the request: fosite passes no client on when
	// authentication returns an error, and the audit records and metrics
	// name this one, never an id read from the request again.
	client fosite.Client
	// lookedUp is the client id fosite's authentication asked the client
	// store for (looked: it did), whether or not the client then
	// authenticated: for private_key_jwt without client_id, the
	// assertion's "sub" exactly as fosite read it (clientLookups).
	lookedUp string
	looked   bool
	// found is the id of the client the latest lookup found ("": none):
	// for a private_key_jwt assertion, the client whose key verified it
	// when fosite checks its jti (clientLookups.ClientAssertionJWTValid).
	found string
	// held is the token endpoint's audit record of the request (token,
	// withAudit's), made here so that the request's one context for
	// client authentication carries it too: no second copy of the request.
	held audit.Record
	// presented is the grant of the code or refresh token the token
	// request presented, as the store found it (grantWitness): what a
	// refused request's audit record names (presentedGrantOf).
	presented presentedGrant
}

// presentedGrant is what the store answered for the code or refresh token
// a token request presented: the grant's id, the client the code or token
// was issued to and the user's subject ("": none found). It is noted from
// the read fosite's handler makes anyway; nothing more is read for it.
type presentedGrant struct {
	grant, client, subject string
	// code: the grant is a code's (its MAC is checked before it is named,
	// presentedGrantOf); a refresh token's handle exists only for a token
	// whose MAC checked (accessStrategy.RefreshTokenSignature).
	code bool
}

// notePresented records r, the store's request for the code (code) or
// refresh token the request presented, in ctx's clientAuth (none outside
// the token endpoint's guard: nothing is noted).
func notePresented(ctx context.Context, r fosite.Requester, code bool) {
	ca := clientAuthFrom(ctx)
	if ca == nil || r == nil || r.GetClient() == nil {
		return
	}
	p := presentedGrant{grant: r.GetID(), client: r.GetClient().GetID(), code: code}
	if sess := r.GetSession(); sess != nil {
		p.subject = sess.GetSubject()
	}
	ca.mu.Lock()
	ca.presented = p
	ca.mu.Unlock()
}

// presentedOf is what notePresented recorded for the request (zero: none).
func (ca *clientAuth) presentedOf() presentedGrant {
	if ca == nil {
		return presentedGrant{}
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.presented
}

type clientAuthKey struct{}

// lookedUpID is the client id fosite looked up for the request
// (clientLookups); ok false when it looked up none (or no clientAuth).
func (ca *clientAuth) lookedUpID() (id string, ok bool) {
	if ca == nil {
		return "", false
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.lookedUp, ca.looked
}

// clientLookups is fosite's client store (fosite.Fosite.Store, which its
// client authentication asks): it records the first id looked up during a
// client-authenticating request in its clientAuth — the id the audit
// records of a failed authentication name (claimedClientID), taken from
// fosite rather than decoded from the request again: a private_key_jwt
// request need send no client_id, and a second decoding of its assertion
// need not read the "sub" fosite read (encoding/json matches field names
// case-insensitively).
//
// It keeps the ids of private_key_jwt assertions (RFC 7523 §3 item 7) per
// client (store.ClientAssertionJTIValid): fosite's methods name only the
// jti, and a jti is unique only among one issuer's tokens (RFC 7519
// §4.1.7). The client is the one whose key verified the assertion: fosite
// (DefaultClientAuthenticationStrategy) looks up one client, by the
// request's client_id or else the assertion's sub, verifies the
// assertion's signature with that client's keys, checks that its iss and
// sub are that client's id, and only then asks for the jti — so the
// client the request's latest lookup found (clientAuth.found). Never an
// id read from the request or the assertion by us.
type clientLookups struct {
	fosite.Storage
	store *store.Store
}

func (l clientLookups) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	ca := clientAuthFrom(ctx)
	if ca != nil {
		ca.mu.Lock()
		if !ca.looked {
			ca.lookedUp, ca.looked = id, true
			if ca.attempt != nil {
				ca.attempt.ClientID = id
			}
		}
		ca.found = ""
		ca.mu.Unlock()
	}
	c, err := l.Storage.GetClient(ctx, id)
	fetchBusy(ctx, err)
	if ca != nil && err == nil && c != nil {
		ca.mu.Lock()
		ca.found = c.GetID()
		ca.mu.Unlock()
	}
	cl, ok := c.(*clients.Client)
	if err != nil || !ok {
		return c, err
	}
	if used, ok := ctx.Value(secretMethodKey{}).(string); ok {
		return cl.AuthenticatingWith(used), nil
	}
	if redirect, ok := ctx.Value(authorizeRedirectKey{}).(string); ok {
		return cl.ForRedirect(redirect), nil
	}
	return c, nil
}

// ClientAssertionJWTValid reports fosite.ErrJTIKnown when the client whose
// key verified the assertion (clientAuth.found) used jti before.
func (l clientLookups) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	id, err := assertionClient(ctx)
	if err != nil {
		return err
	}
	return l.store.ClientAssertionJTIValid(ctx, id, jti)
}

// SetClientAssertionJWT records jti as used by the client whose key
// verified the assertion until exp.
func (l clientLookups) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	id, err := assertionClient(ctx)
	if err != nil {
		return err
	}
	return l.store.SetClientAssertionJTI(ctx, id, jti, exp)
}

// assertionClient is the id of the client the request's latest lookup
// found; a request without one (no clientAuth: not through guard) is
// refused, never recorded under no client.
func assertionClient(ctx context.Context) (string, error) {
	ca := clientAuthFrom(ctx)
	if ca == nil {
		return "", fosite.ErrServerError.WithDebug("a client assertion's jti checked outside client authentication")
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.found == "" {
		return "", fosite.ErrServerError.WithDebug("a client assertion's jti checked before its client was found")
	}
	return ca.found, nil
}

// fetchBusyRetryAfter is the Retry-After of a request refused because the
// guarded fetcher's bound stayed full (clients.ErrFetchBusy): the fetch
// timeout (clients.DefaultFetchTimeout, 5 s), how long a fetch holds its
// slot at most, so that every fetch that filled the bound when the request
// was refused has ended by then (auth49 #6). It was 1 s, after the request
// had waited its second for a slot already (DefaultFetchQueueWait): a
// bound that stayed full that long is held by slow fetches, which hold
// their slots up to the timeout, and a retry a second later found the same
// fetches in flight. The same delay as a store outage's and a document
// server's (fetchUnavailableRetryAfter).
const fetchBusyRetryAfter = clients.DefaultFetchTimeout

// fetchUnavailableRetryAfter is the Retry-After of a request whose
// client's metadata document server gave no answer about it
// (clients.ErrFetchUnavailable): another server's outage, of which this
// one knows no end; the store outage's delay (unavailableRetryAfter).
const fetchUnavailableRetryAfter = 5 * time.Second

// fetchNotDone says whether err is a client lookup or key fetch that was
// not done — refused by the guarded fetcher's bound (clients.ErrFetchBusy:
// nothing was sent) or a metadata document whose server gave no answer
// about it (clients.ErrFetchUnavailable: down, timed out, 408, 429, 5xx)
// — and if so what to answer: 503 temporarily_unavailable with Retry-After
// retry and desc, in fixed words. The client was not judged: it is
// neither unknown (invalid_client) nor are its grants' tokens inactive
// (brk47 #5, brk48 #2, auth49 #2).
func fetchNotDone(err error) (retry time.Duration, desc string, ok bool) {
	var md *clients.MetadataError
	switch {
	case errors.Is(err, clients.ErrFetchBusy):
		return fetchBusyRetryAfter, clients.FetchFailure(err), true
	case errors.Is(err, clients.ErrFetchUnavailable) && errors.As(err, &md):
		return fetchUnavailableRetryAfter, "the client's metadata document could not be fetched now (" + md.Reason + "); retry later", true
	}
	return 0, "", false
}

// retryAfter is d as a Retry-After value (whole seconds, RFC 9110 §10.2.3).
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// fetchBusy reports whether err is a lookup or key fetch that was not done
// (fetchNotDone), and then has ctx's client authentication, if any,
// answered 503 temporarily_unavailable with Retry-After (refuse,
// refusedWriter) — as the bcrypt bound's refusal is — in place of the 401
// invalid_client fosite answers for any failed lookup or key fetch: the
// client's credentials were not judged (brk47 #5).
func fetchBusy(ctx context.Context, err error) bool {
	retry, desc, ok := fetchNotDone(err)
	if !ok {
		return false
	}
	if ca := clientAuthFrom(ctx); ca != nil {
		ca.refuse(http.StatusServiceUnavailable, retry, desc)
	}
	return true
}

// authorizeRedirectKey is the context key of the redirect_uri of the
// authorization request fosite is reading (newAuthorizeRequest);
// clientLookups then gives fosite the client as clients.Client.ForRedirect
// makes it, so that clients.MatchRedirectURI alone decides which redirect
// URIs match.
type authorizeRedirectKey struct{}

// secretMethodKey is the context key of the secret method (client_secret_basic
// or client_secret_post) a client-authenticating request carries its
// secret by (authenticateClient); clientLookups then gives fosite the
// client as authenticating with it (clients.Client.AuthenticatingWith).
type secretMethodKey struct{}

func clientAuthFrom(ctx context.Context) *clientAuth {
	ca, _ := ctx.Value(clientAuthKey{}).(*clientAuth)
	return ca
}

// authenticatedClient is the client fosite's authentication accepted for
// the request (nil: none, or no clientAuth).
func (ca *clientAuth) authenticatedClient() fosite.Client {
	if ca == nil {
		return nil
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.client
}

func (ca *clientAuth) refuse(status int, retry time.Duration, desc string) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.status == 0 {
		ca.status, ca.retryAfter, ca.desc = status, retry, desc
	}
}

func (ca *clientAuth) refusal() (int, time.Duration, string) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.status, ca.retryAfter, ca.desc
}

// answered is the answer guard gives instead of the handler's
// (refusedWriter): status 0 when client authentication refused nothing.
// The token, revocation and introspection handlers record a refused
// request with this code — audit record, log line, grants metric — and do
// not count it in tollgate_auth_errors_total, which refusedWriter does for
// what it answers: a back-off 429 is neither an invalid_client answer nor
// two errors, and a limiter failure is not rate_limited.
func (ca *clientAuth) answered() (status int, code, desc string) {
	if ca == nil {
		return 0, "", ""
	}
	status, _, desc = ca.refusal()
	if status == 0 {
		return 0, "", ""
	}
	return status, refusalCode(status), desc
}

// refusalCode is the OAuth error code of guard's answer with status.
func refusalCode(status int) string {
	if status == http.StatusServiceUnavailable {
		return "temporarily_unavailable"
	}
	return rateLimited
}

// failureLimit is the (client id, address) failure budget.
func (s *Server) failureLimit() ratelimit.Limit {
	return ratelimit.Limit{Rate: s.cfg.AuthFailureLimit, Burst: s.cfg.AuthFailureLimit, Period: s.cfg.AuthFailureWindow}
}

// startClientAuth prepares the state of a client-authenticating request.
func (s *Server) startClientAuth(r *http.Request, endpoint, addr string) (*clientAuth, context.Context) {
	ctx := r.Context()
	ca := &clientAuth{endpoint: endpoint, addr: addr}
	// The attempt's client id is the one the request claims until fosite
	// looks a client up (clientLookups sets it then, before any secret is
	// compared): the budget, back-off and verified-secret cache are keyed
	// on the client whose stored hash the secret is checked against, not
	// on a reading of the request that fosite's need not match (brk42:
	// Basic credentials after two spaces were keyed on client "").
	subject := func() string { return ca.attempt.ClientID + "\x00" + addr }
	backOff := func(res ratelimit.Result) {
		ca.refuse(http.StatusTooManyRequests, res.RetryAfter, "too many failed client authentications; retry after the Retry-After delay")
	}
	// budget answers a read (Peek) or reservation (Allow) of the failure
	// budget: nil to go on, or the refusal of the secret unchecked — the
	// back-off's 429, or, when Redis did not answer, 503 with Retry-After
	// (docs/operations/failures.md: a shared dependency down fails fast).
	// A check is never run without its token: while Redis is down a
	// guesser's checks would cost nothing, and a right guess, cached,
	// would then be accepted from this address whatever the back-off.
	budget := func(res ratelimit.Result, err error) error {
		if err != nil {
			if ctx.Err() == nil { // a request that ended is nobody's outage
				s.log.WarnContext(ctx, "rate limiter unavailable", "endpoint", ca.endpoint, "client_id", ca.attempt.ClientID, "err", err)
			}
			ca.refuse(http.StatusServiceUnavailable, 5*time.Second, "the service is temporarily unavailable; retry later")
			return clients.ErrFailureBudgetUnavailable
		}
		if !res.Allowed {
			backOff(res)
			return clients.ErrSlowCheckRefused
		}
		return nil
	}
	ca.attempt = &clients.Attempt{
		ClientID:      claimedClientID(r),
		ClientAddress: addr,
		BackedOff: func() error {
			return budget(s.limiter.Peek(ctx, scopeAuthFailures, subject(), s.failureLimit()))
		},
		Reserve: func() error {
			return budget(s.limiter.Allow(ctx, scopeAuthFailures, subject(), s.failureLimit()))
		},
		Refund: func() {
			// The request may have ended while its check ran (the check
			// goes on for the requests sharing it): the token is given
			// back all the same.
			if err := s.limiter.Refund(context.WithoutCancel(ctx), scopeAuthFailures, subject(), s.failureLimit()); err != nil {
				s.log.WarnContext(ctx, "client authentication: failure token not given back", "client_id", ca.attempt.ClientID, "err", err)
			}
		},
		Failed: func() {
			res, err := s.limiter.Allow(ctx, scopeAuthFailures, subject(), s.failureLimit())
			if err == nil && !res.Allowed {
				backOff(res)
			}
		},
		Busy: func() {
			// An unchecked secret spends the budget as a wrong one does:
			// otherwise wrong guesses answered 503 cost nothing while the
			// right one, cached, is accepted (review41). Its token was
			// taken before the slot was sought (Reserve).
			ca.refuse(http.StatusServiceUnavailable, time.Second, "the server is busy checking client secrets; retry later")
		},
	}
	ctx = clients.WithAttempt(context.WithValue(ctx, clientAuthKey{}, ca), ca.attempt)
	if endpoint == "token" {
		ca.held.ClientAddr = s.remoteAddr(r)
		ctx = context.WithValue(ctx, auditKey{}, &ca.held)
	}
	return ca, ctx
}

// finishClientAuth logs a client authentication that checked a secret and
// did not accept it, with what happened to it (the audit record of the
// endpoint says invalid_client; this says wrong_secret, backoff or busy,
// and the status answered). Never the secret.
func (s *Server) finishClientAuth(ca *clientAuth, status int) {
	o := ca.attempt.Outcome()
	if o == clients.OutcomeNone || o == clients.OutcomeVerified {
		return
	}
	s.log.Info("client authentication failed", "endpoint", ca.endpoint, "client_id", ca.attempt.ClientID,
		"client_addr", ca.addr, "outcome", o.String(), "status", status)
}

// authenticateClient wraps fosite's client authentication: one method per
// request (RFC 6749 §2.3), then fosite's own checks, then the per-client
// rate limit keyed by the client fosite authenticated.
func (s *Server) authenticateClient(next fosite.ClientAuthenticationStrategy) fosite.ClientAuthenticationStrategy {
	return func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		m, err := oneAuthMethod(r, form)
		if err != nil {
			return nil, err
		}
		// A secret client may send its secret by either secret method
		// (clients.Client.AuthenticatingWith); the secret check, back-off
		// and limits below are the same whichever carries it.
		if m != "" {
			ctx = context.WithValue(ctx, secretMethodKey{}, m)
		}
		c, err := next(ctx, r, form)
		if err != nil {
			return nil, s.assertionAudienceHint(assertionKeyError(form, assertionClaimsError(form, err)))
		}
		if ca := clientAuthFrom(ctx); ca != nil {
			ca.mu.Lock()
			ca.client = c
			ca.mu.Unlock()
			// A public client proves nothing (RFC 6749 §2.1): its id is only
			// claimed, so its bucket is per (client id, address); keyed on
			// the id alone, anyone naming the client could spend the budget
			// of all its users.
			subject := c.GetID()
			if c.IsPublic() {
				subject += "\x00" + ca.addr
			}
			res, err := s.leases.Allow(ctx, ca.endpoint+clientScopeSuffix, subject, ratelimit.PerMinute(s.cfg.RateToken))
			if err != nil {
				s.log.WarnContext(ctx, "rate limiter unavailable", "endpoint", ca.endpoint, "client_id", c.GetID(), "err", err)
				ca.refuse(http.StatusServiceUnavailable, 5*time.Second, "the service is temporarily unavailable; retry later")
				return nil, errClientRefused
			}
			if !res.Allowed {
				ca.refuse(http.StatusTooManyRequests, res.RetryAfter, "too many requests for this client; retry after the Retry-After delay")
				return nil, errClientRefused
			}
			// A token request takes its turn in the signing queue here: after
			// its client is authenticated and within its limits, so no
			// anonymous request waits in (or is refused by) the queue the
			// clients' signatures use, and before its code or refresh token
			// is read (fosite authenticates the client first), so a refusal
			// loses neither. errSigningBusy is answered by tokenError (503,
			// Retry-After: 1); a request that ended while queued too.
			//
			// The code's read starts first (store.PrefetchCode), so its
			// round trip runs while the request waits for its turn.
			if ca.endpoint == "token" && form.Get("grant_type") == "authorization_code" {
				s.store.PrefetchCode(ctx, form.Get("code"))
			}
			// A registration's hash made under a rotated key is rewritten
			// under the current one now, while the code's read is under
			// way, and before the signing queue: an authorization_code
			// request keeps the turn it is admitted with until its
			// signatures are made (withHeldTurn), and the rewrite's two
			// round trips would hold it. A hash made under the current key
			// costs nothing here (Rehash is nil).
			if cl, ok := c.(*clients.Client); ok && cl.Kind == clients.KindDynamic {
				if h := ca.attempt.Rehash(cl.SecretHash); h != nil {
					s.rehashDynamic(ctx, cl, h)
				}
			}
			if ca.endpoint == "token" && s.gate.admit(ctx) != nil {
				return nil, errSigningBusy
			}
		}
		return c, nil
	}
}

// oneAuthMethod refuses requests that use more than one client
// authentication method (RFC 6749 §2.3: "MUST NOT use more than one
// authentication method in each request"), and a body client_id that
// names another client than HTTP Basic does. Otherwise it returns the
// client secret method the request carries its secret by:
// client_secret_basic with an Authorization header of the Basic scheme,
// client_secret_post with a client_secret body parameter, "" with neither.
//
// It reads the Authorization header first (basicCredentials), once.
func oneAuthMethod(r *http.Request, form url.Values) (secretMethod string, err error) {
	basicID, basic, err := basicCredentials(r)
	if err != nil {
		return "", err
	}
	methods := 0
	if basic {
		methods++
	}
	if form.Has("client_secret") {
		methods++
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		methods++
	}
	if methods > 1 {
		return "", fosite.ErrInvalidRequest.WithHint("The request uses more than one client authentication method (RFC 6749 section 2.3); use exactly one.")
	}
	if basic && form.Get("client_id") != "" {
		id, err := url.QueryUnescape(basicID)
		if err != nil || id != form.Get("client_id") {
			return "", fosite.ErrInvalidRequest.WithHint("The client_id in the body differs from the client authenticated with HTTP Basic.")
		}
	}
	switch {
	case basic:
		return clients.AuthBasic, nil
	case form.Has("client_secret"):
		return clients.AuthPost, nil
	}
	return "", nil
}

// basicCredentials checks an Authorization header of the Basic scheme
// (its name case-insensitive, RFC 9110 §11.1) before fosite reads it with
// net/http's BasicAuth:
//   - credentials after more than one space (RFC 9110 §11.4: 1*SP), which
//     BasicAuth does not read, are rewritten after exactly one, so that the
//     client authenticates;
//   - credentials that are not base64 of "id:secret" (RFC 7617 §2), or a
//     scheme without credentials, are a failed client authentication —
//     401 invalid_client with the Basic challenge (RFC 6749 §5.2: the
//     client tried the Authorization header) saying what to send — not
//     "no client authentication", which fosite's answer said when it
//     found no credentials it could read;
//   - a client id or secret that is not form-urlencoded (a "%" not
//     followed by two hex digits; RFC 6749 §2.3.1 has both encoded before
//     Basic) is a failed client authentication too, the same 401
//     invalid_client, not fosite's 400 invalid_request.
//
// basic is true when the request carries Basic credentials (net/http's
// BasicAuth reads them), and id is their client id, still form-urlencoded.
func basicCredentials(r *http.Request) (id string, basic bool, err error) {
	h := headerValue(r.Header, "Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "basic") {
		return "", false, nil
	}
	if trimmed := strings.TrimLeft(rest, " "); trimmed != rest {
		r.Header.Set("Authorization", scheme+" "+trimmed)
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		return "", false, fosite.ErrInvalidClient.WithHint("The Authorization header's Basic credentials could not be read: send base64 of client_id:client_secret, each form-urlencoded first (RFC 6749 section 2.3.1, RFC 7617).")
	}
	if _, err := url.QueryUnescape(id); err != nil {
		return "", false, fosite.ErrInvalidClient.WithHint("The client id in the Authorization header's Basic credentials is not form-urlencoded (RFC 6749 section 2.3.1): encode it with application/x-www-form-urlencoded before base64.")
	}
	if _, err := url.QueryUnescape(secret); err != nil {
		return "", false, fosite.ErrInvalidClient.WithHint("The client secret in the Authorization header's Basic credentials is not form-urlencoded (RFC 6749 section 2.3.1): encode it with application/x-www-form-urlencoded before base64.")
	}
	return id, true, nil
}

// refusedWriter answers a client-auth refusal (429/503) in place of what
// fosite's handler writes: the handler only saw "authentication failed".
type refusedWriter struct {
	http.ResponseWriter
	s        *Server
	ca       *clientAuth
	status   int
	replaced bool
}

func (w *refusedWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	status, retry, desc := w.ca.refusal()
	if status == 0 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced, w.status = true, status
	h := w.Header()
	h.Del("WWW-Authenticate")
	h.Set("Retry-After", ratelimit.RetryAfterSeconds(retry))
	if status != http.StatusServiceUnavailable {
		w.s.metrics.rateLimited.WithLabelValues(w.ca.endpoint).Inc()
	}
	code2 := refusalCode(status)
	w.s.metrics.errors.WithLabelValues(w.ca.endpoint, code2).Inc()
	writeJSONError(w.ResponseWriter, status, code2, desc)
}

func (w *refusedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *refusedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// registerSlowCheckMetrics exports the hasher's bcrypt comparisons
// (clients.SlowCheckStats): the bound and how full it is, how many ran,
// and how many found every slot taken.
func registerSlowCheckMetrics(reg prometheus.Registerer, h *clients.SecretHasher) error {
	if reg == nil {
		return nil
	}
	stat := func(f func(clients.SlowCheckStats) float64) func() float64 {
		return func() float64 { return f(h.SlowCheckStats()) }
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_client_secret_slow_checks_limit",
			Help: "Bound of bcrypt client secret checks in flight (CLIENT_SECRET_SLOW_CHECKS, or its default).",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.Limit) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_client_secret_slow_checks_in_flight",
			Help: "bcrypt client secret checks running now.",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.InFlight) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_client_secret_slow_checks_in_flight_max",
			Help: "The most bcrypt client secret checks that ran at once since the process started.",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.MaxInFlight) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_client_secret_slow_checks_total",
			Help: "bcrypt client secret checks run.",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.Run) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_client_secret_slow_checks_shared_total",
			Help: "Client authentications that took the outcome of an identical bcrypt check in flight (same client, secret and address) instead of running their own.",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.Shared) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_client_secret_slow_checks_busy_total",
			Help: "bcrypt client secret checks not run because every slot was taken (answered 503).",
		}, stat(func(s clients.SlowCheckStats) float64 { return float64(s.Busy) })),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// assertionAudienceHint is err with fosite's hint for a private_key_jwt
// assertion of another audience replaced: fosite names every accepted
// audience "the authorization server's token endpoint", the issuer among
// them (assertionAudiences). The hint names each for what it is.
func (s *Server) assertionAudienceHint(err error) error {
	e := fosite.ErrorToRFC6749Error(err)
	if !errors.Is(err, fosite.ErrInvalidClient) || !strings.HasPrefix(e.HintField, "Claim 'audience' from 'client_assertion' must match") {
		return err
	}
	return e.WithHintf("The client assertion's aud must be the token endpoint URL %s or the issuer identifier %s (RFC 7523 section 3).", s.issuer+"/oauth/token", s.issuer)
}

// assertionKeyHints begin fosite's refusals (findPublicKey) of a
// client assertion whose key is not in the client's JWK set: no key at
// all, none with the assertion's kid, none of its kid usable for "sig"
// with the assertion's algorithm.
var assertionKeyHints = []string{
	"The retrieved JSON Web Key Set does not contain any key.",
	"The JSON Web Token uses signing key with kid ",
	"Unable to find RSA public key with use='sig' for kid ",
	"Unable to find ECDSA public key with use='sig' for kid ",
}

// assertionKeyError is err, for a request authenticating with a client
// assertion (private_key_jwt), with fosite's invalid_request (400) for
// an assertion no key of the client's set verifies made invalid_client
// (401): the client failed to authenticate (RFC 6749 §5.2), and RFC 7523
// §3.2 has an assertion that is not valid answered invalid_client. The
// token endpoint then audits it as a client_authentication_failure, not
// as a refused grant. fosite's hint (which names the kid) is kept.
func assertionKeyError(form url.Values, err error) error {
	if form.Get("client_assertion_type") != jwtBearerAssertion {
		return err
	}
	e := fosite.ErrorToRFC6749Error(err)
	if e.ErrorField != fosite.ErrInvalidRequest.ErrorField {
		return err
	}
	for _, h := range assertionKeyHints {
		if strings.HasPrefix(e.HintField, h) {
			return fosite.ErrInvalidClient.WithHint(clients.Truncate(e.HintField, 300)).WithWrap(err)
		}
	}
	return err
}

// assertionClaimsHints are what the client is told of a client assertion
// whose signature verified but whose time claims did not (RFC 7523 §3
// items 4 and 5), by the text of the jwt library's error: fosite returns
// that error itself (its ValidationError's Inner, a plain error made
// anew each time), not an OAuth error, so it has no other mark.
var assertionClaimsHints = map[string]string{
	"Token is expired":         "The client assertion has expired (its exp is past; RFC 7523 section 3): sign a new one for each request.",
	"Token is not valid yet":   "The client assertion is not valid yet (its nbf is ahead; RFC 7523 section 3): check the client's clock.",
	"Token used before issued": "The client assertion was issued in the future (its iat is ahead of this server's clock): check the client's clock.",
}

// assertionClaimsError is err, for a request authenticating with a client
// assertion, with the jwt library's refusal of the assertion's exp, nbf
// or iat made invalid_client (401): the client failed to authenticate
// (RFC 6749 §5.2; RFC 7523 §3: the server MUST reject it). Unmapped, that
// plain error was answered 500 server_error and logged at ERROR as the
// server's own failure — for a client whose clock runs a few seconds
// fast, or for anyone signing expired assertions with the key of their
// own Client ID Metadata Document, which paged the token endpoint's
// failure alerts.
func assertionClaimsError(form url.Values, err error) error {
	if form.Get("client_assertion_type") != jwtBearerAssertion {
		return err
	}
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		return err
	}
	if hint, ok := assertionClaimsHints[err.Error()]; ok {
		return fosite.ErrInvalidClient.WithHint(hint).WithWrap(err)
	}
	return err
}

// jwtBearerAssertion is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// registerFetchMetrics exports the bound of the guarded fetcher's
// fetches in flight (Client ID Metadata Documents and jwks_uri sets:
// clients.FetchOptions.MaxInFlight) and its refusals, and those of the
// operator's clients' jwks_uri fetches, bounded apart.
func registerFetchMetrics(reg prometheus.Registerer, f *clients.MetadataFetcher) error {
	if reg == nil {
		return nil
	}
	stat := func(g func(clients.FetchStats) float64) func() float64 {
		return func() float64 { return g(f.FetchStats()) }
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_client_fetches_limit",
			Help: "Bound of Client ID Metadata Document and jwks_uri fetches in flight at once.",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.Limit) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_client_fetches_in_flight",
			Help: "Client ID Metadata Document and jwks_uri fetches in flight now.",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.InFlight) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_client_fetches_refused_total",
			Help: "Client ID Metadata Document and jwks_uri fetches refused because every slot stayed taken (answered as an unreachable document or jwks_uri).",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.Refused) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_client_fetches_address_refused_total",
			Help: "Client ID Metadata Document and jwks_uri fetches refused because their client address's share of the slots stayed taken.",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.RefusedPerAddress) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_auth_operator_jwks_fetches_in_flight",
			Help: "jwks_uri fetches of the operator's own clients (CLIENTS_FILE) in flight now, bounded apart from the fetches anonymous callers start.",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.Operator.InFlight) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_auth_operator_jwks_fetches_refused_total",
			Help: "jwks_uri fetches of the operator's own clients refused because every slot of their bound stayed taken.",
		}, stat(func(s clients.FetchStats) float64 { return float64(s.Operator.Refused) })),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
