package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

const (
	issuerURL   = "http://issuer.test"
	audience    = "http://actions.test/actions"
	mcpAudience = "http://actions.test/mcp"
)

// coreBinary is capability-core, built once for the package in TestMain.
var coreBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "actions-api-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := testharness.BuildBinaries(dir, testharness.CapabilityCore); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	coreBinary = filepath.Join(dir, "capability-core")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// core is a capability-core process on fixed ports, so that a test can
// kill it and start it again where the actions-api expects it.
type core struct {
	*testharness.Process
	grpcAddr string
}

func startCore(t testing.TB, iss *tokentest.Issuer) *core {
	t.Helper()
	p := testharness.StartProcess(t, coreBinary, map[string]string{
		"ADMIN_ADDR": "127.0.0.1:0", "AUTH_GRPC_ADDR": iss.Addr,
		"MCP_RESOURCE_URL": mcpAudience, "ACTIONS_AUDIENCE": audience,
		"TOLLGATE_ENV": "development", "LOG_FORMAT": "text", "LOG_LEVEL": "warn", "REDIS_URL": "",
	}, "GRPC_ADDR")
	return &core{Process: p, grpcAddr: p.Addr("GRPC_ADDR")}
}

// fleet is one actions-api (in-process, via Run) with its real
// dependencies: a KeySetService issuer, capability-core and redis-server.
type fleet struct {
	iss    *tokentest.Issuer
	redis  *testharness.Redis
	core   *core
	base   string // http://127.0.0.1:port
	admin  string // http://127.0.0.1:port
	logs   *syncBuffer
	doc    *openapi3.T
	router routers.Router
	// validated counts responses checked against the document.
	validated int
}

type syncBuffer = testharness.SyncBuffer

// env is the configuration every test starts from; overrides replace keys
// ("$CORE_GRPC_ADDR" in a value is capability-core's address, "$HTTP_ADDR"
// the actions-api's).
func (f *fleet) env(httpAddr string, overrides map[string]string) map[string]string {
	env := map[string]string{
		"TOLLGATE_ENV":          "development",
		"LOG_FORMAT":            "json",
		"HTTP_ADDR":             httpAddr,
		"ADMIN_ADDR":            "127.0.0.1:0",
		"ACTIONS_PUBLIC_URL":    "http://" + httpAddr,
		"ACTIONS_AUDIENCE":      audience,
		"PUBLIC_ISSUER_URL":     issuerURL,
		"AUTH_GRPC_ADDR":        f.iss.Addr,
		"CORE_GRPC_ADDR":        f.core.grpcAddr,
		"REDIS_URL":             f.redis.URL(),
		"REDIS_COMMAND_TIMEOUT": testharness.RedisCommandTimeout,
		"REDIS_DIAL_TIMEOUT":    testharness.RedisDialTimeout,
		"ALLOWED_ORIGINS":       "https://chat.openai.com,https://chatgpt.com",
	}
	for k, v := range overrides {
		env[k] = strings.NewReplacer("$CORE_GRPC_ADDR", f.core.grpcAddr, "$HTTP_ADDR", httpAddr).Replace(v)
	}
	return env
}

// start runs a fleet for the test; overrides change the actions-api's env.
// It returns once the actions-api serves capability-core's operations.
func start(t testing.TB, overrides map[string]string) *fleet {
	t.Helper()
	return startWith(t, overrides, false)
}

// startWith is start; coreHungAtStart hangs capability-core (SIGSTOP)
// while the actions-api starts and continues it once the actions-api
// listens: what a loaded machine does to the first discovery.
//
// The actions-api listens after one discovery of its backends, in which
// each backend gets the discovery timeout (2 s) and one that misses it has
// no operations until a later refresh (docs/architecture.md, "Capabilities
// discovered from backends"). On a machine at load 60 capability-core's
// reflection missed it once, and TestRateLimitPublicClientAddress's first
// GET /health was 404. So start waits, in the served document, for
// capability-core's operations (GET /health, health.check), which a
// refresh (CAPABILITY_REFRESH_INTERVAL, 30 s unless overridden) brings.
func startWith(t testing.TB, overrides map[string]string, coreHungAtStart bool) *fleet {
	t.Helper()
	f := &fleet{iss: tokentest.Start(t, issuerURL), redis: testharness.StartRedis(t)}
	f.core = startCore(t, f.iss)
	ln := testharness.Listener(t) // ACTIONS_PUBLIC_URL names the port
	env := f.env(ln.Addr().String(), overrides)

	if coreHungAtStart {
		f.core.Signal(syscall.SIGSTOP)
	}
	svc := testharness.RunService(t, api.Run, env, ln)
	if coreHungAtStart {
		f.core.Signal(syscall.SIGCONT)
	}
	f.logs = svc.Logs
	f.base = "http://" + svc.Addr("http")
	f.admin = "http://" + svc.Addr("admin")
	testharness.Eventually(t, 90*time.Second, "capability-core's operations served", func() (bool, string) {
		f.loadDocument(t)
		return f.doc.Paths.Find("/health") != nil, "GET /health not in the served document"
	})
	return f
}

// loadDocument fetches the served OpenAPI document and prepares kin-openapi
// to validate live responses against it.
func (f *fleet) loadDocument(t testing.TB) {
	t.Helper()
	res, err := http.Get(f.base + api.PathOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", api.PathOpenAPI, res.StatusCode, b)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("kin-openapi cannot load the served document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served document is invalid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	f.doc, f.router = doc, router
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
	err    Error // the error body, for failures
}

// Error mirrors the documented error shape.
type Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// do sends a request and checks what every response must satisfy: a
// failure has the one error shape, and a response of a documented operation
// validates against the served OpenAPI document (status included).
func (f *fleet) do(t testing.TB, method, path string, header http.Header) reply {
	t.Helper()
	return f.doBody(t, method, path, header, "")
}

// doBody is do with a request body (none when body is empty).
func (f *fleet) doBody(t testing.TB, method, path string, header http.Header, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: res.StatusCode, header: res.Header, body: b}
	if res.StatusCode >= 400 && method != http.MethodHead {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: %d with Content-Type %q, want JSON", method, path, res.StatusCode, ct)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r.err); err != nil || r.err.Error == "" || r.err.Description == "" {
			t.Errorf("%s %s: %d body %s is not the error shape (%v)", method, path, res.StatusCode, b, err)
		}
	}
	if path != api.PathOpenAPI && path != api.PathPrivacy {
		f.validate(t, req, r)
	}
	return r
}

func (f *fleet) validate(t testing.TB, req *http.Request, r reply) {
	t.Helper()
	route, params, err := f.router.FindRoute(req)
	if err != nil {
		if item := f.doc.Paths.Find(req.URL.Path); item != nil && item.GetOperation(req.Method) != nil {
			t.Errorf("%s %s is documented but kin-openapi cannot route it: %v", req.Method, req.URL.Path, err)
		}
		return // not a documented operation (unknown path or method)
	}
	f.validated++
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header, Options: opts}
	out.SetBodyBytes(r.body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: %d response does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, r.status, err, r.body)
	}
}

// bearer is an Authorization header.
func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// token mints a token for the Actions audience with scope.
func (f *fleet) token(t testing.TB, scope string) string {
	return f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: scope})
}

// ready reports the admin readiness status code and body.
func (f *fleet) ready(t testing.TB) (int, string) {
	t.Helper()
	res, err := http.Get(f.admin + "/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// eventually polls cond until it holds or 30s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
