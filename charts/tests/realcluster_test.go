package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The chart on a real node (`make cluster-e2e`): its pods run in containerd,
// find each other through CoreDNS, and are reached through Traefik serving
// the chart's two Ingresses. docs/deployment/testing.md describes it.
const (
	ingressIP     = "10.96.0.80"
	gatewayHost   = "gateway.tollgate.test"
	actionsHost   = "actions.tollgate.test"
	realNamespace = "tollgate"
	// The dev values' local-test client (charts/tollgate/ci/dev-values.yaml).
	testClientID     = "local-test"
	testClientSecret = "tollgate-dev-test-secret"
	testClientHash   = "$2a$10$lIC9xnib4Sx7Ub31UTzdX.SGy43riEy2xXzBjeNycxGXItPNdZDje"
	testRedirectURI  = "http://127.0.0.1:8976/callback"
)

var (
	issuer      = "http://" + gatewayHost
	mcpResource = "http://" + gatewayHost + "/mcp"
	actionsAud  = "http://" + actionsHost + "/actions"
)

// TestRealCluster installs the chart with the dev values on a real node and
// runs the end-to-end flow through the ingress controller; then upgrades it
// and deletes a pod under load. It needs root and changes the machine only
// in ways its teardown undoes (realhost_test.go).
func TestRealCluster(t *testing.T) {
	if os.Getenv("CLUSTER_E2E") == "" {
		t.Skip("SKIPPED: the real-cluster test runs under `make cluster-e2e` (CLUSTER_E2E=1)")
	}
	requireRealHost(t)
	helm := tool(t, "helm")
	for _, b := range []string{"coredns", "traefik", "kubelet", "kube-proxy"} {
		tool(t, b)
	}
	start := time.Now()
	host := prepareHost(t)
	rc := startRealCluster(t, host)
	registry, tag := rc.loadImages(t)
	rc.installAddon(t, "coredns", "kube-system")
	rc.installAddon(t, "traefik", "ingress")
	t.Logf("cluster with DNS and ingress ready in %s", time.Since(start).Round(time.Second))

	client := newClusterClient()
	// Cluster DNS answers for Services, from the node as from a pod.
	if ips := client.lookupService(t, "kubernetes.default.svc.cluster.local"); len(ips) != 1 || ips[0] != apiServiceIP {
		t.Fatalf("CoreDNS: kubernetes.default.svc.cluster.local = %v, want %s", ips, apiServiceIP)
	}

	values := rc.writeValues(t, registry, tag, "info")
	helmEnv := append(helmEnv(t), "KUBECONFIG="+rc.kubeconfig)
	rc.kubectlOK(timeout(t, time.Minute), "create", "namespace", realNamespace)
	installStart := time.Now()
	if out, err := run(timeout(t, 11*time.Minute), helmEnv, helm, "install", "tollgate", chartDir(t),
		"-n", realNamespace, "-f", filepath.Join(chartDir(t), "ci", "dev-values.yaml"), "-f", values,
		"--wait", "--timeout=10m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	// Every pod is Ready by its own probes: no failed container, no restart.
	rc.kubectlOK(timeout(t, 3*time.Minute), "-n", realNamespace, "wait", "pods", "--all", "--for=condition=Ready", "--timeout=150s")
	installReady := time.Now()
	t.Logf("helm install --wait: every pod Ready in %s", time.Since(installStart).Round(time.Second))
	rc.expectNoRestarts(t)

	// The end-to-end flow through Traefik, once it routes both hosts (it
	// skips a backend until the Service has ready endpoints).
	client.waitRouted(t, issuer+"/.well-known/openid-configuration", "http://"+actionsHost+"/health")
	mcpTok := client.link(t, mcpResource, issuer)
	// A GPT starts on the Actions host (ACTIONS_OAUTH_BASE_URL).
	actTok := client.link(t, actionsAud, "http://"+actionsHost)
	// The connectors reach capability-core (and the auth-server) through
	// headless Services, which have no address until a pod is Ready. Their
	// resolver (services/platform/grpcx/resolver.go) asks again every
	// second while a name has none; gRPC's own backed off up to 16 s here,
	// which failed calls for 0–15 s after every pod was Ready. Once the
	// cluster DNS answers both names (its cache holds a "no such name" for
	// up to 5 s), the first call through each connector must succeed.
	readyAt := time.Now()
	for _, svc := range []string{"capability-core-grpc", "auth-server-grpc"} {
		client.waitResolves(t, "tollgate-"+svc+"."+realNamespace+".svc.cluster.local")
	}
	time.Sleep(connectorsSettle)
	client.mcpToolCall(t, mcpTok.AccessToken, "identity.profile")
	if err := client.actionsProfile(timeout(t, 30*time.Second), actTok.AccessToken); err != nil {
		t.Fatalf("the first Actions call once capability-core resolves: %v", err)
	}
	t.Logf("first tools/call and Actions call succeeded %s after the headless names resolved, %s after every pod was Ready",
		time.Since(readyAt).Round(time.Millisecond), time.Since(installReady).Round(time.Second))
	client.sseToolCall(t, mcpTok.AccessToken, "identity.profile")
	fresh := client.refresh(t, actTok.RefreshToken)
	client.actionsCall(t, fresh.AccessToken)

	// Pods reach nothing past the node: a connection to a documentation
	// address (RFC 5737) is dropped by the guard at the bridge.
	rc.expectEgressDropped(t)

	// helm upgrade with a changed value rolls every Deployment; requests
	// keep succeeding throughout; a request shed with 503 + Retry-After
	// counts when its one retry after the delay succeeds, as for any client.
	load := client.startLoad(t, fresh.AccessToken, false)
	values = rc.writeValues(t, registry, tag, "debug")
	if out, err := run(timeout(t, 11*time.Minute), helmEnv, helm, "upgrade", "tollgate", chartDir(t),
		"-n", realNamespace, "-f", filepath.Join(chartDir(t), "ci", "dev-values.yaml"), "-f", values,
		"--wait", "--timeout=10m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	rc.kubectlOK(timeout(t, 6*time.Minute), "-n", realNamespace, "rollout", "status", "deployment/tollgate-actions-api", "--timeout=5m")
	ok, deferred, failed := load.stop()
	t.Logf("during helm upgrade: %d requests succeeded (%d of them after honouring a Retry-After), %d failed", ok, deferred, len(failed))
	if len(failed) > 0 || ok == 0 {
		t.Errorf("requests failed during the rolling upgrade: %v", failed)
	}

	// A pod deleted under light load: a failed call succeeds when retried.
	load = client.startLoad(t, fresh.AccessToken, true)
	var pods []string // once the upgrade's old pods are gone
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		pods = strings.Fields(rc.kubectlOK(timeout(t, time.Minute), "-n", realNamespace, "get", "pods", "-l", "app.kubernetes.io/component=actions-api", "-o", "name"))
		if len(pods) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 2 actions-api pods, have %v", pods)
		}
	}
	rc.kubectlOK(timeout(t, 2*time.Minute), "-n", realNamespace, "delete", pods[0], "--wait=true")
	rc.kubectlOK(timeout(t, 3*time.Minute), "-n", realNamespace, "rollout", "status", "deployment/tollgate-actions-api", "--timeout=150s")
	time.Sleep(2 * time.Second)
	ok, deferred, failed = load.stop()
	t.Logf("pod deleted under load: %d requests succeeded (%d after a Retry-After), %d failed after a retry", ok, deferred, len(failed))
	if len(failed) > 0 || ok == 0 {
		t.Errorf("calls failed after a retry while a pod was replaced: %v", failed)
	}

	// The Tiltfile on the same cluster, once the release is gone.
	if out, err := run(timeout(t, 5*time.Minute), helmEnv, helm, "uninstall", "tollgate", "-n", realNamespace, "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	rc.tiltCI(t, rc.writeValues(t, registry, tag, "info"))
	t.Logf("real-cluster test took %s", time.Since(start).Round(time.Second))
}

// connectorsSettle is how long the test lets the connectors see a name the
// cluster DNS has just started to answer: their resolver's retry interval
// (grpcx.ResolveRetryInterval, 1 s) plus their circuit breaker's open
// interval (grpcx.BreakerOpen, 1 s: readiness probes may have opened it
// while capability-core was down), plus a second for the connection. The
// verifiers' key-set fetch from the auth-server, which failed while its
// name had no address, is retried every second until it has a set
// (tokens.FirstSetRetry) within the same three.
const connectorsSettle = 3 * time.Second

// waitResolves waits until the cluster DNS answers name with an address.
func (c *clusterClient) waitResolves(t *testing.T, name string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var ips []string
		if ips, err = c.resolver.LookupHost(timeout(t, 10*time.Second), name); err == nil && len(ips) > 0 {
			return
		}
	}
	t.Fatalf("cluster DNS: %s has no address 2 minutes after every pod was Ready: %v", name, err)
}

// installAddon applies testdata/realcluster/<name>.yaml and waits for its
// Deployment to be rolled out.
func (rc *realCluster) installAddon(t *testing.T, name, namespace string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "realcluster", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer("${COREDNS_IMAGE}", corednsImage, "${TRAEFIK_IMAGE}", traefikImage,
		"${DNS_IP}", dnsServiceIP, "${INGRESS_IP}", ingressIP).Replace(string(b))
	p := filepath.Join(rc.dir, name+".yaml")
	writeFile(t, p, []byte(manifest))
	rc.kubectlOK(timeout(t, time.Minute), "apply", "-f", p)
	rc.kubectlOK(timeout(t, 4*time.Minute), "-n", namespace, "rollout", "status", "deployment/"+name, "--timeout=3m")
}

// TestRealNode is the first half of TestRealCluster on its own: the node
// joins, pods get addresses on the bridge, CoreDNS answers, pods reach
// nothing past the node, and teardown leaves the machine as it was.
func TestRealNode(t *testing.T) {
	if os.Getenv("CLUSTER_E2E") == "" {
		t.Skip("SKIPPED: the real-cluster tests run under `make cluster-e2e` (CLUSTER_E2E=1)")
	}
	requireRealHost(t)
	tool(t, "coredns")
	host := prepareHost(t)
	rc := startRealCluster(t, host)
	rc.importImage(t, buildRedisImage(t, rc.dir))
	rc.importImage(t, buildBinaryImage(t, rc.dir, corednsImage, tool(t, "coredns")))
	rc.installAddon(t, "coredns", "kube-system")
	if ips := newClusterClient().lookupService(t, "kubernetes.default.svc.cluster.local"); len(ips) != 1 || ips[0] != apiServiceIP {
		t.Fatalf("CoreDNS: kubernetes.default.svc.cluster.local = %v, want %s", ips, apiServiceIP)
	}
	rc.expectEgressDropped(t)
}

// writeValues writes the values the test layers on the dev values: public
// hosts served by Traefik, the images imported above, the dev edge off.
func (rc *realCluster) writeValues(t *testing.T, registry, tag, logLevel string) string {
	t.Helper()
	client := map[string]any{
		"client_id": testClientID, "client_name": "Real-cluster test client",
		"client_secret_hash": testClientHash, "redirect_uris": []string{testRedirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"},
		"scopes":      []string{"openid", "profile", "email", "offline_access"},
		"resources":   []string{mcpResource, actionsAud}, "token_endpoint_auth_method": "client_secret_basic",
		"require_pkce": true, "skip_consent": true,
	}
	v := map[string]any{
		"logLevel":            logLevel,
		"preStopSleepSeconds": 5, // the chart's default; the dev values have 0
		"hosts":               map[string]any{"gateway": gatewayHost, "actions": actionsHost},
		"publicUrls":          map[string]any{"scheme": "http", "allowedOrigins": []string{issuer}},
		"image":               map[string]any{"registry": registry, "tag": tag, "pullPolicy": "Never"},
		"authServer":          map[string]any{"clients": map[string]any{"registry": []any{client}}},
		// The dev values point browsers at a Tilt port-forward; here the
		// browser resolves the dev IdP's Service name with the cluster DNS.
		"devIdp": map[string]any{"issuerUrl": "http://tollgate-dev-idp." + realNamespace + ".svc.cluster.local:8080"},
		// Two Actions pods, so that one can be deleted under load.
		"actionsApi": map[string]any{"replicas": 2},
		"redis": map[string]any{"bundled": map[string]any{"image": map[string]any{
			"repository": strings.Split(redisImage, ":")[0], "tag": strings.Split(redisImage, ":")[1], "pullPolicy": "Never"}}},
		// Plain HTTP on Traefik's web entry point: a router of an Ingress
		// with a tls section matches TLS connections only.
		"ingress": map[string]any{"enabled": true, "className": "traefik",
			"gateway": map[string]any{"tls": map[string]any{"enabled": false}},
			"actions": map[string]any{"tls": map[string]any{"enabled": false}}},
		"devEdge": map[string]any{"enabled": false},
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(rc.dir, "values-"+logLevel+".yaml")
	writeFile(t, p, b)
	return p
}

func (rc *realCluster) expectNoRestarts(t *testing.T) {
	t.Helper()
	out := rc.kubectlOK(timeout(t, time.Minute), "-n", realNamespace, "get", "pods", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[*].restartCount}{"\n"}{end}`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] != "0" {
			t.Errorf("pod %s restarted %s times", f[0], f[1])
		}
	}
}

// expectEgressDropped runs a pod that tries to reach 198.51.100.1 and checks
// that the guard dropped its packets before they left the node.
func (rc *realCluster) expectEgressDropped(t *testing.T) {
	t.Helper()
	before := guardDrops(t)
	// redis-cli's connect goes unanswered: the guard drops the SYN.
	rc.kubectlOK(timeout(t, 2*time.Minute), "-n", "default", "run", "egress-probe", "--restart=Never",
		"--image="+redisImage, "--image-pull-policy=Never", "--command", "--",
		"/usr/bin/redis-cli", "-h", "198.51.100.1", "ping")
	after := before
	for deadline := time.Now().Add(90 * time.Second); after <= before && time.Now().Before(deadline); time.Sleep(time.Second) {
		after = guardDrops(t)
	}
	rc.kubectlOK(timeout(t, time.Minute), "-n", "default", "delete", "pod", "egress-probe", "--grace-period=1", "--wait=true")
	if after <= before {
		t.Errorf("the guard dropped no packet of a pod's connection to 198.51.100.1 (%d before, %d after)", before, after)
	}
	assertIsolated(t)
}

// lookupService resolves name with the cluster DNS from the node, waiting
// until kube-proxy routes the kube-dns Service to a ready CoreDNS.
func (c *clusterClient) lookupService(t *testing.T, name string) []string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		var ips []string
		if ips, err = c.resolver.LookupHost(timeout(t, 10*time.Second), name); err == nil {
			return ips
		}
	}
	t.Fatalf("cluster DNS: %s: %v", name, err)
	return nil
}

// clusterClient is the test's browser and API client: public hosts go to
// Traefik's Service; other names are resolved by the cluster DNS with the
// release namespace's search path, as from a pod in it.
type clusterClient struct {
	http     *http.Client
	resolver *net.Resolver
}

func newClusterClient() *clusterClient {
	c := &clusterClient{}
	c.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(dnsServiceIP, "53"))
	}}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	jar, _ := cookiejar.New(nil)
	c.http = &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				if strings.HasSuffix(host, ".tollgate.test") {
					return dialer.DialContext(ctx, network, net.JoinHostPort(ingressIP, "80"))
				}
				if net.ParseIP(host) == nil {
					name := host
					if !strings.Contains(name, ".") {
						name += "." + realNamespace + ".svc.cluster.local"
					}
					ips, err := c.resolver.LookupHost(ctx, name)
					if err != nil {
						return nil, err
					}
					host = ips[0]
				}
				return dialer.DialContext(ctx, network, net.JoinHostPort(host, port))
			},
			MaxIdleConnsPerHost: 16,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

var (
	formTag  = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>`)
	inputTag = regexp.MustCompile(`<(?:input|button)\b[^>]*>`)
	attr     = regexp.MustCompile(`([a-zA-Z_-]+)="([^"]*)"`)
)

// link runs account linking for resource: authorization request with PKCE
// at start's /oauth/authorize (the issuer, or the Actions host, which sends
// the browser on to the issuer's), the dev IdP's login form, the callback
// with code, state and iss, and the code exchange.
func (c *clusterClient) link(t *testing.T, resource, start string) tokenResponse {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {testRedirectURI},
		"scope": {"openid profile email offline_access"}, "state": {state}, "resource": {resource},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	next, method, form := start+"/oauth/authorize?"+q.Encode(), http.MethodGet, url.Values(nil)
	var visited []string
	for step := 0; ; step++ {
		if step > 15 {
			t.Fatalf("account linking did not reach the callback: %v", visited)
		}
		if strings.HasPrefix(next, testRedirectURI) {
			break
		}
		visited = append(visited, method+" "+next)
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, next, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatalf("%s: %v (visited %v)", next, err, visited)
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			next, method, form = loc.String(), http.MethodGet, nil
		case resp.StatusCode == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "text/html"):
			m := formTag.FindStringSubmatch(string(page))
			if m == nil {
				t.Fatalf("no form on %s: %.400s", req.URL, page)
			}
			form = url.Values{}
			for _, in := range inputTag.FindAllString(m[2], -1) {
				a := map[string]string{}
				for _, kv := range attr.FindAllStringSubmatch(in, -1) {
					a[kv[1]] = html.UnescapeString(kv[2])
				}
				switch {
				case a["name"] == "username":
					form.Set("username", "dev")
				case a["name"] == "password":
					form.Set("password", "tollgate-dev")
				case a["name"] == "decision":
					if a["value"] == "approve" {
						form.Set("decision", "approve")
					}
				case a["name"] != "":
					form.Set(a["name"], a["value"])
				}
			}
			action, err := req.URL.Parse(html.UnescapeString(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			next, method = action.String(), http.MethodPost
		default:
			t.Fatalf("%s %s answered %d: %.400s (visited %v)", method, req.URL, resp.StatusCode, page, visited)
		}
	}
	cb, _ := url.Parse(next)
	if cb.Query().Get("state") != state || cb.Query().Get("iss") != issuer || cb.Query().Get("code") == "" {
		t.Fatalf("callback %s: want code, state and iss %s", cb, issuer)
	}
	return c.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {testRedirectURI}, "code_verifier": {verifier}, "resource": {resource}})
}

func (c *clusterClient) refresh(t *testing.T, refreshToken string) tokenResponse {
	t.Helper()
	tok := c.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if tok.RefreshToken == "" || tok.RefreshToken == refreshToken {
		t.Errorf("refresh did not rotate the refresh token")
	}
	return tok
}

func (c *clusterClient) token(t *testing.T, form url.Values) tokenResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testClientID, testClientSecret)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tok tokenResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token (%s) = %d %s", form.Get("grant_type"), resp.StatusCode, b)
	}
	return tok
}

const mcpProtocol = "2025-06-18"

// mcpPost sends one JSON-RPC message to /mcp and returns the response
// (plain JSON or the first event of an SSE body) and the session id.
func (c *clusterClient) mcpPost(ctx context.Context, token, session, msg string) (int, string, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+gatewayHost+"/mcp", strings.NewReader(msg))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", mcpProtocol)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out := string(body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		out = ""
		for _, l := range strings.Split(string(body), "\n") {
			if d, ok := strings.CutPrefix(l, "data:"); ok {
				out = strings.TrimSpace(d)
				break
			}
		}
	}
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), out, nil
}

func initializeMsg(id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"real-cluster-test","version":"1"}}}`, id, mcpProtocol)
}

func toolCallMsg(id int, tool string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool)
}

const initializedMsg = `{"jsonrpc":"2.0","method":"notifications/initialized"}`

// mcpToolCall opens a Streamable HTTP session and calls tool; the result
// must be the linked user's.
func (c *clusterClient) mcpToolCall(t *testing.T, token, tool string) {
	t.Helper()
	ctx := timeout(t, time.Minute)
	code, session, body, err := c.mcpPost(ctx, token, "", initializeMsg(1))
	if err != nil || code != http.StatusOK || session == "" {
		t.Fatalf("initialize over /mcp = %d %v %s", code, err, body)
	}
	if code, _, body, err = c.mcpPost(ctx, token, session, initializedMsg); err != nil || code != http.StatusAccepted {
		t.Fatalf("notifications/initialized = %d %v %s", code, err, body)
	}
	code, _, body, err = c.mcpPost(ctx, token, session, toolCallMsg(2, tool))
	if err != nil || code != http.StatusOK || !strings.Contains(body, "dev-user-0001") || strings.Contains(body, `"isError":true`) {
		t.Fatalf("tools/call %s over /mcp = %d %v %s", tool, code, err, body)
	}
}

// sseToolCall does the same over the legacy SSE transport: GET /sse for the
// endpoint event, POST the messages there, read the answers from the stream.
func (c *clusterClient) sseToolCall(t *testing.T, token, tool string) {
	t.Helper()
	ctx := timeout(t, time.Minute)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gatewayHost+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	hc := *c.http
	hc.Timeout = 0 // the stream stays open
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /sse = %d %s", resp.StatusCode, b)
	}
	events := make(chan [2]string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev, data string
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, "event:"):
				ev = strings.TrimSpace(strings.TrimPrefix(l, "event:"))
			case strings.HasPrefix(l, "data:"):
				data = strings.TrimSpace(strings.TrimPrefix(l, "data:"))
			case l == "" && data != "":
				events <- [2]string{ev, data}
				ev, data = "", ""
			}
		}
	}()
	next := func(want string) string {
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("SSE stream ended before %s", want)
				}
				if e[0] == want || (want == "message" && e[0] == "") {
					return e[1]
				}
			case <-ctx.Done():
				t.Fatalf("no %s event on /sse", want)
			}
		}
	}
	endpoint, err := req.URL.Parse(next("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(msg string) {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(msg))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		resp, err := c.http.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s = %d %s", endpoint.Path, resp.StatusCode, b)
		}
	}
	post(strings.Replace(initializeMsg(1), mcpProtocol, "2024-11-05", 1))
	if m := next("message"); !strings.Contains(m, `"protocolVersion"`) {
		t.Fatalf("initialize over /sse: %s", m)
	}
	post(initializedMsg)
	post(toolCallMsg(2, tool))
	if m := next("message"); !strings.Contains(m, "dev-user-0001") || strings.Contains(m, `"isError":true`) {
		t.Fatalf("tools/call %s over /sse: %s", tool, m)
	}
}

// actionsCall reads the linked user's profile through the Actions API.
func (c *clusterClient) actionsCall(t *testing.T, token string) {
	t.Helper()
	if err := c.actionsProfile(timeout(t, 30*time.Second), token); err != nil {
		t.Fatal(err)
	}
}

func (c *clusterClient) actionsProfile(ctx context.Context, token string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+actionsHost+"/actions/profile", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "dev-user-0001") {
		err := fmt.Errorf("GET /actions/profile = %d %.300s", resp.StatusCode, b)
		if after, ok := retryAfter(resp); ok {
			return &deferredError{after: after, err: err}
		}
		return err
	}
	return nil
}

// deferredError is a 503 or 429 answer with a Retry-After header (RFC 9110
// §10.2.3): the services shed a request this way by design when a shared
// dependency is slow (a rate-limit command past its deadline, say), and a
// client is expected to come back after the delay.
type deferredError struct {
	after time.Duration
	err   error
}

func (e *deferredError) Error() string { return fmt.Sprintf("%v (Retry-After %s)", e.err, e.after) }

// retryAfter reads a 503 or 429 answer's Retry-After in delay-seconds.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// load sends an Actions call every 200 ms until stopped. Like any
// well-behaved client it honours a Retry-After answer once (waiting at most
// 5 s); such a call counts as deferred, and as failed only when its retry
// fails too. With retry set, any other failed call is also retried once,
// after a second.
type load struct {
	stopCh   chan struct{}
	wg       sync.WaitGroup
	ok       atomic.Int64
	deferred atomic.Int64
	mu       sync.Mutex
	failed   []string
}

func (c *clusterClient) startLoad(t *testing.T, token string, retry bool) *load {
	t.Helper()
	actToken := token
	l := &load{stopCh: make(chan struct{})}
	attempt := func(f func(context.Context) error) {
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return f(ctx)
		}()
		var d *deferredError
		if errors.As(err, &d) {
			l.deferred.Add(1)
			time.Sleep(min(d.after, 5*time.Second))
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = f(ctx)
			cancel()
		} else if err != nil && retry {
			time.Sleep(time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = f(ctx)
			cancel()
		}
		if err != nil {
			l.mu.Lock()
			l.failed = append(l.failed, time.Now().Format("15:04:05.000")+" "+err.Error())
			l.mu.Unlock()
			return
		}
		l.ok.Add(1)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.stopCh:
				return
			case <-time.After(200 * time.Millisecond):
			}
			attempt(func(ctx context.Context) error { return c.actionsProfile(ctx, actToken) })
		}
	}()
	return l
}

// stop ends the load and returns the calls that succeeded (deferred ones
// included), the deferred count and the failures.
func (l *load) stop() (ok, deferred int64, failed []string) {
	close(l.stopCh)
	l.wg.Wait()
	return l.ok.Load(), l.deferred.Load(), l.failed
}

// tiltCI runs `tilt ci` with the repository's Tiltfile against the cluster:
// images from ko imported into containerd (image_loader: containerd), the
// dev values with this test's overrides, in its own namespace; it succeeds
// when every resource is up and Ready.
func (rc *realCluster) tiltCI(t *testing.T, values string) {
	t.Helper()
	tilt, helm := tool(t, "tilt"), tool(t, "helm")
	dir := t.TempDir()
	settings := filepath.Join(dir, "tilt-settings.yaml")
	writeFile(t, settings, []byte(fmt.Sprintf(`allow_k8s_contexts: [tollgate-e2e]
namespace: tollgate-tilt
image_loader: containerd
dev_edge: false
port_forwards: false
extra_values: [%q]
`, values)))
	toolsBin := os.Getenv("TOOLS_BIN")
	if toolsBin == "" {
		toolsBin = filepath.Dir(helm)
	}
	env := append(helmEnv(t),
		"KUBECONFIG="+rc.kubeconfig,
		"TOLLGATE_TILT_SETTINGS="+settings,
		"CONTAINERD_ADDRESS="+rc.containerd,
		"TOOLS_BIN="+toolsBin,
		"PATH="+filepath.Dir(helm)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TILT_DISABLE_ANALYTICS=1",
		"HOME="+dir,
	)
	start := time.Now()
	out, err := runIn(timeout(t, 16*time.Minute), repoRoot(t), env, tilt, "ci", "-f", filepath.Join(repoRoot(t), "Tiltfile"),
		// Tilt's web and API server on a free loopback port, not 10350
		// (a developer's Tilt may hold it). Its web page is the placeholder
		// charts/tools/build.sh gives a tilt built from the module proxy.
		"--port=0", "--timeout=15m")
	if err != nil {
		t.Fatalf("tilt ci: %v\n%s", err, lastLines(out, 80))
	}
	t.Logf("tilt ci succeeded in %s", time.Since(start).Round(time.Second))
	rc.kubectlOK(timeout(t, 3*time.Minute), "-n", "tollgate-tilt", "wait", "pods", "--all", "--for=condition=Ready", "--timeout=150s")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitRouted polls each URL through the ingress until it answers 200.
func (c *clusterClient) waitRouted(t *testing.T, urls ...string) {
	t.Helper()
	for _, u := range urls {
		var last string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
			resp, err := c.http.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
			if time.Now().After(deadline) {
				t.Fatalf("the ingress does not route %s: %s", u, last)
			}
		}
	}
}
