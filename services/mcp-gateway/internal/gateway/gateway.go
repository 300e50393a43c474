package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/config"
	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/buildinfo"
	"github.com/tollgate/tollgate/services/platform/clientip"
	platformconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/widgets"
)

// maxBody bounds a JSON-RPC message.
const maxBody = 1 << 20

// codeRateLimited is the JSON-RPC error code of a request refused by the
// rate limit (implementation-defined server error range).
const codeRateLimited = -32029

// Transport labels.
const (
	transportStreamable = "streamable-http"
	transportSSE        = "sse"
)

// Deps are what the gateway is built from; Run wires the real ones.
type Deps struct {
	Config   config.Config
	Log      *slog.Logger
	Registry *registry.Registry
	Redis    *redisx.Client
	Core     grpc.ClientConnInterface
	// Backends route capabilities to the backend that serves them
	// (registry.Conns); a capability whose backend is not here goes to Core.
	Backends registry.Conns
	Verifier *tokens.Verifier
	// Revocations, when set, is the revocation Set the Verifier asks: the
	// gateway also follows it to end the open streams of a revoked grant
	// or of a client removed from the auth-server's clients file
	// (authorize). Without it streams end only when their token expires.
	Revocations Revocations
	Metrics     *metrics
	// Replica identifies this process in Redis (legacy SSE ownership).
	Replica string
}

// Revocations is what the gateway needs of the revocation Set
// (*revocation.Set): the answer for one grant or one client's token, and
// to be told of each grant revoked and each client removed from now on.
type Revocations interface {
	tokens.Revocations // Revoked, ClientRemoved
	OnRevoke(f func(grantID string)) (remove func())
	OnClientRemoved(f func(clientID string)) (remove func())
}

// Gateway serves MCP over Streamable HTTP and legacy HTTP+SSE with the
// fleet's OAuth rules in front of mcp-go.
type Gateway struct {
	cfg      config.Config
	log      *slog.Logger
	verifier *tokens.Verifier
	// addrs resolves client addresses (TRUSTED_PROXIES, platform/clientip)
	// and refusals writes the bounded "access token refused" lines, which
	// name them (auth.go).
	addrs    *clientip.Resolver
	refusals *logging.RefusalLog
	// leases take the per-subject rate limit's tokens from Redis a few at a
	// time for a busy subject (ratelimit.Leasing: never more than the
	// limit; limits under 16 a minute are never leased; rateLeaseTokens).
	leases     *ratelimit.Leasing
	limit      ratelimit.Limit
	sessions   *session.Store
	events     *session.Events
	rdb        *redisx.Client
	metrics    *metrics
	challenges *challenger // of /mcp
	// sseChallenges are those of /sse and /messages: they name the
	// metadata of the legacy SSE resource identifier.
	sseChallenges *challenger
	sseResource   string
	replica       string

	mcp        *server.MCPServer
	catalog    *catalog   // of the registry in use; UseRegistry replaces it
	catalogMu  sync.Mutex // serializes UseRegistry
	streamable *server.StreamableHTTPServer
	// statelessHTTP serves sessionless requests direct does not answer.
	statelessHTTP *server.StreamableHTTPServer
	sse           *server.SSEServer

	// callable are the tools callTool answers without HandleMessage, by
	// wire name (serveTools); nil when mcp-go has hooks callTool would skip.
	callable atomic.Pointer[map[string]server.ToolHandlerFunc]
	// scoped are the listed tools that need scopes, by wire name
	// (refuseScopes); they follow the registry (UseRegistry).
	scoped atomic.Pointer[map[string]scopedTool]
	// toolMiddleware wraps every tool handler, in mcp-go (HandleMessage)
	// and in callable alike.
	toolMiddleware []server.ToolHandlerMiddleware
	// readOnly: the served tools annotated read-only, by wire name
	// (serveTools), for chargeResults' answers.
	readOnly atomic.Pointer[map[string]bool]
	inflight inflight // tools/call requests callTool is answering

	ids *exactIDs // request ids mcp-go would not echo exactly

	streams *streamSet // open GET /mcp and /sse streams, by hashed session id
	// revocations and grantStreams end the streams of a revoked grant,
	// clientStreams those of a removed client, keyStreams those of a key
	// removed from the verifier's key set (authorize); unfollow stops
	// following them (Shutdown).
	revocations   Revocations
	grantStreams  streamsBy
	clientStreams streamsBy
	keyStreams    streamsBy
	unfollow      func()
	// listeners: sessions with a GET /mcp stream served here (listen).
	listeners listeners
	// localSSE: session id -> chan struct{}, the legacy sessions whose
	// stream is here; the channel is closed once the stream's handler
	// has returned (it writes nothing more to the stream).
	localSSE sync.Map
	// backlogs: session id -> *backlog, the requests of each legacy
	// session whose stream is here that wait for their answer on it.
	backlogs sync.Map
	// pendingAcks: nonce -> chan struct{}, terminations this replica
	// announced and waits to see acknowledged (announceTermination).
	pendingAcks sync.Map
	// pendingRelays: nonce -> chan string, legacy messages this replica
	// relayed and waits to hear the outcome of (awaitRelay).
	pendingRelays sync.Map

	route func(*http.Request) string // route pattern of a request, once Handler is built

	// resourceURIs and resourceTemplates are what resources/list and
	// resources/templates/list name (fixed for the process): a
	// subscription must name one of them (namesResource).
	resourceURIs      map[string]bool
	resourceTemplates []*mcp.URITemplate
}

// New builds the gateway.
func New(d Deps) (*Gateway, error) {
	cfg := d.Config
	origin := cfg.PublicOrigin()
	scopes, supported := askScopes(d.Registry)
	addrs, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clientip.Setting, err)
	}
	g := &Gateway{
		cfg: cfg, log: d.Log, verifier: d.Verifier, rdb: d.Redis, metrics: d.Metrics, replica: d.Replica,
		addrs: addrs, refusals: logging.NewRefusalLog(d.Log, d.Metrics.refusals),
		leases:      ratelimit.New(d.Redis).Leasing(ratelimit.LeaseOptions{MaxTokens: rateLeaseTokens}),
		limit:       ratelimit.PerMinute(cfg.RateLimitPerMinute),
		sessions:    session.NewStore(d.Redis, cfg.SessionIdleTTL),
		challenges:  newChallenger(origin+server.ProtectedResourceMetadataPath(cfg.Resource), cfg.Resource, scopes, supported),
		sseResource: platformconfig.LegacySSEResource(cfg.Resource),
		streams:     newStreamSet(),
		ids:         newExactIDs(),
		revocations: d.Revocations,
		unfollow:    func() {},
	}
	lookups := map[session.Lookup]prometheus.Counter{}
	for _, l := range []session.Lookup{session.LookupMemory, session.LookupHit, session.LookupMiss} {
		lookups[l] = d.Metrics.recordCache.WithLabelValues(string(l))
	}
	g.sessions.OnLookup(func(l session.Lookup) { lookups[l].Inc() })
	g.sessions.LimitPerSubject(cfg.SessionLimitPerSubject)
	g.sessions.EvictIdleAfter(cfg.SessionEvictIdleAfter)
	g.sessions.OnEvict(g.evicted)
	g.sseChallenges = newChallenger(origin+server.ProtectedResourceMetadataPath(g.sseResource), cfg.Resource, scopes, supported)
	g.events = session.NewEvents(d.Redis, g.sessions, cfg.StreamHistory)
	cat := &catalog{reg: d.Registry, core: d.Core, backends: d.Backends, coreTimeout: cfg.CoreTimeout, origin: origin, uiDomain: cfg.UIDomain, challenges: g.challenges, metrics: d.Metrics, log: d.Log,
		underscore: cfg.ToolNameStyle == config.ToolNamesUnderscore}
	g.catalog = cat
	tools, err := cat.tools()
	if err != nil {
		return nil, err
	}
	scoped := cat.scopedTools(tools)
	g.scoped.Store(&scoped)
	resources, err := cat.resources()
	if err != nil {
		return nil, err
	}
	// Panics in tool handlers are answered as JSON-RPC internal errors
	// (and logged), on either path of a tools/call; a legacy session's
	// results are counted against its backlog (chargeResults); a stateless
	// POST's answer stream takes no notification once the handler has
	// returned (endAnswerStream).
	g.toolMiddleware = []server.ToolHandlerMiddleware{endAnswerStream, recoverTools(d.Log), g.chargeResults}
	hooks := &server.Hooks{}
	hooks.AddBeforeInitialize(beforeInitialize)
	hooks.AddAfterInitialize(g.afterInitialize)
	hooks.AddOnRegisterSession(g.adoptSession)
	hooks.AddOnUnregisterSession(func(context.Context, server.ClientSession) { g.metrics.registered.Dec() })
	opts := []server.ServerOption{
		server.WithTitle("Tollgate"),
		// listChanged: the tools follow the backends (UseRegistry), and
		// every session with a stream here is told when they change.
		server.WithToolCapabilities(true),
		// Subscriptions are accepted (resources/subscribe, /unsubscribe);
		// no resource served changes while a process lives, so none is
		// ever followed by notifications/resources/updated.
		server.WithResourceCapabilities(true, false),
		server.WithLogging(),
		server.WithInstructions(cat.instructions()),
		server.WithHooks(hooks),
	}
	// A stateless POST's answer stream takes no notification once its
	// resource or prompt handler has returned (as endAnswerStream for a
	// tool's): the outermost resource and prompt middleware.
	opts = append(opts, answerStreamEnds()...)
	opts = append(opts, server.WithResourceRecovery())
	for _, mw := range g.toolMiddleware {
		opts = append(opts, server.WithToolHandlerMiddleware(mw))
	}
	if cfg.ConformanceFixtures {
		// The fixture profile offers prompts and (empty) completions;
		// Tollgate itself has neither (docs/reference/mcp.md).
		opts = append(opts, server.WithPromptCapabilities(false), server.WithCompletions())
	}
	g.mcp = server.NewMCPServer("tollgate", buildinfo.Version, opts...)
	if cfg.ConformanceFixtures {
		addFixtures(g.mcp)
		resources = append(resources, fixtureResources()...)
		g.resourceTemplates = append(g.resourceTemplates, fixtureTemplate().Template.URITemplate)
	}
	g.serveTools(tools)
	g.mcp.AddResources(resources...)
	g.resourceURIs = make(map[string]bool, len(resources))
	for _, r := range resources {
		g.resourceURIs[r.Resource.URI] = true
	}

	g.streamable = server.NewStreamableHTTPServer(g.mcp,
		server.WithEndpointPath("/mcp"),
		server.WithSessionIdManagerResolver(resolver{g}),
		server.WithEventStore(unescapingEvents{g.events}),
		server.WithSessionIdleTTL(cfg.SessionIdleTTL),
		server.WithHeartbeatInterval(cfg.KeepAlive),
		// Our guard checks Host against ALLOWED_HOSTS, which also knows the public host.
		server.WithDisableLocalhostProtection(true),
		server.WithStreamableHTTPLogger(d.Log),
	)
	// Sessionless POSTs (Gateway.sessionless) that direct leaves to a
	// transport: mcp-go's stateless mode (WithStateLess), one throwaway
	// session per request, no event store (nothing to resume without a
	// session).
	g.statelessHTTP = server.NewStreamableHTTPServer(g.mcp,
		server.WithEndpointPath("/mcp"),
		server.WithStateLess(true),
		server.WithHTTPContextFunc(sessionlessContext),
		server.WithHeartbeatInterval(cfg.KeepAlive),
		server.WithDisableLocalhostProtection(true),
		server.WithStreamableHTTPLogger(d.Log),
	)
	sseOpts := []server.SSEOption{
		server.WithStaticBasePath(""),
		server.WithSSEEndpoint("/sse"),
		server.WithMessageEndpoint("/messages"),
		server.WithUseFullURLForMessageEndpoint(false),
		server.WithKeepAlive(true),
		server.WithKeepAliveInterval(cfg.KeepAlive),
		server.WithSessionIDGenerator(func(ctx context.Context, _ *http.Request) (string, error) {
			if id, ok := ctx.Value(pendingKey{}).(string); ok {
				return id, nil
			}
			return "", errors.New("no session prepared for this stream")
		}),
		server.WithSSEDisableLocalhostProtection(true),
	}
	if len(cfg.AllowedOrigins) > 0 {
		// mcp-go writes its own Access-Control-Expose-Headers on the /sse
		// stream and /messages answers, replacing readableBy's: give it
		// the gateway's list.
		sseOpts = append(sseOpts, server.WithSSECORS(server.WithCORSAllowedOrigins(cfg.AllowedOrigins...),
			server.WithCORSExposedHeaders(exposedHeaders...)))
	}
	g.sse = server.NewSSEServer(g.mcp, sseOpts...)
	// Registered last: a New that fails leaves no hook on the Set or the
	// Verifier.
	unfollowRevocations := func() {}
	if d.Revocations != nil {
		unfollowGrants := d.Revocations.OnRevoke(g.grantRevoked)
		unfollowClients := d.Revocations.OnClientRemoved(g.clientRemoved)
		unfollowRevocations = func() { unfollowGrants(); unfollowClients() }
	}
	unfollowKeys := d.Verifier.OnKeysRemoved(g.keysRemoved)
	g.unfollow = func() { unfollowRevocations(); unfollowKeys() }
	return g, nil
}

// askScopes are the scopes of the default challenge, what a client asks
// for up front: openid, then the scopes of every tool that is not
// annotated destructive, in the order the tools are listed ("openid
// connections.read profile email"). RFC 6750 §3 has the challenge's scope
// name what the resource needs; the MCP authorization spec has a client
// without a token ask for it. That is the resource's ordinary use: a
// destructive tool (connections.revoke) gets its scopes by the step-up
// challenge of its first call, when the user is asked for that one thing,
// not on everyone's first consent page. A scope that a tool which is not
// destructive needs too is asked for. supported is openid and every
// tool's scopes, the metadata's scopes_supported (RFC 9728 §2: what a
// client may ask for, step-up included).
func askScopes(reg *registry.Registry) (ask, supported []string) {
	ask, supported = []string{"openid"}, []string{"openid"}
	for _, t := range reg.Tools() {
		for _, s := range t.RequiredScopes {
			if !t.Annotations.Destructive() && !contains(ask, s) {
				ask = append(ask, s)
			}
			if !contains(supported, s) {
				supported = append(supported, s)
			}
		}
	}
	return ask, supported
}

// UseRegistry serves reg's tools from now on (registry.Discovery.OnChange):
// tools/list answers them, each live session with a stream on this replica
// gets notifications/tools/list_changed (every replica follows the
// backends itself), and challenges ask for reg's scopes. A call in flight
// finishes with the tool it started with. A registry whose tools cannot be
// served (a name clash in the underscore style, which discovery refuses
// service by service: a registry made otherwise) is refused and the tools
// stay as they were.
func (g *Gateway) UseRegistry(reg *registry.Registry) error {
	g.catalogMu.Lock()
	defer g.catalogMu.Unlock()
	if g.catalog.reg == reg {
		return nil
	}
	cat := *g.catalog
	cat.reg = reg
	tools, err := cat.tools()
	if err != nil {
		return err
	}
	g.catalog = &cat
	scoped := cat.scopedTools(tools)
	g.scoped.Store(&scoped)
	scopes, supported := askScopes(reg)
	g.challenges.setScopes(scopes, supported)
	g.sseChallenges.setScopes(scopes, supported)
	g.serveTools(tools)
	return nil
}

// Handler is the public HTTP surface.
func (g *Gateway) Handler() http.Handler {
	// The scopes follow the registry: the document is made per request.
	metadataOf := func(resource, name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			server.NewProtectedResourceMetadataHandler(server.ProtectedResourceMetadataConfig{
				Resource:               resource,
				AuthorizationServers:   []string{g.cfg.Issuer},
				ScopesSupported:        g.challenges.supportedList(),
				BearerMethodsSupported: []string{"header"},
				ResourceName:           name,
			}).ServeHTTP(w, r)
		})
	}
	// Preflights (CORS) are granted for the methods the endpoints serve;
	// every other answer is made readable by an allowed origin in
	// readableBy, whatever its method and path.
	c := cors.New(cors.Options{
		AllowedOrigins: g.cfg.AllowedOrigins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowedHeaders: requestHeaders,
		ExposedHeaders: exposedHeaders,
		MaxAge:         600,
	})
	preflight := func(h http.Handler) http.Handler { return preflights(c, h) }
	// The metadata documents answer any origin (Access-Control-Allow-Origin:
	// *, mcp-go's handler): they are public, RFC 9728 §3. So are their
	// preflights, for GET and HEAD with the headers MCP clients send: the
	// TypeScript SDK (and so the MCP Inspector) fetches the metadata with
	// MCP-Protocol-Version, which a browser preflights, and mcp-go's answer
	// allowed only Content-Type and Authorization — the preflight failed and
	// the SDK retried without the header.
	metadataCORS := cors.New(cors.Options{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{http.MethodGet, http.MethodHead},
		AllowedHeaders: requestHeaders,
		MaxAge:         600,
	})
	metadata := func(resource, name string) http.Handler {
		return preflights(metadataCORS, metadataOf(resource, name))
	}
	prm := metadata(g.cfg.Resource, "Tollgate MCP")
	protect := func(transport string, h http.Handler) http.Handler {
		return g.checkOrigin(preflight(g.authenticate(transport, g.rateLimit(transport, h))))
	}
	mux := http.NewServeMux()
	mux.Handle(server.ProtectedResourceMetadataPath(g.cfg.Resource), prm)
	mux.Handle(server.WellKnownProtectedResourcePath, prm)
	// RFC 9728 §3.1: the metadata of the legacy SSE endpoint's identifier,
	// whose resource is that URL (§3.3), for clients that start at /sse.
	mux.Handle(server.ProtectedResourceMetadataPath(g.sseResource), metadata(g.sseResource, "Tollgate MCP (legacy HTTP+SSE)"))
	// Any other well-known path (another resource's metadata, a typo) is
	// a JSON 404 like every other refusal, not net/http's plain text.
	mux.Handle("/.well-known/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeOAuthError(w, http.StatusNotFound, "not_found", "no such well-known document here; the MCP resource metadata is at "+
			server.ProtectedResourceMetadataPath(g.cfg.Resource)+" (RFC 9728 section 3.1)")
	}))
	mux.Handle(widgets.AssetPath, widgets.AssetHandler())
	mcpHandler := g.checkOrigin(preflight(g.authenticate(transportStreamable, g.streamableSession(g.direct(g.streamable)))))
	// The route label is set here, where the mux has matched, instead of
	// the telemetry middleware matching the request again afterwards
	// (MuxRoute: ~1.5 % of the gateway's CPU per call, issue 12); the
	// labels are those MuxRoute gives.
	mux.Handle("/mcp", routed("/mcp", mcpHandler))
	// "/mcp/" is the same endpoint, not a redirect: MCP clients differ in
	// how they follow a redirected POST (some turn it into GET, some do not
	// follow at all, some drop Authorization), and the resource a token is
	// for stays MCP_RESOURCE_URL through the protected resource metadata
	// either way. Only the exact path: "/mcp/x" is still 404 (below).
	mux.Handle("/mcp/{$}", routed("/mcp/{$}", mcpHandler))
	mux.Handle("/sse", protect(transportSSE, http.HandlerFunc(g.openSSE)))
	mux.Handle("/messages", protect(transportSSE, http.HandlerFunc(g.postMessage)))
	// Every other path ("/mcp/x", a typo) is a JSON 404 too, not
	// net/http's plain-text "404 page not found".
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeOAuthError(w, http.StatusNotFound, "not_found", "no such path here; the MCP endpoint is "+g.cfg.Resource)
	}))
	// The catch-all's route label is RouteOther, not "/", whether the mux
	// served the request or a check before it refused it: the pattern
	// says nothing of the path asked for (and the raw path would make
	// the label unbounded).
	muxRoute := telemetry.MuxRoute(mux)
	g.route = func(r *http.Request) string {
		if p := muxRoute(r); p != "/" {
			return p
		}
		return telemetry.RouteOther
	}
	return g.readableBy(g.checkHost(mux))
}

// requestHeaders are the request headers MCP clients send that a browser
// preflights, which preflights grant: the token, the JSON body, the
// session, the protocol version (MCP transports), the stream to resume
// (Last-Event-ID), and the method and name headers of later MCP versions.
var requestHeaders = []string{"Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version",
	"Last-Event-ID", "Mcp-Method", "Mcp-Name"}

// exposedHeaders are the response headers a page of an allowed origin may
// read besides the CORS-safelisted ones (Fetch standard,
// Access-Control-Expose-Headers): the session, the challenge, when to
// retry, the rate limit's remainder and, of a 405, the methods allowed.
var exposedHeaders = []string{"Mcp-Session-Id", "WWW-Authenticate", "Retry-After", "Ratelimit-Remaining", "Allow"}

// exposedList is exposedHeaders as one header value.
var exposedList = strings.Join(exposedHeaders, ", ")

// preflights answers a CORS preflight (OPTIONS with
// Access-Control-Request-Method) with c — granted to an allowed origin for
// GET, POST and DELETE only, with c's request headers — and hands every
// other request to next. A preflight for another method (PUT, PATCH, HEAD
// with a non-safelisted header) is answered without
// Access-Control-Allow-Methods, which the browser takes for a refusal:
// the endpoints serve no such method, and its answer would be 405.
func preflights(c *cors.Cors, next http.Handler) http.Handler {
	answer := c.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			answer.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readableBy lets a page of an allowed origin read every answer the
// gateway gives it, whatever its method, path and status — a 405 and its
// Allow, a 404, a 401 and its challenge, a 503 and its Retry-After: the
// Fetch standard's CORS protocol hides from the page a response that does
// not name its origin in Access-Control-Allow-Origin, and rs/cors named it
// only for the methods its preflights grant. Preflights are left to the
// endpoints (preflights). Handlers that answer any origin
// (Access-Control-Allow-Origin: *: the resource metadata, widget assets)
// replace the header. A request from another origin gets no CORS header;
// on the MCP endpoints it is refused (checkOrigin).
func (g *Gateway) readableBy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		o := r.Header.Get("Origin")
		if o != "" && (r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "") &&
			contains(g.cfg.AllowedOrigins, strings.ToLower(o)) {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Expose-Headers", exposedList)
		}
		next.ServeHTTP(w, r)
	})
}

// routed names h's requests' route pattern for the telemetry middleware
// (telemetry.SetRoute): the metric label and span name.
func routed(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.SetRoute(r.Context(), route)
		h.ServeHTTP(w, r)
	})
}

// Route is the route pattern of r ("/mcp", "/sse", "/app-ui/", …), a
// bounded metric label; call it after Handler.
func (g *Gateway) Route(r *http.Request) string {
	if g.route == nil {
		return telemetry.RouteOther
	}
	return g.route(r)
}

// Streaming reports the requests that hold a server-to-client stream open
// (GET /mcp and GET /sse): their duration is the stream's life, not latency.
func Streaming(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/mcp" || r.URL.Path == "/sse")
}

// checkOrigin refuses a browser request from an origin not in
// ALLOWED_ORIGINS before anything else runs. Requests without Origin
// (server-to-server, as ChatGPT sends) pass.
func (g *Gateway) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !contains(g.cfg.AllowedOrigins, strings.ToLower(o)) {
			g.metrics.request("http", methodLabel(r.Method), "forbidden_origin")
			writeHTTPError(w, http.StatusForbidden, mcp.INVALID_REQUEST, "origin not allowed")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host that is not a known name of the gateway
// (ALLOWED_HOSTS) on a request that arrived on a loopback address: a
// DNS-rebound page reaches a local gateway through 127.0.0.1 or ::1 with
// its own name as Host. It is decided per connection, from the address the
// request arrived on, not from HTTP_ADDR's text: an inherited socket
// ("fd:3", as make dev's gateway listens) or a wildcard listener reached
// through loopback is checked as well. Requests arriving on any other
// address (an ingress reaching the pod) are not checked here.
func (g *Gateway) checkHost(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range g.cfg.AllowedHosts {
		allowed[strings.Trim(strings.ToLower(h), "[]")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !arrivedOnLoopback(r) {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !allowed[strings.Trim(strings.ToLower(host), "[]")] {
			g.metrics.request("http", methodLabel(r.Method), "forbidden_host")
			writeHTTPError(w, http.StatusForbidden, mcp.INVALID_REQUEST, "host not allowed")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// arrivedOnLoopback reports whether r came in on a loopback address of
// this host (net/http's LocalAddrContextKey: the connection's local end).
// A request without one (not served by net/http) counts as loopback, so
// that the check is never skipped for want of the address.
func arrivedOnLoopback(r *http.Request) bool {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	default:
		return true
	}
}

// rateScope names the gateway's per-subject rate-limit buckets.
const rateScope = "mcp"

// rateLeaseTokens is the most tokens of a subject's bucket a replica takes
// from Redis at once (ratelimit.LeaseOptions.MaxTokens; the platform's
// default is 16): a subject calling at a high rate costs a Redis round
// trip every 64 calls instead of every 16 (issue 12). A lease is still at
// most an eighth of the burst and lives 250 ms, so the bound on tokens a
// replica holds unused is min(64, RATE_LIMIT_PER_MINUTE/8), for at most
// 250 ms (docs/reference/mcp.md).
const rateLeaseTokens = 64

// rateLimit applies the per-subject limit shared by all replicas and both
// transports (/mcp takes its token in streamableSession).
func (g *Gateway) rateLimit(transport string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := tokens.FromContext(r.Context())
		res, err := g.leases.Allow(r.Context(), rateScope, claims.Subject, g.limit)
		var id json.RawMessage
		if err == nil && !res.Allowed && r.Method == http.MethodPost {
			// Answer the request's own id, so the client can match the
			// error: the id the envelope check reads (as on /mcp, where the
			// check comes first), not encoding/json's, which takes a member
			// spelt "ID" for it — null when the id itself is in doubt.
			if body, msg, ok := readBody(w, r); ok {
				id = msg.ID
				if rf := checkEnvelopeOf(body, msg.decoded); rf != nil {
					id = rf.id
				}
			}
		}
		if g.admitRate(w, r, transport, r.Method, id, res, err) {
			next.ServeHTTP(w, r)
		}
	})
}

// admitRate answers a request the rate limit refused (429, with the
// request's JSON-RPC id) or could not decide (503), and reports whether the
// request may go on.
func (g *Gateway) admitRate(w http.ResponseWriter, r *http.Request, transport, method string, id json.RawMessage, res ratelimit.Result, err error) bool {
	if err != nil {
		g.unavailable(w, r, transport, method, &dependencyFailure{what: "rate limit", err: err})
		return false
	}
	ratelimit.SetHeaders(w.Header(), res)
	if !res.Allowed {
		g.metrics.request(transport, methodLabel(method), "rate_limited")
		writeRPCError(w, http.StatusTooManyRequests, id, codeRateLimited, "rate limit exceeded; retry after "+ratelimit.RetryAfterSeconds(res.RetryAfter)+"s")
		return false
	}
	return true
}

// createFailed answers a session that could not be created: 429 for a
// (subject, client_id) pair at its session cap (with the request's JSON-RPC
// id and when its least recently used session expires or becomes
// evictable if unused: session.LimitError), else 503
// (with the request's id too: unavailableFor).
func (g *Gateway) createFailed(w http.ResponseWriter, r *http.Request, transport, method string, id json.RawMessage, err error) {
	var limit *session.LimitError
	if !errors.As(err, &limit) {
		g.unavailableFor(w, r, transport, method, id, err)
		return
	}
	g.metrics.request(transport, methodLabel(method), "session_limit")
	retry := ratelimit.RetryAfterSeconds(limit.RetryAfter)
	w.Header().Set("Retry-After", retry)
	writeRPCError(w, http.StatusTooManyRequests, id, codeRateLimited, fmt.Sprintf(
		"too many live sessions: this user already holds %d through this client (client_id), the limit; end unused ones with DELETE /mcp or retry after %ss, when the least recently used one expires, or can be ended for a new one, if unused; the user's other clients are not affected",
		limit.Limit, retry))
}

// unavailable answers 503 with Retry-After when Redis could not answer
// (JSON-RPC id null: a refusal of the HTTP request or its session).
func (g *Gateway) unavailable(w http.ResponseWriter, r *http.Request, transport, method string, err error) {
	g.unavailableFor(w, r, transport, method, nil, err)
}

// unavailableFor is unavailable answering the JSON-RPC request id: an
// initialize refused with 503 echoes its id (JSON-RPC 2.0 §5: the id is
// null only when it could not be detected).
func (g *Gateway) unavailableFor(w http.ResponseWriter, r *http.Request, transport, method string, id json.RawMessage, err error) {
	g.logUnavailable(r.Context(), err)
	g.metrics.request(transport, methodLabel(method), "unavailable")
	w.Header().Set("Retry-After", "5")
	writeRPCError(w, http.StatusServiceUnavailable, id, mcp.INTERNAL_ERROR, "temporarily unavailable; retry shortly")
}

// relayFailure is a legacy message this replica could not hand to the
// replica holding its session's stream (the PUBLISH failed, or that
// replica did not handle it): answered 503 as a Redis outage is, and
// logged as what failed, naming the replica (its id, in the log only).
type relayFailure struct {
	replica string
	err     error
}

func (e *relayFailure) Error() string { return "relay to replica " + e.replica + ": " + e.err.Error() }
func (e *relayFailure) Unwrap() error { return e.err }

// dependencyFailure is a Redis-backed part other than the session store
// that could not answer (what: "rate limit"), for the log.
type dependencyFailure struct {
	what string
	err  error
}

func (e *dependencyFailure) Error() string { return e.what + ": " + e.err.Error() }
func (e *dependencyFailure) Unwrap() error { return e.err }

// logUnavailable logs what failed behind a 503: a relay to another replica
// (relayFailure), another dependency (dependencyFailure), else the
// session store. The answer says none of it.
func (g *Gateway) logUnavailable(ctx context.Context, err error) {
	var relay *relayFailure
	var dep *dependencyFailure
	switch {
	case errors.As(err, &relay):
		g.log.WarnContext(ctx, "could not relay a legacy message to the replica holding its stream", "replica", relay.replica, "err", relay.err)
	case errors.As(err, &dep):
		g.log.WarnContext(ctx, dep.what+" unavailable", "err", dep.err)
	default:
		g.log.WarnContext(ctx, "session store unavailable", "err", err)
	}
}

// message is the part of a JSON-RPC message the gateway looks at.
type message struct {
	Method string          `json:"method"`
	ID     json.RawMessage `json:"id"`
	// Result, of a message that is a response (mcp-go takes any message
	// with a result for one, method or not).
	Result json.RawMessage `json:"result"`
	Params struct {
		Meta *mcp.Meta `json:"_meta"`
		// Name is the tool of a tools/call.
		Name string `json:"name"`
		// Arguments of a tools/call, checked by argumentsError.
		Arguments json.RawMessage `json:"arguments"`
		// Cursor of a list request, checked by cursorError.
		Cursor json.RawMessage `json:"cursor"`
		// URI of a resources/read, subscribe or unsubscribe, checked by
		// uriError.
		URI json.RawMessage `json:"uri"`
		// Level of a logging/setLevel, bounded by echoedError.
		Level json.RawMessage `json:"level"`
		// Task, InputResponses and RequestState make a tools/call a task
		// or a multi-round-trip retry: left to mcp-go (callableTool).
		Task           json.RawMessage `json:"task"`
		InputResponses json.RawMessage `json:"inputResponses"`
		RequestState   json.RawMessage `json:"requestState"`
	} `json:"params"`
	// decoded: the whole message decoded into this struct without error
	// (each member of the type it has here).
	decoded bool
}

// argumentsError is the JSON-RPC -32602 message for a tools/call whose
// arguments are present but not a JSON object ("" when they are fine).
// MCP's CallToolRequest (schema, every version) defines params.arguments as
// an object of the tool's input fields, so anything else fails the request
// schema: a protocol error, not a tool execution error. mcp-go accepts any
// JSON value there and the tool's decoder then reported a protobuf syntax
// error, which told the caller nothing it could act on.
func argumentsError(m message) string {
	a := bytes.TrimSpace(m.Params.Arguments)
	if m.Method != string(mcp.MethodToolsCall) || len(a) == 0 || a[0] == '{' || bytes.Equal(a, []byte("null")) {
		return ""
	}
	kind := "a number"
	switch a[0] {
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	}
	return fmt.Sprintf("invalid params: arguments of tool %q must be a JSON object of the tool's input fields (its inputSchema in tools/list), not %s; send {} for a tool without inputs",
		truncate(m.Params.Name, maxLoggedName), kind)
}

// paramsError is the JSON-RPC -32602 message for a request whose params
// the gateway refuses before mcp-go sees them ("" when it does not): first
// a member named twice or spelt but for case as the MCP schema spells one
// (paramsCaseError; body is the message) — the checks below read m, which
// encoding/json decoded ignoring case and keeping the last of repeated
// members, so {"ARGUMENTS":[1]} has to be refused for its spelling, not
// for its value —, then tools/call arguments that are not an object
// (argumentsError), a cursor on a list request (cursorError), a resource
// request without a uri (uriError).
func paramsError(m message, body []byte) string {
	if len(m.ID) != 0 { // a notification is never answered
		if e := paramsCaseError(m.Method, body); e != "" {
			return e
		}
	}
	if e := echoedError(m); e != "" {
		return e
	}
	if e := argumentsError(m); e != "" {
		return e
	}
	if e := cursorError(m); e != "" {
		return e
	}
	return uriError(m)
}

// toolNameError is the JSON-RPC -32602 message for a tools/call request
// that names no tool the gateway serves ("" when it names one, and for
// anything but a tools/call request that decoded whole): "Unknown tool:
// <name>", the protocol error MCP 2025-11-25 gives an unknown tool
// (server/tools, "Error Handling": code -32602, "Unknown tool:
// invalid_tool_name"), and for a call without params.name (absent, null or
// "", which CallToolRequest requires) "invalid params: params.name is
// required: …". mcp-go answered the same code with "tool '<name>' not
// found: tool not found". The name is repeated as the client sent it,
// decoded: echoedError has refused one longer than MaxNameBytes already,
// and the answer is JSON written without HTML escapes (marshalRaw). A
// message whose name is not a string did not decode and gets the
// wrong-type answer. The tools are the registry's (and the fixtures'),
// looked up as mcp-go looks them up; the gateway registers no task tools
// or session tools, which mcp-go would find too. Called on every
// transport where paramsError is (streamable badArguments, legacy
// postMessage), after it.
func (g *Gateway) toolNameError(m message) string {
	if !m.decoded || m.Method != string(mcp.MethodToolsCall) || len(m.ID) == 0 {
		return ""
	}
	name := m.Params.Name
	if name == "" {
		return "invalid params: params.name is required: the name of a tool (tools/list names them)"
	}
	if c := g.callable.Load(); c != nil && (*c)[name] != nil {
		return "" // a registry tool: the steady state, one map lookup
	}
	if g.mcp.GetTool(name) != nil {
		return ""
	}
	return "Unknown tool: " + name
}

// namedMethods are the requests whose params.name mcp-go repeats in its
// answer when it names nothing served.
var namedMethods = map[string]bool{string(mcp.MethodToolsCall): true, string(mcp.MethodPromptsGet): true}

// echoedError is the -32602 message for a request whose params.name
// (tools/call, prompts/get) is longer than MaxNameBytes or whose
// params.uri (resources/read, subscribe, unsubscribe) is longer than
// MaxURIBytes, or whose logging/setLevel params.level is longer than
// MaxLevelBytes, once decoded ("" when none is). It does not repeat the
// value.
func echoedError(m message) string {
	// logging/setLevel was removed in 2026-07-28: mcp-go's -32601 for a
	// stateless one repeats nothing of the level, so it is left to answer.
	if m.Method == string(mcp.MethodSetLogLevel) && len(m.Params.Level) > MaxLevelBytes && kind(m.Params.Level) == '"' &&
		!mcp.IsModernProtocol(m.Params.Meta.ProtocolVersion()) {
		var level string
		if json.Unmarshal(m.Params.Level, &level) == nil && len(level) > MaxLevelBytes {
			return fmt.Sprintf("invalid params: params.level is %d bytes long: a logging level is one of the MCP LoggingLevel values (debug, info, notice, warning, error, critical, alert, emergency), at most %d bytes", len(level), MaxLevelBytes)
		}
	}
	if namedMethods[m.Method] && len(m.Params.Name) > MaxNameBytes {
		return fmt.Sprintf("invalid params: params.name is %d bytes long: a name is at most %d bytes (MCP 2025-11-25 tool names are 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'); tools/list names the tools", len(m.Params.Name), MaxNameBytes)
	}
	if uriMethods[m.Method] && len(m.Params.URI) > MaxURIBytes && kind(m.Params.URI) == '"' {
		// The raw string is longer than the bound; its decoded text, which
		// mcp-go repeats, may not be (escapes): decoded only then.
		var uri string
		if json.Unmarshal(m.Params.URI, &uri) == nil && len(uri) > MaxURIBytes {
			return fmt.Sprintf("invalid params: params.uri is %d bytes long: the gateway accepts resource URIs of at most %d bytes (RFC 9110 section 4.1 asks for at least 8,000); resources/list names the resources", len(uri), MaxURIBytes)
		}
	}
	return ""
}

// uriMethods are the requests whose params.uri is required (MCP schema,
// ReadResourceRequest, SubscribeRequest, UnsubscribeRequest).
var uriMethods = map[string]bool{
	string(mcp.MethodResourcesRead): true, string(mcp.MethodResourcesSubscribe): true, string(mcp.MethodResourcesUnsubscribe): true,
}

// uriError is the -32602 message for a resources/read, subscribe or
// unsubscribe without params.uri (absent, null or "", params absent
// included): the member is required, so the request's params are invalid
// (JSON-RPC 2.0 §5.1). mcp-go looked the empty URI up and answered
// -32002 "handler not found for resource URI ”", which tells a client a
// resource is missing, not that its request is. A message that did not
// decode (a member of the wrong JSON type) is left to the wrong-type
// answer (direct.go).
func uriError(m message) string {
	if !m.decoded || !uriMethods[m.Method] {
		return ""
	}
	u := bytes.TrimSpace(m.Params.URI)
	if len(u) != 0 && !bytes.Equal(u, []byte("null")) && !bytes.Equal(u, []byte(`""`)) {
		if u[0] == '"' && !validUTF8String(u) {
			return "invalid params: params.uri is not valid UTF-8 (an invalid byte or an unpaired surrogate escape): a URI is text"
		}
		return ""
	}
	return "invalid params: params.uri is required: the URI of a resource (resources/list names them)"
}

// validUTF8String reports whether the JSON string raw holds valid UTF-8
// once decoded: encoding/json turns invalid bytes and unpaired surrogate
// escapes ("\ud800") into U+FFFD silently, so a decoded string with more
// U+FFFD than raw spells (as the character or as \ufffd) was not valid.
func validUTF8String(raw []byte) bool {
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) && !bytes.Contains(raw, []byte(`\U`)) {
		return true // the common case: nothing json could replace
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return true // not a string: the wrong-type answer names it
	}
	spelled := bytes.Count(raw, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(raw), []byte(`\ufffd`))
	return strings.Count(s, "\uFFFD") <= spelled
}

// initializeParamsError is the -32602 message for an initialize without
// one of the members InitializeRequest requires (MCP schema, every
// version: protocolVersion, capabilities, clientInfo): absent or null,
// and for protocolVersion "" too (params absent included); or whose
// clientInfo lacks a member Implementation requires (name, version: absent,
// null or not a string). It names each member missing. mcp-go took a
// missing protocolVersion for 2025-03-26 (the fallback for a request
// without MCP-Protocol-Version header, not for initialize) and negotiated
// that, a missing clientInfo or capabilities for empty ones, and a
// clientInfo without name or version for one with empty strings; the
// TypeScript SDK's server refuses such an initialize (its
// InitializeRequestSchema requires all of them). Every client SDK, the
// conformance suite and the MCP Inspector send them.
//
// Members are looked up by their exact names, in one pass over the
// object (objectSchema.find, the reading paramsCaseError makes): JSON-RPC
// and MCP names are case-sensitive, so params with only "Capabilities"
// lack capabilities, where encoding/json (and so mcp-go) would take it for
// them. A member spelt exactly beside a case variant of it is refused too:
// decoders that ignore case take either one. Before all of these, a member
// named twice in params or an object the schema defines in them
// (objectSchema.problem: "version" twice in clientInfo) is refused, as
// paramsCaseError refuses it. Then, with none of these
// missing, a case variant of any other member the schema names in the
// params (initializeParams: "Sampling" in capabilities, "Title" in
// clientInfo, "ProgressToken" in _meta) is refused as paramsCaseError
// refuses it. A params or clientInfo of the wrong JSON type is left to the
// wrong-type answer. A clientInfo name, version or title longer than
// MaxClientInfoBytes is refused too.
func initializeParamsError(m message, body []byte) string {
	if !m.decoded || m.Method != string(mcp.MethodInitialize) {
		return ""
	}
	raw := memberValue(body, "params")
	if !absent(raw) && kind(raw) != '{' {
		return ""
	}
	p := initializeParams.problem(raw)
	if p.repeated {
		return p.message() // which of the values is meant cannot be told
	}
	params := initializeParams.find(raw)
	var problems []string
	if v := params.get("protocolVersion"); absent(v) || bytes.Equal(v, []byte(`""`)) {
		problems = append(problems, "params.protocolVersion is required: the latest MCP version the client supports (supported: "+
			strings.Join(mcp.LegacyProtocolVersions(), ", ")+")"+params.variantNote("params", "protocolVersion"))
	}
	if absent(params.get("capabilities")) {
		problems = append(problems, "params.capabilities is required: an object of the capabilities the client supports ({} for none)"+
			params.variantNote("params", "capabilities"))
	}
	if info := params.get("clientInfo"); absent(info) {
		problems = append(problems, `params.clientInfo is required: the client's name and version ({"name":…,"version":…})`+
			params.variantNote("params", "clientInfo"))
	} else if kind(info) == '{' {
		ci := implementation.find(info)
		for _, name := range []string{"name", "version"} {
			switch v := ci.get(name); {
			case absent(v):
				problems = append(problems, "params.clientInfo."+name+" is required: a string (MCP schema, Implementation)"+
					ci.variantNote("params.clientInfo", name))
			case kind(v) != '"':
				problems = append(problems, "params.clientInfo."+name+" must be a string (MCP schema, Implementation)")
			}
		}
		for _, name := range []string{"name", "version", "title"} {
			if v := ci.get(name); kind(v) == '"' && len(v) > MaxClientInfoBytes {
				problems = append(problems, fmt.Sprintf("params.clientInfo.%s is %d bytes long: the gateway accepts at most %d bytes as written in the message (quotes included)", name, len(v), MaxClientInfoBytes))
			}
		}
		problems = append(problems, ci.ambiguities("params.clientInfo", "name", "version")...)
	}
	problems = append(problems, params.ambiguities("params", "protocolVersion", "capabilities", "clientInfo")...)
	if len(problems) == 0 {
		return p.message() // a case variant, as caseError would find it
	}
	return "invalid params: " + strings.Join(problems, "; ")
}

// MaxClientInfoBytes bounds each of initialize's clientInfo.name, version
// and title (raw JSON, quotes and escapes included), which the session's
// Redis record keeps for as long as the session lives (afterInitialize) and
// other replicas restore. The MCP schema (Implementation) puts no size on
// them; unbounded, a 560 KB clientInfo was stored with every session (100
// sessions: 55 MiB per user and client for SESSION_IDLE_TTL), and one over
// ~250 KB failed the record's write (its pieces overflowed the Lua stack)
// and the client was told 503 for its own bad input.
const MaxClientInfoBytes = 256

// absent reports whether a raw member value is absent or null.
func absent(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || bytes.Equal(v, []byte("null"))
}

// namesResource reports whether uri is a resource resources/list names or
// matches a template resources/templates/list names, as resources/read
// looks it up.
func (g *Gateway) namesResource(uri string) bool {
	if g.resourceURIs[uri] {
		return true
	}
	for _, t := range g.resourceTemplates {
		if t != nil && t.Regexp().MatchString(uri) {
			return true
		}
	}
	return false
}

// listMethods are the paginated list requests. mcp-go answers each in one
// page (the gateway sets no page size), so no answer carries a nextCursor.
var listMethods = map[string]bool{
	string(mcp.MethodToolsList): true, string(mcp.MethodResourcesList): true,
	string(mcp.MethodResourcesTemplatesList): true, string(mcp.MethodPromptsList): true,
}

// cursorError is the -32602 message for a list request that carries a
// cursor ("" for none, null or ""). MCP "Pagination": a cursor is a
// nextCursor the server returned, and an invalid one SHOULD get -32602.
// The gateway returns none, so every cursor is invalid; mcp-go took any
// base64 text for the name to list after and answered an empty or
// shifted page without an error.
func cursorError(m message) string {
	c := bytes.TrimSpace(m.Params.Cursor)
	if !listMethods[m.Method] || len(c) == 0 || bytes.Equal(c, []byte("null")) || bytes.Equal(c, []byte(`""`)) {
		return ""
	}
	if c[0] != '"' {
		return "invalid params: cursor must be a string, a nextCursor of an earlier answer"
	}
	return "invalid params: unknown cursor: this server answers every list in one page and returns no nextCursor; send the request without a cursor"
}

// maxLoggedName bounds a caller-supplied name in the access log.
const maxLoggedName = 64

// readBody reads and restores a POST body, bounded by maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, message, bool) {
	body, err := readAllSized(http.MaxBytesReader(w, r.Body, maxBody), r.ContentLength)
	if err != nil {
		writeHTTPError(w, http.StatusRequestEntityTooLarge, mcp.INVALID_REQUEST, fmt.Sprintf("request body larger than %d bytes", maxBody))
		return nil, message{}, false
	}
	r.Body = newBody(body)
	var m message
	m.decoded = json.Unmarshal(body, &m) == nil // mcp-go reports malformed JSON itself
	attrs := []slog.Attr{slog.String("mcp_method", methodLabel(m.Method))}
	if m.Method == string(mcp.MethodToolsCall) {
		attrs = append(attrs, slog.String("tool", truncate(m.Params.Name, maxLoggedName)))
	}
	telemetry.LogAttrs(r.Context(), attrs...)
	return body, m, true
}

// memBody is a request body read again from memory: one allocation, where
// io.NopCloser(bytes.NewReader(b)) makes two.
type memBody struct{ bytes.Reader }

func (*memBody) Close() error { return nil }

func newBody(b []byte) io.ReadCloser {
	r := &memBody{}
	r.Reset(b)
	return r
}

// readAllSized is io.ReadAll with the buffer sized for a body of the
// announced length (no growing from 512 bytes), which it does not trust:
// a longer body is read on, a shorter one is what it is.
func readAllSized(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 || length > maxBody {
		return io.ReadAll(r)
	}
	buf := make([]byte, length+1) // +1: a longer body is noticed
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(r)
	return append(buf, rest...), err
}

// serve runs next with the challenge box and status recorder, and counts the request.
func (g *Gateway) serve(transport, method string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	g.serveCtx(r.Context(), transport, method, next, w, r)
}

// serveCtx is serve with ctx as the request's context (one request copy
// for both).
func (g *Gateway) serveCtx(ctx context.Context, transport, method string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	g.metrics.requestStatus(transport, methodLabel(method), serveUncounted(ctx, next, w, r))
}

// serveUncounted is serveCtx without the request metric: it returns the
// status next answered with, for a caller that may answer otherwise
// (initialize, whose held answer can be replaced by a 503) and counts
// what it sent.
func serveUncounted(ctx context.Context, next http.Handler, w http.ResponseWriter, r *http.Request) int {
	rec := &recorder{ResponseWriter: w}
	next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, challengeKey{}, &rec.box)))
	if rec.status == 0 {
		return http.StatusOK
	}
	return rec.status
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Shutdown ends every open stream so that the HTTP server can drain, and
// stops following revocations and key removals.
func (g *Gateway) Shutdown() {
	g.unfollow()
	g.streams.closeAll()
}
