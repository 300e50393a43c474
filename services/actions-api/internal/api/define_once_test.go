package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/actions-api/internal/openapi"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// echoService implements the test capability over real gRPC and records
// the token it was given.
type echoService struct {
	testingv1.UnimplementedEchoServiceServer
	tokens chan string
}

func (s *echoService) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	raw, err := tokens.FromIncoming(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "no token forwarded")
	}
	s.tokens <- raw
	n := req.GetTimes()
	if n == 0 {
		n = 1
	}
	if n < 1 || n > 10 {
		return nil, status.Error(codes.InvalidArgument, "times must be 1 to 10")
	}
	text := strings.Repeat(req.GetText(), int(n))
	if req.GetShout() {
		text = strings.ToUpper(text)
	}
	return &testingv1.EchoResponse{Text: text, Length: int32(len([]rune(text)))}, nil
}

// testAPI is an actions-api server built in-process from a given registry
// and capability connection, with a real key set, Redis and HTTP listener.
type testAPI struct {
	url    string
	iss    *tokentest.Issuer
	router routers.Router
}

const testAudience = "http://actions.test/actions"

// serveCapability serves svc (registered by register) over real gRPC on
// 127.0.0.1:0 and an actions-api for reg in front of it.
func serveCapability(t *testing.T, reg *registry.Registry, register func(*grpc.Server), opts ...grpc.ServerOption) *testAPI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	if register != nil {
		register(gs)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	iss := tokentest.Start(t, "http://issuer.test")
	authConn, err := grpc.NewClient(iss.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authConn.Close() })
	redis := testharness.StartRedis(t)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ins, err := newInstruments(prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	d, err := openapi.Build(reg, openapi.Options{ServerURL: srv.URL, OAuthBaseURL: "http://issuer.test"})
	if err != nil {
		t.Fatal(err)
	}
	docJSON, _ := d.JSON()
	s := &server{
		cfg: config.Config{RateLimitPerMinute: 100, PublicRateLimitPerMinute: 100, CoreTimeout: 5 * time.Second, MaxBodyBytes: 2048, PrivacyPolicy: "p"},
		log: log, reg: reg, core: conn,
		verifier: tokens.NewVerifier(tokens.VerifierOptions{Source: tokens.NewGRPCKeySource(authConn), Audiences: []string{testAudience}}),
		limiter:  ratelimit.New(redis.Client()), doc: docJSON, instruments: ins,
	}
	e, err := s.handler()
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = e
	doc, err := openapi3.NewLoader().LoadFromData(docJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("document invalid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{url: srv.URL, iss: iss, router: router}
}

// send makes req and validates the response against the document (status
// included); a request the server accepted must also match the document.
func (a *testAPI) send(t *testing.T, req *http.Request, body []byte) (int, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := a.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("kin-openapi cannot route %s: %v", req.URL, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && res.StatusCode < 400 {
		t.Errorf("%s was accepted but does not match the document: %v", req.URL, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header, Options: opts}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: %d response does not match the document: %v\n%s", req.URL, res.StatusCode, err, b)
	}
	return res.StatusCode, b
}

// TestNewCapabilityIsRoutedWithoutCode proves the define-once rule for the
// routes: the test capability, declared only in proto, is served with its
// query parameters decoded, its scope enforced and the caller's token
// forwarded, and its answers match the document built from the same
// registry.
func TestNewCapabilityIsRoutedWithoutCode(t *testing.T) {
	reg, err := registry.New(testingv1.File_tollgate_testing_v1_echo_proto.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	svc := &echoService{tokens: make(chan string, 10)}
	api := serveCapability(t, reg, func(gs *grpc.Server) { testingv1.RegisterEchoServiceServer(gs, svc) })
	iss := api.iss
	const aud = testAudience
	tok := iss.Mint(t, tokentest.Token{Audience: aud, Scope: "openid"})
	get := func(query, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, api.url+"/actions/echo"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return api.send(t, req, nil)
	}

	code, b := get("?text=ab&times=3&shout=true", tok)
	var out struct {
		Text   string `json:"text"`
		Length int    `json:"length"`
	}
	if err := json.Unmarshal(b, &out); err != nil || code != 200 || out.Text != "ABABAB" || out.Length != 6 {
		t.Fatalf("echo: %d %s", code, b)
	}
	if got := <-svc.tokens; got != tok {
		t.Error("the caller's token was not forwarded to the capability")
	}
	// Any UTF-8 text is a string parameter, control characters included
	// (they were written into the decoder's JSON with Go quoting, which is
	// not JSON: a 400 with a syntax error).
	code, b = get("?text=%00%7F%E2%80%A8%F4%8F%BF%BFz&times=1", tok)
	if err := json.Unmarshal(b, &out); err != nil || code != 200 || out.Text != "\x00\x7f\u2028\U0010FFFFz" {
		t.Errorf("echo of control characters: %d %s", code, b)
	}
	for _, tc := range []struct {
		query, token string
		code         int
		want         string
	}{
		{"?text=%FF&times=1", tok, 400, `query parameter \"text\" is not valid UTF-8`},
		{"?times=abc", tok, 400, "invalid_request"},
		{"?times=11", tok, 400, "times must be 1 to 10"},
		{"?text=a&text=b", tok, 400, "given 2 times"},
		{"?text=a", iss.Mint(t, tokentest.Token{Audience: aud, Scope: "profile"}), 403, "insufficient_scope"},
		{"?text=a", "", 401, "invalid_token"},
	} {
		code, b := get(tc.query, tc.token)
		if code != tc.code || !bytes.Contains(b, []byte(tc.want)) {
			t.Errorf("echo%s: %d %s, want %d %s", tc.query, code, b, tc.code, tc.want)
		}
	}
}
