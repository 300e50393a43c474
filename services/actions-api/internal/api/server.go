package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/platform/clientip"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/telemetry"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Fixed public paths served by the actions-api itself; every other route
// comes from the capability registry.
const (
	PathOpenAPI = "/actions/openapi.json"
	PathPrivacy = "/privacy"
)

// ownPaths are the public paths the actions-api serves itself, each with
// the operation label its requests are counted under: the OpenAPI
// document, the privacy policy and, when ACTIONS_AUDIENCE is a URL, that
// resource's protected resource metadata. The one list: handler routes
// them, and Run gives them to discovery (registry.Fleet.ReservedPaths),
// which refuses a backend's service declaring an operation at one.
func ownPaths(cfg config.Config) map[string]string {
	paths := map[string]string{PathOpenAPI: "openapi", PathPrivacy: "privacy"}
	if path := metadataPath(cfg.Audience); path != "" {
		paths[path] = "resource_metadata"
	}
	return paths
}

var pathParam = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// Rate-limit buckets: token subjects for protected operations, client
// addresses for public ones.
const (
	bucketSubject = "actions"
	bucketPublic  = "actions-public"
)

// server answers the public REST API.
type server struct {
	cfg  config.Config
	log  *slog.Logger
	reg  *registry.Registry
	core grpc.ClientConnInterface
	// backends route each capability to its backend (registry.Conns);
	// one that names no connection here goes to core.
	backends registry.Conns
	verifier *tokens.Verifier
	limiter  *ratelimit.Limiter
	addrs    *clientip.Resolver
	doc      []byte
	// metadataURL is where the protected resource metadata of
	// ACTIONS_AUDIENCE is served (RFC 9728 section 3.1); metadata is that
	// document for the current registry (metadata.go).
	metadataURL string
	metadata    []byte

	ops map[string]string // "METHOD path" → operation label
	instruments
}

// instruments are what a server reports through: its Prometheus series
// and its bounded "access token refused" lines (bearer.go). newInstruments
// makes them once per process (Run; a test's server the same way), and
// every handler built since shares them — withRegistry copies the server —
// so the refusal lines' bound and counts outlive a registry change.
type instruments struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refusals *logging.RefusalLog
}

// newInstruments registers the actions-api's series with reg
// (tollgate_actions_requests_total, tollgate_actions_request_duration_seconds
// and logging.NewRefusalMetrics') and makes the RefusalLog writing to log;
// the error is reg's.
func newInstruments(reg prometheus.Registerer, log *slog.Logger) (instruments, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_actions_requests_total",
		Help: "Actions API requests by operation and HTTP status.",
	}, []string{"operation", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_actions_request_duration_seconds",
		Help:    "Actions API request latency by operation.",
		Buckets: prometheus.DefBuckets,
	}, []string{"operation"})
	for _, c := range []prometheus.Collector{requests, duration} {
		if err := reg.Register(c); err != nil {
			return instruments{}, err
		}
	}
	refusals, err := logging.NewRefusalMetrics(reg)
	if err != nil {
		return instruments{}, err
	}
	return instruments{requests: requests, duration: duration, refusals: logging.NewRefusalLog(log, refusals)}, nil
}

// handler builds the echo instance: middleware, the fixed public routes and
// one route per registry action.
func (s *server) handler() (*echo.Echo, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	// Client addresses (public rate limits) follow the fleet's rule
	// (platform/clientip): the right-most X-Forwarded-For entry that is not
	// one of TRUSTED_PROXIES; with none configured, the TCP peer.
	addrs, err := clientip.New(s.cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clientip.Setting, err)
	}
	e.IPExtractor = addrs.String
	s.addrs = addrs

	// Request ids (X-Request-Id), traces and the latency histogram come from
	// the platform middleware around echo (see Run).
	e.Use(s.observe)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.ErrorContext(c.Request().Context(), "panic", "path", c.Request().URL.Path, "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(secureHeaders)
	if len(s.cfg.AllowedOrigins) > 0 {
		e.Use(routedCORS(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: s.cfg.AllowedOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions},
			AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType},
			// Every response header a caller acts on that is not
			// CORS-safelisted (Fetch standard, section 3.2.6): the
			// challenge of a 401/403, Retry-After and RateLimit-Remaining
			// of a 429/503, what a 415 would accept (Accept or
			// Accept-Encoding, RFC 9110 section 15.5.16), the methods of
			// a 405 (Allow, section 15.5.6).
			ExposeHeaders: []string{"WWW-Authenticate", "Retry-After", "RateLimit-Remaining", echo.HeaderXRequestID,
				echo.HeaderAccept, echo.HeaderAcceptEncoding, echo.HeaderAllow},
			MaxAge: 600,
		})))
	}
	// Inside CORS: its 404 carries a listed origin's CORS headers, as
	// every other 404 does, so a browser can read it.
	e.Use(wholeSegments)
	// No middleware here looks at the request body: the body rules
	// (checkBody) are applied per route, once the route is known and, for
	// a protected operation, its caller (action).

	s.ops = map[string]string{}
	own := ownPaths(s.cfg)
	for _, a := range s.reg.Actions() {
		// Discovery refuses such a service (ReservedPaths); a registry
		// made otherwise (the offline export's) is refused whole.
		if _, mine := own[a.Path]; mine {
			return nil, fmt.Errorf("capability %s declares %s %s, which the actions-api serves itself", a.Capability.FullMethod, a.Method, a.Path)
		}
		// "{field}" path parameters are echo's ":field".
		route := pathParam.ReplaceAllString(a.Path, ":$1")
		s.ops[a.Method+" "+route] = a.OperationID
		e.Add(a.Method, route, s.action(a))
		if a.Method == http.MethodGet {
			// HEAD is GET without the content (RFC 9110 section 9.3.2; a
			// general-purpose server MUST support both, section 9.1): the
			// same operation, token and limits, and net/http drops the body.
			// Not in the document: GPT Actions call GET.
			s.ops[http.MethodHead+" "+route] = a.OperationID
			e.Add(http.MethodHead, route, s.action(a))
		}
	}
	// The static documents also answer HEAD, which link checkers use.
	privacy := []byte(s.cfg.PrivacyPolicy)
	static := map[string]echo.HandlerFunc{
		"openapi": func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "public, max-age=300")
			return c.JSONBlob(http.StatusOK, s.doc)
		},
		"privacy": func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "public, max-age=3600")
			return c.Blob(http.StatusOK, "text/plain; charset=utf-8", privacy)
		},
		"resource_metadata": func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "public, max-age=300")
			return c.JSONBlob(http.StatusOK, s.metadata)
		},
	}
	for path, label := range own {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			s.ops[m+" "+path] = label
			e.Add(m, path, static[label], s.refuseBody)
		}
	}
	return e, nil
}

// routedCORS is echo's CORS middleware for the paths the API serves. echo's
// answers every OPTIONS request itself, before the route's handler: one
// without an Origin header, or from an origin not listed, was a 204 with no
// body for any path, so "OPTIONS /nope" said the path exists where GET
// /nope is a 404. An OPTIONS request is routed to no handler (the API
// registers none for OPTIONS): echo names the methods of a path it knows
// in the context (echo.ContextKeyHeaderAllow), and a path without them is
// unknown, answered 404 not_found in the one error shape like any other
// method. Known paths keep echo's answers: a preflight from a listed
// origin gets the CORS headers, any other OPTIONS a 204 with Allow (RFC
// 9110 section 9.3.7). A path that matched a route only by giving a path
// parameter more than one segment is unknown too (wholeSegments).
func routedCORS(cors echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withCORS := cors(next)
		return func(c echo.Context) error {
			if c.Request().Method == http.MethodOptions && (c.Get(echo.ContextKeyHeaderAllow) == nil || extraSegments(c)) {
				return next(c)
			}
			return withCORS(c)
		}
	}
}

// wholeSegments answers 404 for a path echo matched to a route by giving
// a path parameter more than one segment. echo's last path parameter
// takes the rest of the path, slashes included: GET
// /actions/shapes/1/2 was served as /actions/shapes/{id} with id "1/2",
// DELETE /actions/connections/g1/x reached the backend for grant "g1/x",
// and a POST there was a 405 naming GET. In the document a path parameter
// is one segment (OpenAPI 3.1 section 4.8.2, "Path Templating"); a value
// holding "/" is sent escaped (%2F), which stays one segment and is
// decoded for the backend (pathParamValue). So a request whose path has
// more segments than its route's (a trailing slash included) is the 404
// not_found of an unknown path, whatever its method (405, OPTIONS) or
// token.
//
// The route is forgotten (c.SetPath("")), so the 404 is counted and traced
// as a request to no operation ("other"), like any unknown path, not as
// the operation whose template matched.
func wholeSegments(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if extraSegments(c) {
			c.SetPath("")
			return echo.ErrNotFound
		}
		return next(c)
	}
}

// extraSegments reports whether echo matched the request to a route with
// path parameters by giving one of them more than one path segment.
func extraSegments(c echo.Context) bool {
	route := c.Path()
	return strings.Contains(route, "/:") && strings.Count(echo.GetPath(c.Request()), "/") != strings.Count(route, "/")
}

func secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

// bodyless are the methods whose request content has no defined
// semantics (RFC 9110 sections 9.3.1, 9.3.2, 9.3.5), with their section.
var bodyless = map[string]string{http.MethodGet: "9.3.1", http.MethodHead: "9.3.2", http.MethodDelete: "9.3.5"}

// checkBody applies the body rules of the request's method. It runs in
// the operation (action, after authentication) or in front of a static
// document (refuseBody), never as middleware of the whole API: a request
// to no route is a 404, one with another method a 405, one without a
// valid token a 401 (or 403) with its challenge, whatever its body — in
// 7d2c7f2 a GET with a body and no token got this 400 instead.
//
// A GET, HEAD or DELETE that carries content (Content-Length above 0, or a
// body of unknown length: chunked) is a 400: the operation's inputs are
// its path and query, and a client that sent them in a body would get an
// answer to a request without them. RFC 9110 section 9.3.1 (GET; 9.3.2
// HEAD, 9.3.5 DELETE): such content "has no generally defined semantics"
// and "might lead some implementations to reject the request"; GPT Actions
// send none. A POST's body is limited to MAX_BODY_BYTES: a Content-Length
// over it is a 413 now, before the body is read (net/http then answers
// without waiting for it: app.NewHTTP's bodyDeadline), a longer body of
// unknown length when decode reads past the limit. Either way the backend is not called.
func (s *server) checkBody(c echo.Context) error {
	r := c.Request()
	if sec, ok := bodyless[r.Method]; ok {
		if r.ContentLength != 0 {
			return newError(http.StatusBadRequest, "invalid_request",
				"a "+r.Method+" request carries no body (RFC 9110 section "+sec+"): send the parameters in the path and query string")
		}
		return nil
	}
	limit := int64(s.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		return errBodyTooLarge()
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	return nil
}

// refuseBody is checkBody in front of a route that needs no token.
func (s *server) refuseBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.checkBody(c); err != nil {
			return err
		}
		return next(c)
	}
}

// observe renders errors, then records metrics and one log line per
// request. The query string is never logged: it may carry a token a
// client should not have sent.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		r, res := c.Request(), c.Response()
		op := s.ops[r.Method+" "+c.Path()]
		route := c.Path()
		if op == "" {
			op, route = "other", telemetry.RouteOther
		}
		telemetry.SetRoute(r.Context(), route)
		elapsed := time.Since(start)
		s.requests.WithLabelValues(op, strconv.Itoa(res.Status)).Inc()
		s.duration.WithLabelValues(op).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if res.Status >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "operation", op,
			"status", res.Status, "duration_ms", elapsed.Milliseconds())
		return nil
	}
}

// action answers one registry operation: bearer rules for protected
// operations, the rate limit, request decoding, the call to capability-core
// with the caller's token forwarded, and the response in the shape the
// OpenAPI document publishes.
func (s *server) action(a *registry.Action) echo.HandlerFunc {
	c := a.Capability
	protected := len(a.RequiredScopes) > 0
	safe := a.RetrySafe()
	return func(ec echo.Context) error {
		r := ec.Request()
		ctx := r.Context()
		// Public limit per client address; an IPv6 client per /64.
		bucket, subject, limit := bucketPublic, "ip:"+s.addrs.Subject(r), ratelimit.PerMinute(s.cfg.PublicRateLimitPerMinute)
		if protected {
			ec.Response().Header().Set("Cache-Control", "no-store")
			claims, aerr := s.authenticate(r, a.RequiredScopes)
			if aerr != nil {
				return aerr
			}
			ctx = tokens.WithBearer(ctx, claims)
			bucket, subject, limit = bucketSubject, "sub:"+claims.Subject, ratelimit.PerMinute(s.cfg.RateLimitPerMinute)
		}
		if err := s.checkBody(ec); err != nil {
			return err
		}
		if err := s.rateLimit(ec, bucket, subject, limit); err != nil {
			return err
		}
		in, err := s.decode(ec, a)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, s.cfg.CoreTimeout)
		defer cancel()
		conn, ok := s.backends.For(c)
		if !ok {
			conn = s.core
		}
		out, err := c.Invoke(ctx, conn, in)
		if err != nil {
			return fromCore(err, s.metadataURL, a.RequiredScopes, safe)
		}
		b, err := c.MarshalOutput(out)
		if err != nil {
			return fmt.Errorf("encode %s response: %w", a.OperationID, err)
		}
		return ec.JSONBlob(http.StatusOK, b)
	}
}

// rateLimit takes one token from the caller's bucket; a Redis failure is a
// 503 (the limit cannot be enforced, so the call is not made).
func (s *server) rateLimit(ec echo.Context, bucket, subject string, limit ratelimit.Limit) error {
	ctx, cancel := context.WithTimeout(ec.Request().Context(), 2*time.Second)
	defer cancel()
	res, err := s.limiter.Allow(ctx, bucket, subject, limit)
	if err != nil {
		return unavailable("rate limiting is unavailable; retry later", err)
	}
	ratelimit.SetHeaders(ec.Response().Header(), res)
	if !res.Allowed {
		e := newError(http.StatusTooManyRequests, "rate_limited", "too many calls; retry after the number of seconds in Retry-After")
		e.retryAfter = ratelimit.RetryAfterSeconds(res.RetryAfter)
		return e
	}
	return nil
}

// decode builds the capability request from the path parameters and the
// query (GET, DELETE) or the JSON body (POST).
func (s *server) decode(ec echo.Context, a *registry.Action) (proto.Message, error) {
	r := ec.Request()
	c := a.Capability
	var in proto.Message
	var err error
	if a.Method != http.MethodPost {
		// url.Values of a malformed query (a ";" separator, a bad
		// escape) silently leave the pair out: "?text=a;b" or
		// "?text=%ZZ" reached the backend as a call without text.
		q, qerr := url.ParseQuery(r.URL.RawQuery)
		if qerr != nil {
			return nil, newError(http.StatusBadRequest, "invalid_request", "the query string is malformed: "+qerr.Error())
		}
		if err := checkQueryNames(q, a); err != nil {
			return nil, err
		}
		for _, p := range a.PathParams {
			v, perr := pathParamValue(ec, p)
			if perr != nil {
				return nil, perr
			}
			q.Set(p, v)
		}
		if in, err = c.DecodeQuery(q); err == nil {
			err = c.CheckRequired(in)
		}
	} else {
		if err := checkBodyHeaders(r.Header); err != nil {
			return nil, err
		}
		if r.URL.RawQuery != "" { // malformed ones too, which Query() leaves out
			return nil, newError(http.StatusBadRequest, "invalid_request", "this operation takes a JSON body, not query parameters")
		}
		var body []byte
		body, err = readBody(r)
		if err != nil {
			return nil, err
		}
		// No body (zero bytes) is the request with no fields; a body
		// sent must be a JSON object, so one of only whitespace or null
		// is a 400 (registry.Capability.DecodeBody).
		if len(a.PathParams) == 0 {
			in, err = c.DecodeBody(body)
		} else if in, err = c.DecodeBodyPartial(body); err == nil {
			// A proto2 required field may be the path's: the request is
			// checked once whole.
			if err = s.setPathParams(ec, a, in); err == nil {
				err = c.CheckRequired(in)
			}
		}
	}
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			return nil, newError(http.StatusBadRequest, "invalid_request", fe.Msg)
		}
		return nil, err
	}
	return in, nil
}

// checkBodyHeaders refuses a POST body the API would not read as the
// client meant it. The body is decoded as JSON text as it arrives: one
// with a content coding (Content-Encoding: gzip) was decoded compressed,
// a 400 naming protojson's "invalid value" at its first byte; "identity"
// is no coding. Such a body, and one whose single Content-Type is not
// application/json (parameters and case aside; one that does not parse
// too), is a 415 Unsupported Media Type: the content "is in a format not
// supported by this method on the target resource" (RFC 9110 section
// 15.5.16). The 415 says what would have been accepted, as that section
// and section 12.5.3 ask: Accept: application/json for a media type
// (section 12.5.1), Accept-Encoding: identity for a content coding. Two
// Content-Type headers are a malformed request (a 400): Content-Type is a
// singleton field (RFC 9110 section 5.5), Header.Get took the first, where
// a proxy or firewall in front may judge the body by the last. A body
// without Content-Type is read as JSON (RFC 9110 section 8.3 lets the
// recipient decide; curl -d sends form, which is refused, and GPT Actions
// send application/json).
func checkBodyHeaders(h http.Header) error {
	if ce := h.Values("Content-Encoding"); len(ce) > 1 || len(ce) == 1 && !strings.EqualFold(strings.TrimSpace(ce[0]), "identity") {
		e := newError(http.StatusUnsupportedMediaType, "invalid_request", "a Content-Encoding is not supported: send the JSON body uncompressed")
		e.accept = [2]string{"Accept-Encoding", "identity"}
		return e
	}
	switch cts := h.Values(echo.HeaderContentType); len(cts) {
	case 0:
	case 1:
		if cts[0] == "" {
			break // as none
		}
		if mt, _, err := mime.ParseMediaType(cts[0]); err != nil || mt != echo.MIMEApplicationJSON {
			e := newError(http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/json")
			e.accept = [2]string{"Accept", echo.MIMEApplicationJSON}
			return e
		}
	default:
		return newError(http.StatusBadRequest, "invalid_request", "Content-Type must be application/json, given once")
	}
	return nil
}

// checkQueryNames refuses two query parameters for one request field and
// one for a path parameter's field. A field may be named by its proto name
// (the document's) or its JSON name (DecodeQuery takes both), so
// "?grant_id=" and "?grantId=" are the same field: given both, which one
// DecodeQuery kept depended on map order, and a DELETE's query could
// replace the id in its path, which ChatGPT shows the user to confirm.
func checkQueryNames(q url.Values, a *registry.Action) error {
	fields := a.Capability.Method.Input().Fields()
	seen := map[protoreflect.Name]string{}
	for name := range q {
		f := fields.ByName(protoreflect.Name(name))
		if f == nil {
			f = fields.ByJSONName(name)
		}
		if f == nil {
			continue // DecodeQuery refuses unknown parameters
		}
		if slices.Contains(a.PathParams, string(f.Name())) {
			return newError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("%s is a path parameter; do not repeat it in the query", f.Name()))
		}
		if prev, ok := seen[f.Name()]; ok {
			return newError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("query parameters %q and %q name the same field; give it once", min(prev, name), max(prev, name)))
		}
		seen[f.Name()] = name
	}
	return nil
}

// pathParamValue is the path parameter p, percent-decoded. echo matches a
// path on its raw form when it holds an escape Go would not have written
// (%2F, or %5F for "_") and then gives its parameters undecoded, while
// any other path arrives decoded: the same id reached the backend as
// "a%2Fb" or "a/b" depending on the client's encoding.
func pathParamValue(ec echo.Context, p string) (string, error) {
	v := ec.Param(p)
	if ec.Request().URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", newError(http.StatusBadRequest, "invalid_request", fmt.Sprintf("path parameter %s is not percent-encoded correctly", p))
	}
	return d, nil
}

// setPathParams sets the "{field}" values of a POST's path on in, decoded
// from its body. The body may not name them: the path says which object
// the call is about, and a body naming another would be ambiguous.
func (s *server) setPathParams(ec echo.Context, a *registry.Action, in proto.Message) error {
	q := url.Values{}
	fields := in.ProtoReflect().Descriptor().Fields()
	for _, p := range a.PathParams {
		f := fields.ByName(protoreflect.Name(p))
		if in.ProtoReflect().Has(f) {
			return fault.InvalidArgument("%s is a path parameter; do not repeat it in the body", p)
		}
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
			// Merged over the body, the path's member would clear the
			// body's: refused as two members in a body or a query are.
			if other := in.ProtoReflect().WhichOneof(o); other != nil {
				return fault.InvalidArgument("path parameter %q and body field %q are members of the oneof %s; give one", p, other.TextName(), o.Name())
			}
		}
		v, err := pathParamValue(ec, p)
		if err != nil {
			return err
		}
		q.Set(p, v)
	}
	path, err := a.Capability.DecodeQuery(q)
	if err != nil {
		return err
	}
	proto.Merge(in, path)
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return nil, errBodyTooLarge() // over MAX_BODY_BYTES (checkBody)
		}
		return nil, newError(http.StatusBadRequest, "invalid_request", "cannot read the request body")
	}
	return b, nil
}
