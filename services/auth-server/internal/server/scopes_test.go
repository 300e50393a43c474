package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1" // the guide's worked example, renamed: ShipmentsService declares shipments.read
	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestCapabilityScopeEndToEnd follows docs/guides/add-a-capability.md: its
// worked example under names of its own, ShipmentsService
// (proto/tollgate/testing/v1/shipments.proto, linked into this test binary),
// declares shipments.read, and nothing else is configured. The
// auth-server publishes the scope, accepts clients that register for it,
// shows its description on the consent page and issues it in tokens; an
// undeclared scope stays invalid.
func TestCapabilityScopeEndToEnd(t *testing.T) {
	f := startFleetWith(t, nil, `- client_id: shipments-app
  client_name: Shipments app
  redirect_uris: ["http://127.0.0.1:8978/shipments-callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
  scopes: [openid, shipments.read]
`)
	// Discovery (RFC 8414 / OpenID Connect Discovery) lists it.
	resp, err := http.Get(f.Base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		ScopesSupported []string `json:"scopes_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if !slices.Contains(md.ScopesSupported, "shipments.read") || !slices.Contains(md.ScopesSupported, "offline_access") || slices.Contains(md.ScopesSupported, "shipments.write") {
		t.Errorf("scopes_supported = %v", md.ScopesSupported)
	}

	// Consent shows the capability's words, and the token carries the scope.
	c := devClient{ClientID: "shipments-app", RedirectURIs: []string{"http://127.0.0.1:8978/shipments-callback"}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Scope = "openid shipments.read"
	b := newBrowser(t, a.RedirectURI)
	p := f.login(b, a)
	if p.Location != nil || p.Status != http.StatusOK {
		t.Fatalf("want the consent page, got %d %v\n%s", p.Status, p.Location, p.Body)
	}
	if !strings.Contains(p.Body, "<li>See your shipments</li>") || !strings.Contains(p.Body, "<li>Know who you are") {
		t.Errorf("consent page does not describe the scopes:\n%s", p.Body)
	}
	p = b.submit(p, url.Values{"decision": {"approve"}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("no code after consent: %d %v", p.Status, p.Location)
	}
	tr := f.exchange(c, a, p.Location.Query().Get("code"))
	if tr.Status != http.StatusOK || tr.Scope != "openid shipments.read" {
		t.Fatalf("token: %d %s %s scope %q", tr.Status, tr.Error, tr.Description, tr.Scope)
	}
	claims, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), tr.AccessToken)
	if err != nil || !slices.Contains(claims.Scopes, "shipments.read") {
		t.Fatalf("access token: %v %v", claims, err)
	}

	// A scope no capability declares is invalid_scope (RFC 6749 §4.1.2.1).
	a = newAuthRequest(c)
	a.Scope = "openid shipments.write"
	p = newBrowser(t, a.RedirectURI).get(a.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_scope" {
		t.Errorf("shipments.write: %d %v, want invalid_scope", p.Status, p.Location)
	}

	// Dynamic registration accepts the declared scope (and registers every
	// supported one, TestDynamicClientStepUp) and refuses others.
	st, reg := register(t, f, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","scope":"openid shipments.read"}`)
	if got, _ := reg["scope"].(string); st != http.StatusCreated || !sameScopes(got, md.ScopesSupported) {
		t.Errorf("register shipments.read: %d %v, want the scope %v", st, reg, md.ScopesSupported)
	}
	st, reg = register(t, f, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","scope":"openid shipments.write"}`)
	if st != http.StatusBadRequest || reg["error"] != "invalid_client_metadata" {
		t.Errorf("register shipments.write: %d %v, want 400 invalid_client_metadata", st, reg)
	}
}

// TestClientRegistryRefusesUndeclaredScopes: a static client may only be
// allowed scopes the install supports.
func TestClientRegistryRefusesUndeclaredScopes(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	writeFile(t, path, `clients:
- client_id: a
  redirect_uris: ["https://a.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
  scopes: [openid, shipments.read, shipments.write]
`)
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp", "CAPABILITY_BACKENDS": "shipments=" + startShipmentsBackend(t),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	if err == nil || !strings.Contains(err.Error(), `scope "shipments.write" is not supported`) || strings.Contains(err.Error(), `"shipments.read" is not supported`) {
		t.Errorf("Run: %v, want shipments.write (and only it) refused", err)
	}
}

// TestClientScopesOfABackendNotReachedAtStart: an auth-server that starts
// while a backend refuses connections does not exit because a static
// client names that backend's scopes (docs/operations/failures.md): they
// are accepted until the backend answers. Once it does, a scope it does
// not declare either (shipments.write) is logged and counted in
// tollgate_client_scopes_unsupported; shipments.read, which it declares, is
// not.
func TestClientScopesOfABackendNotReachedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	writeFile(t, path, `clients:
- client_id: a
  redirect_uris: ["https://a.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
  scopes: [openid, shipments.read, shipments.write]
`)
	keys := t.TempDir()
	if err := tokens.EnsureDevKey(keys); err != nil {
		t.Fatal(err)
	}
	// The backend's address refuses connections until the backend starts
	// on it (HoldPort keeps the port from other processes meanwhile).
	bl := testharness.Listener(t)
	backend := bl.Addr().String()
	_ = bl.Close()
	testharness.HoldPort(t, backend)
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://" + testharness.ClosedAddr(t) + "/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": keys, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp", "CAPABILITY_BACKENDS": "shipments=" + backend,
		"HTTP_ADDR": "127.0.0.1:0", "GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"CLIENTS_FILE_RELOAD_INTERVAL": "100ms",
	}
	as := testharness.RunService(t, server.Run, env) // fails the test if Run returns
	if logs := as.Logs.String(); !strings.Contains(logs, "backends not reached yet") {
		t.Errorf("no warning that the clients' scopes are taken provisionally:\n%s", logs)
	}
	metric := func() string {
		resp, err := http.Get("http://" + as.Addr("admin") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "tollgate_client_scopes_unsupported ") {
				return line
			}
		}
		return ""
	}
	if m := metric(); m != "tollgate_client_scopes_unsupported 0" {
		t.Errorf("before the backend answers: %q", m)
	}
	// A change to the file while the backend is still down is taken the
	// same way, not refused (and then lost: the file is not read again
	// until it changes).
	writeFile(t, path, `clients:
- client_id: a
  redirect_uris: ["https://a.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
  scopes: [openid, shipments.read, shipments.write]
- client_id: b
  redirect_uris: ["https://b.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://mcp.example/mcp"]
  scopes: [openid, shipments.read]
`)
	testharness.Eventually(t, 10*time.Second, "the changed clients file taken while the backend is down", func() (bool, string) {
		logs := as.Logs.String()
		if strings.Contains(logs, "client registry changed but was refused") {
			t.Fatalf("the change was refused:\n%s", logs)
		}
		return strings.Contains(logs, `"msg":"client registry reloaded"`), "not reloaded yet"
	})

	// The backend comes up on its address; discovery asks it again within
	// registry.RetryMax.
	srv := grpc.NewServer()
	testingv1.RegisterShipmentsServiceServer(srv, testingv1.UnimplementedShipmentsServiceServer{})
	reflection.Register(srv)
	ln := testharness.ListenAgain(t, backend)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for metric() != "tollgate_client_scopes_unsupported 1" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := metric(); m != "tollgate_client_scopes_unsupported 1" {
		t.Fatalf("after the backend answered: %q\n%s", m, as.Logs)
	}
	logs := as.Logs.String()
	if !strings.Contains(logs, "static client scope not supported") || !strings.Contains(logs, `"scope":"shipments.write"`) || strings.Contains(logs, `"scope":"shipments.read"`) {
		t.Errorf("want shipments.write (and only it) logged as not supported:\n%s", logs)
	}
}
