package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// cimdMinCache and the CIMD_CACHE_TTL setting bound how long a fetched
// metadata document is trusted. cimdUnconfirmedCache is how long one is
// kept before any authorization with its client has reached a user:
// anyone may name a client id, at the token endpoint too, and have the
// auth-server fetch and cache its document.
const (
	cimdMinCache         = time.Minute
	cimdUnconfirmedCache = time.Minute
)

// cimdRecord is a cached Client ID Metadata Document: the members of it
// Tollgate reads (clients.Metadata, written by store.MarshalJSON — never
// the document as served, whose other members anyone could fill up to
// its 16 KiB), and until when it may be kept once an authorization with
// its client has reached a user (Until, Unix seconds: the document's
// max-age within cimdMinCache … CIMD_CACHE_TTL, from its fetch).
type cimdRecord struct {
	Doc   json.RawMessage `json:"doc"`
	Until int64           `json:"until"`
}

// rules are what a self-registered client (dynamic registration or
// metadata document) must satisfy, and give it its resources: those of
// DYNAMIC_CLIENT_RESOURCES (default the MCP resource), not every resource
// the install serves. The client is built from them at each lookup, so a
// narrower setting holds for clients registered before it, from their
// next authorization or token request (RFC 8707 §2 invalid_target).
func (s *Server) rules() clients.Rules {
	return clients.Rules{Resources: s.cfg.DynamicClientResources, Production: s.cfg.Production(), Scopes: s.ScopeNames(), ScopeSource: s.ScopeNames}
}

// metadataClient resolves an https client id through its Client ID
// Metadata Document, cached in Redis.
//
// With CIMD_ALLOWED_HOSTS set, only client ids on those hosts are fetched;
// any other is an unknown client.
func (s *Server) metadataClient(ctx context.Context, id string) (*clients.Client, error) {
	if len(s.cfg.DynamicClientResources) == 0 {
		return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, &clients.MetadataError{Reason: "this server lets self-registered clients use no resource (DYNAMIC_CLIENT_RESOURCES)"})
	}
	if !clients.HostAllowed(s.cfg.CIMDAllowedHosts, id) {
		return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, &clients.MetadataError{Reason: "the client id's host is not in the allowed hosts (CIMD_ALLOWED_HOSTS)"})
	}
	// The cache holds the members of the document Tollgate reads
	// (cimdRecord), decoded again at each lookup as when it was fetched.
	// An entry that does not decode so (one of an older format: the
	// document as served) is fetched again.
	var (
		md    *clients.Metadata
		until time.Time
	)
	raw, ok, err := s.store.GetRaw(ctx, "cimd", id)
	if err != nil {
		return nil, err
	}
	if ok {
		var rec cimdRecord
		if json.Unmarshal(raw, &rec) == nil && rec.Doc != nil {
			if md, _ = clients.DecodeDocument(rec.Doc, id); md != nil {
				until = time.Unix(rec.Until, 0)
			}
		}
	}
	fetched := md == nil
	if fetched {
		var ttl time.Duration
		if md, _, ttl, err = s.cimd.FetchDocument(ctx, id); err != nil {
			if errors.Is(err, clients.ErrFetchBusy) || errors.Is(err, clients.ErrFetchUnavailable) {
				// Not fosite.ErrNotFound: the document was not fetched
				// (the fetch bound stayed full), or its server gave no
				// answer about it (down, timed out, a 5xx: auth49 #2);
				// the client is not unknown. A grant of it read now
				// (introspection, userinfo, revocation, refresh) is
				// answered 503, never as a token that is not active
				// (brk48 #2: fosite takes a not-found client's grant for
				// one that is gone); the authorization endpoint and
				// client authentication answer 503 too (fetchNotDone).
				return nil, fmt.Errorf("client %q: %w", id, err)
			}
			return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
		}
		until = s.now().Add(min(max(ttl, cimdMinCache), s.cfg.CIMDCacheTTL))
	}
	// Checked at each lookup, the cached document too: one cached before
	// the rule, or before the operator named a client so, is refused.
	if err := clients.CheckNameAndURI(md.ClientName, md.ClientURI, s.static); err != nil {
		return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, &clients.MetadataError{Reason: err.Error()})
	}
	c, err := md.ToClient(s.rules(), clients.KindMetadata)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	c.CacheUntil = until
	// Only a document these checks accept is cached, and only the
	// members read, for cimdUnconfirmedCache until an authorization with
	// the client reaches a user (confirmMetadataClient): a refused one is
	// fetched again at its next use and costs Redis nothing; one that
	// anonymous requests only name costs a few hundred bytes for a minute
	// (before, the document as served, up to 16 KiB, for as long as its
	// server's Cache-Control asked, up to CIMD_CACHE_TTL).
	if fetched {
		doc, err := store.MarshalJSON(md)
		if err != nil {
			return nil, err
		}
		rec, err := store.MarshalJSON(cimdRecord{Doc: doc, Until: until.Unix()})
		if err != nil {
			return nil, err
		}
		if len(rec) <= cimdMaxRecordBytes {
			if err := s.store.PutRaw(ctx, "cimd", id, rec, min(cimdUnconfirmedCache, until.Sub(s.now()))); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// cimdMaxRecordBytes bounds a cached document's record: the members read
// from a document of at most 16 KiB, re-encoded, and the record's own few
// bytes (a record over it, which none should be, is not cached: the
// document is fetched at each use).
const cimdMaxRecordBytes = 16<<10 + 512

// confirmMetadataClient keeps c's cached document, if c is a metadata
// document's client, until c.CacheUntil: an authorization with it has
// reached a user (signed in, then shown the consent page or issued a code
// under a remembered approval). Only lengthened, never past the
// document's own bound; a failure is logged (the document is fetched
// again sooner, nothing else).
func (s *Server) confirmMetadataClient(ctx context.Context, c *clients.Client) {
	if c.Kind != clients.KindMetadata || c.CacheUntil.IsZero() {
		return
	}
	if err := s.store.ExtendUntil(ctx, "cimd", c.ID, c.CacheUntil); err != nil {
		s.log.WarnContext(ctx, "client metadata document: cannot keep its cache entry longer", "client_id", c.ID, "err", err)
	}
}

// dynamicRecord is a dynamically registered client at rest.
type dynamicRecord struct {
	Metadata   clients.Metadata `json:"metadata"`
	SecretHash string           `json:"secret_hash,omitempty"`
	IssuedAt   int64            `json:"issued_at"`
}

func (s *Server) dynamicClient(ctx context.Context, id string) (*clients.Client, error) {
	var rec dynamicRecord
	ok, err := s.store.GetJSON(ctx, "dcr", id, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fosite.ErrNotFound
	}
	// Used records live on; unused ones expire after DCR_UNUSED_TTL.
	_ = s.store.Touch(ctx, "dcr", id, s.cfg.DCRTTL)
	return dynamicToClient(rec, s.rules())
}

// rehashDynamic rewrites the stored secret hash of dynamic registration
// c as h, the hash of the secret the client just authenticated with under
// the current client secret key; the hasher gives it when that secret
// matched c's hash under a rotated key (clients.Attempt.Rehash), and only
// then. A registration's secret never expires, and without this its hash
// would stop verifying once the key it was made with is dropped (the
// token HMAC secret's rotation, docs/operations/key-rotation.md). The
// record is rewritten only while it still holds the hash that was
// verified, and only while it exists (a registration that expired
// meanwhile is not brought back). Of concurrent rewrites the last wins, each with the current
// key of its replica; a replica of another current key rewrites it again
// when it authenticates the client. A failure is logged, never the
// request's: the hash still verifies where the rotated key is accepted.
func (s *Server) rehashDynamic(ctx context.Context, c *clients.Client, h []byte) {
	var rec dynamicRecord
	if ok, err := s.store.GetJSON(ctx, "dcr", c.ID, &rec); err != nil || !ok || rec.SecretHash != string(c.SecretHash) {
		return
	}
	rec.SecretHash = string(h)
	switch stored, err := s.store.ReplaceJSON(ctx, "dcr", c.ID, rec, s.cfg.DCRTTL); {
	case err != nil:
		s.log.WarnContext(ctx, "dynamic registration: cannot rewrite the client secret hash under the current key", "client_id", c.ID, "err", err)
	case !stored:
		// Expired between the read and the write: not brought back.
		s.log.DebugContext(ctx, "dynamic registration: gone before its client secret hash was rewritten; nothing written", "client_id", c.ID)
	}
}

func dynamicToClient(rec dynamicRecord, rules clients.Rules) (*clients.Client, error) {
	md := rec.Metadata
	// A registration stored before a redirect URI rule (the host rule of
	// clients.CheckRedirectURI) keeps only the URIs that pass it today: an
	// authorization request naming another is refused before sign-in, as
	// for an unregistered one.
	redirects := make([]string, 0, len(md.RedirectURIs))
	for _, u := range md.RedirectURIs {
		if clients.CheckRedirectURI(u, true) == nil {
			redirects = append(redirects, u)
		}
	}
	c := &clients.Client{
		ID: md.ClientID, Name: md.ClientName, RedirectURIs: redirects, Grants: md.GrantTypes,
		Resources: rules.Resources, AuthMethod: md.AuthMethod, RequirePKCE: true, Kind: clients.KindDynamic,
		SecretHash: []byte(rec.SecretHash),
	}
	// A registration is allowed every scope supported when the client
	// asks, whatever scope it registered with (and whatever older records
	// stored): the registration's policy (register). Consent covers what
	// the user approves at each authorization.
	c.AllowedScope = slices.Clone(rules.SupportedScopes())
	c.AnyScope = rules.ScopeSource
	if c.Name == "" {
		c.Name = c.ID
	}
	return c, nil
}

// A registration's size is bounded (RFC 7591 §3.2.2 lets the server
// refuse metadata it does not accept: invalid_redirect_uri for the URIs,
// invalid_client_metadata for the rest): it is kept DCR_UNUSED_TTL (30
// days by default) whether or not it is ever used, and before these
// bounds a 64 KB request was kept as 385 KB. At most dcrMaxRedirectURIs
// redirect URIs of dcrMaxRedirectURIBytes each, and the whole record as
// stored (store.MarshalJSON: the metadata, the secret's hash) at most
// dcrMaxRecordBytes — the size of the largest Client ID Metadata
// Document fetched. client_name (200 bytes) and client_uri (2,000) are
// bounded by clients.CheckNameAndURI.
const (
	dcrMaxRedirectURIs     = 16
	dcrMaxRedirectURIBytes = 2000
	dcrMaxRecordBytes      = 16 << 10
)

// distinct is list without its repeated values, in order.
func distinct(list []string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// registrationRequest is the RFC 7591 request (fields we accept).
type registrationRequest struct {
	RedirectURIs []string `json:"redirect_uris"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	GrantTypes   []string `json:"grant_types"`
	Response     []string `json:"response_types"`
	ClientName   string   `json:"client_name"`
	ClientURI    string   `json:"client_uri"`
	Scope        string   `json:"scope"`
}

// register is RFC 7591 dynamic client registration (open registration, no
// initial access token).
//
// Every successful request creates a new client with a new client_id
// (RFC 7591 §3.2.1): registering the same metadata again never returns or
// changes an existing client. There is no client configuration endpoint
// (RFC 7592 is not implemented): a registered client cannot be read,
// updated or deleted through the API; a client that needs other metadata
// registers again. A registration that is not used (no authorization or
// token request names it) expires after DCR_UNUSED_TTL. The guard limits
// requests per trusted client address (RATE_LIMIT_REGISTER_PER_MINUTE),
// whatever credentials they carry.
//
// A registration may ask for every scope supported when it asks
// (scopes_supported, following the backends): the response's scope states
// those supported at registration, whatever subset the request's scope
// named; a requested scope that is not supported is invalid_client_metadata
// (RFC 7591 §3.2.2).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.DCREnabled {
		writeJSONError(w, http.StatusNotFound, "invalid_request", "dynamic client registration is disabled")
		return
	}
	ctx := r.Context()
	regErrStatus := func(status int, code, desc string) {
		s.metrics.errors.WithLabelValues("register", code).Inc()
		s.auditEvent(r, audit.Record{Event: audit.Registration, Result: code})
		writeJSONError(w, status, code, desc)
	}
	regErr := func(code, desc string) { regErrStatus(http.StatusBadRequest, code, desc) }
	if !isJSON(r) {
		regErr("invalid_client_metadata", "the request must be application/json")
		return
	}
	var req registrationRequest
	if status, desc := decodeRegistration(r.Body, &req); desc != "" {
		// A body over the limit is 413 (RFC 9110 §15.5.14), with the
		// registration error of every other unreadable body.
		regErrStatus(status, "invalid_client_metadata", desc)
		return
	}
	if len(req.RedirectURIs) == 0 {
		regErr("invalid_redirect_uri", "redirect_uris is required")
		return
	}
	if len(req.RedirectURIs) > dcrMaxRedirectURIs {
		regErr("invalid_redirect_uri", fmt.Sprintf("redirect_uris lists %d URIs; at most %d may be registered", len(req.RedirectURIs), dcrMaxRedirectURIs))
		return
	}
	for _, u := range req.RedirectURIs {
		if len(u) > dcrMaxRedirectURIBytes {
			regErr("invalid_redirect_uri", fmt.Sprintf("redirect URI %q is %d bytes long; at most %d", clients.Truncate(clients.RedactedURI(u), 100), len(u), dcrMaxRedirectURIBytes))
			return
		}
		// DCR clients are untrusted: https or loopback only, in every environment.
		if err := clients.CheckRedirectURI(u, true); err != nil {
			regErr("invalid_redirect_uri", fmt.Sprintf("redirect URI %q: %v", clients.RedactedURI(u), err))
			return
		}
	}
	if req.AuthMethod == "" {
		req.AuthMethod = clients.AuthBasic // RFC 7591 default
	}
	if !slices.Contains([]string{clients.AuthBasic, clients.AuthPost, clients.AuthNone}, req.AuthMethod) {
		regErr("invalid_client_metadata", "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none")
		return
	}
	if len(req.GrantTypes) == 0 {
		req.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	// A grant type listed twice is registered once: the list holds at
	// most the few supported ones, however long the request's was.
	req.GrantTypes = distinct(req.GrantTypes)
	for _, g := range req.GrantTypes {
		if !slices.Contains(clients.GrantTypes, g) {
			regErr("invalid_client_metadata", fmt.Sprintf("grant type %q is not supported", g))
			return
		}
	}
	if !slices.Contains(req.GrantTypes, "authorization_code") {
		regErr("invalid_client_metadata", "grant_types must include authorization_code")
		return
	}
	if len(req.Response) == 0 {
		req.Response = []string{"code"}
	}
	if !slices.Equal(req.Response, []string{"code"}) {
		regErr("invalid_client_metadata", "response_types must be [code]")
		return
	}
	// The registered scopes are every supported one (scopes_supported),
	// whatever subset the client asked for: RFC 7591 §2's scope is what the
	// client "can use when requesting access tokens", and §3.2.1 lets the
	// server replace a requested value and return the registered one. An
	// MCP client registers with its first challenge's scopes and must be
	// able to ask for more at a step-up (MCP 2025-11-25, Scope Challenge
	// Handling); the user's consent still covers each authorization. A
	// requested scope that is not supported is refused, as before.
	supported := s.ScopeNames()
	for _, sc := range strings.Fields(req.Scope) {
		if !slices.Contains(supported, sc) {
			regErr("invalid_client_metadata", fmt.Sprintf("scope %q is not supported (scopes_supported: %s)", sc, strings.Join(supported, " ")))
			return
		}
	}
	scopes := supported
	// A self-registered client may not take the name of a client the
	// operator registered (the consent page would show it as that app),
	// and its home page must be a web page: as for a metadata document.
	if err := clients.CheckNameAndURI(req.ClientName, req.ClientURI, s.static); err != nil {
		regErr("invalid_client_metadata", err.Error())
		return
	}
	md := clients.Metadata{
		ClientName: req.ClientName, ClientURI: req.ClientURI, RedirectURIs: req.RedirectURIs,
		GrantTypes: req.GrantTypes, Response: req.Response, AuthMethod: req.AuthMethod, Scope: strings.Join(scopes, " "),
	}
	id := clients.DynamicPrefix + strings.ToLower(randomID())
	md.ClientID = id
	rec := dynamicRecord{Metadata: md, IssuedAt: s.now().Unix()}
	secret := ""
	if req.AuthMethod != clients.AuthNone {
		// 2×130 random bits: a keyed fast hash is as strong as a slow one
		// for a secret nobody chose (docs/reference/oauth.md).
		secret = randomID() + randomID()
		h, err := s.hasher.Hash(ctx, []byte(secret))
		if err != nil {
			s.log.ErrorContext(ctx, "dynamic registration: cannot hash the client secret", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "server_error", "could not register the client")
			return
		}
		rec.SecretHash = string(h)
	}
	b, err := store.MarshalJSON(rec)
	if err != nil {
		s.log.ErrorContext(ctx, "dynamic registration: cannot encode the record", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "server_error", "could not register the client")
		return
	}
	if len(b) > dcrMaxRecordBytes {
		regErr("invalid_client_metadata", fmt.Sprintf("the client metadata is too large: %d bytes once registered; at most %d", len(b), dcrMaxRecordBytes))
		return
	}
	// The id has 130 random bits (crypto/rand.Text): it names no other client.
	if err := s.store.PutRaw(ctx, "dcr", id, b, s.cfg.DCRTTL); err != nil {
		s.unavailable(w)
		return
	}
	out := map[string]any{
		"client_id": id, "client_id_issued_at": rec.IssuedAt, "redirect_uris": md.RedirectURIs,
		"token_endpoint_auth_method": md.AuthMethod, "grant_types": md.GrantTypes, "response_types": md.Response,
		"scope": md.Scope,
	}
	if md.ClientName != "" {
		out["client_name"] = md.ClientName
	}
	if md.ClientURI != "" {
		out["client_uri"] = md.ClientURI
	}
	if secret != "" {
		out["client_secret"] = secret
		out["client_secret_expires_at"] = 0
	}
	s.metrics.grants.WithLabelValues("registration", string(clients.KindDynamic), "ok").Inc()
	// Where the new client's codes go: what an investigator of a
	// malicious registration needs, and gone from Redis once an unused
	// registration expires (DCR_UNUSED_TTL). Not secrets (RFC 7591 §2).
	s.auditEvent(r, audit.Record{Event: audit.Registration, ClientID: id, RedirectURIs: md.RedirectURIs})
	writeJSON(w, http.StatusCreated, out)
}

// isJSON reports whether r's body is declared application/json (RFC 7591
// §3.1), parameters such as charset aside. Media type names compare
// case-insensitively (RFC 9110 §8.3.1): "Application/JSON" is JSON, and
// "application/jsonp" or "application/json-seq" are not — a prefix test
// took the latter for JSON and refused the former.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// registrationMembers are the client metadata members register reads.
var registrationMembers = map[string]func(*registrationRequest) any{
	"redirect_uris":              func(q *registrationRequest) any { return &q.RedirectURIs },
	"token_endpoint_auth_method": func(q *registrationRequest) any { return &q.AuthMethod },
	"grant_types":                func(q *registrationRequest) any { return &q.GrantTypes },
	"response_types":             func(q *registrationRequest) any { return &q.Response },
	"client_name":                func(q *registrationRequest) any { return &q.ClientName },
	"client_uri":                 func(q *registrationRequest) any { return &q.ClientURI },
	"scope":                      func(q *registrationRequest) any { return &q.Scope },
}

// decodeRegistration reads a registration body, one JSON object, into req
// and returns what is wrong with it, "" when nothing is, and the status to
// answer it with (bodyStatus: 413 for a body over the limit, else 400). An object whose
// member name repeats is refused, at any depth, naming the member: RFC
// 8259 §4 leaves duplicate names to each parser (encoding/json keeps the
// last; others keep the first or refuse), so a proxy or a logger in front
// of this server could read other redirect_uris than those registered. A
// member is the metadata field of exactly its name (RFC 7591 §2 names are
// case-sensitive): encoding/json would also fill redirect_uris from
// "REDIRECT_URIS", an unknown member that §3.1 has the server ignore.
func decodeRegistration(body io.Reader, req *registrationRequest) (status int, desc string) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return bodyStatus(err), decodeProblem(err)
	}
	if name, err := clients.DuplicateMember(raw); err != nil {
		return http.StatusBadRequest, decodeProblem(err)
	} else if name != "" {
		return http.StatusBadRequest, fmt.Sprintf("member %s appears more than once in the client metadata (RFC 8259 section 4: names must be unique)", strconv.Quote(clients.Truncate(name, clients.QuoteLimit)))
	}
	err = clients.DecodeMembers(raw, req, registrationMembers)
	var bad *clients.MemberError
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.As(err, &bad):
		return http.StatusBadRequest, decodeProblem(&json.UnmarshalTypeError{Field: bad.Name})
	}
	return http.StatusBadRequest, "the body is not a JSON object"
}

// decodeProblem says what is wrong with a registration body that does not
// decode into the metadata fields (RFC 7591 §2: arrays of strings for the
// lists, strings for the rest).
func decodeProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, clients.ErrTrailingData):
		return "the body must be one JSON object"
	case errors.As(err, &typeErr) && typeErr.Field != "":
		field := strings.SplitN(typeErr.Field, ".", 2)[0]
		switch field {
		case "redirect_uris", "grant_types", "response_types":
			return field + " must be an array of strings"
		}
		return field + " must be a string"
	}
	return "the body is not a JSON object"
}

func (s *Server) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", unavailableRetryAfter)
	writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the service is temporarily unavailable; retry later")
}
