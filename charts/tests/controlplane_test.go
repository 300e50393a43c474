package tests

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// controlPlane is a Kubernetes control plane on loopback: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, and kwok standing
// in for kubelets, so that pods on its fake node become Running and Ready.
// Nothing is reachable from outside 127.0.0.1 and no container ever runs.
type controlPlane struct {
	t          testing.TB
	dir        string
	kubeconfig string
	kubectl    string
	procs      []*process
	// pickPort picks the ports of spawnBinding (freePort when nil).
	pickPort func(testing.TB) int
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// freePort returns a port that was free a moment ago. Another process may
// bind it before the component it is for does: components that bind their
// own ports (etcd, kube-apiserver, kwok cannot be handed a listener) are
// started with spawnBinding, which retries with fresh ports.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startControlPlane starts every component and waits until the fake node is Ready.
func startControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	bins := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"} {
		bins[b] = tool(t, b)
	}
	// Short path: etcd's unix sockets must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "tollgate-cp-")
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{t: t, dir: dir, kubectl: bins["kubectl"]}
	t.Cleanup(func() {
		cp.stop()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("control-plane logs kept in %s", dir)
		}
	})
	start := time.Now()

	// etcd
	etcdPorts := cp.spawnBinding("etcd", bins["etcd"], 2, func(ports []int) []string {
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		return []string{"--name=tollgate-test", "--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=tollgate-test=" + peerURL,
			"--log-level=warn", "--quota-backend-bytes=1073741824",
		}
	}, func(ports []int) bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", ports[0]), "") }, 60*time.Second)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPorts[0])

	// kube-apiserver, authenticated by a static admin token.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	token := rand.Text()
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(token+",tollgate-admin,tollgate-admin,system:masters\n"))
	apiPorts := cp.spawnBinding("kube-apiserver", bins["kube-apiserver"], 1, func(ports []int) []string {
		return []string{"--etcd-servers=" + clientURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[0]),
			"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
			"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
			"--service-cluster-ip-range=10.96.0.0/16",
			"--endpoint-reconciler-type=none",
			// Would taint the node not-ready until the node lifecycle controller,
			// which is off (below), lifts the taint.
			"--disable-admission-plugins=TaintNodesByCondition",
			"--v=0",
		}
	}, func(ports []int) bool {
		return httpOK(fmt.Sprintf("https://127.0.0.1:%d/readyz", ports[0]), token)
	}, 3*time.Minute)
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPorts[0])

	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, cp.kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, server, token)))

	// The node lifecycle controller would mark the fake node NotReady after
	// its grace period (kwok sends no heartbeats here) and evict the pods.
	cp.spawn("kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig="+cp.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--service-account-private-key-file="+saKey,
		"--controllers=*,-node-lifecycle-controller",
		"--concurrent-deployment-syncs=10", "--v=0",
	)
	cp.spawn("kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig="+cp.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0", "--v=0",
	)
	stages, err := filepath.Abs(filepath.Join("testdata", "kwok-stages.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// kwok's server-address serves its /healthz.
	cp.spawnBinding("kwok", bins["kwok"], 1, func(ports []int) []string {
		return []string{"--kubeconfig=" + cp.kubeconfig, "--config=" + stages,
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--cidr=10.244.0.0/16", "--node-ip=10.244.0.1",
			fmt.Sprintf("--server-address=127.0.0.1:%d", ports[0]),
		}
	}, func(ports []int) bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[0]), "") }, time.Minute)
	cp.kubectlOK(timeout(t, time.Minute), "apply", "-f", filepath.Join("testdata", "cluster", "node.yaml"))
	cp.kubectlOK(timeout(t, 2*time.Minute), "wait", "--for=condition=Ready", "node/kwok-node-0", "--timeout=90s")
	t.Logf("control plane ready in %s (kube-apiserver %s)", time.Since(start).Round(time.Second), cp.serverVersion())
	return cp
}

func (cp *controlPlane) serverVersion() string {
	out, err := cp.kubectl_(timeout(cp.t, 30*time.Second), "version", "-o", "json")
	if err != nil {
		return "unknown"
	}
	if i := strings.Index(out, `"serverVersion"`); i >= 0 {
		if j := strings.Index(out[i:], `"gitVersion": "`); j >= 0 {
			rest := out[i+j+len(`"gitVersion": "`):]
			return rest[:strings.Index(rest, `"`)]
		}
	}
	return "unknown"
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (cp *controlPlane) spawn(name, bin string, args ...string) *process {
	cp.t.Helper()
	logPath := filepath.Join(cp.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		cp.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cp.t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	cp.procs = append(cp.procs, p)
	return p
}

// bindTries is how many sets of ports spawnBinding tries.
const bindTries = 5

// addrInUse matches a bind failure in a component's log (Go's "bind:
// address already in use", Redis's "Address already in use").
var addrInUse = regexp.MustCompile(`(?i)address already in use`)

// spawnBinding starts a component that binds nports loopback ports itself
// (a foreign binary cannot be handed a listener, as the fleet's services
// are): args makes its arguments from the ports, ready says when it
// serves. freePort's port can be taken by another process before the
// component binds it; a component that exits with "address already in
// use" in its log is started again on fresh ports, up to bindTries times.
// It returns the ports the component serves on.
func (cp *controlPlane) spawnBinding(name, bin string, nports int, args func(ports []int) []string, ready func(ports []int) bool, limit time.Duration) []int {
	cp.t.Helper()
	pick := cp.pickPort
	if pick == nil {
		pick = freePort
	}
retry:
	for try := 1; ; try++ {
		ports := make([]int, nports)
		for i := range ports {
			ports[i] = pick(cp.t)
		}
		p := cp.spawn(name, bin, args(ports)...)
		deadline := time.Now().Add(limit)
		for {
			select {
			case <-p.done:
				if addrInUse.MatchString(tail(p.log, 40)) && try < bindTries {
					cp.t.Logf("%s: a port of %v was taken before it bound it; starting it again on fresh ports (try %d of %d)", name, ports, try+1, bindTries)
					cp.procs = slices.DeleteFunc(cp.procs, func(q *process) bool { return q == p })
					_ = os.Rename(p.log, fmt.Sprintf("%s.try%d", p.log, try))
					continue retry
				}
				cp.t.Fatalf("%s exited: %v\n%s", name, p.cmd.ProcessState, tail(p.log, 40))
			default:
			}
			if ready(ports) {
				return ports
			}
			if time.Now().After(deadline) {
				cp.t.Fatalf("%s not ready after %s\n%s", name, limit, tail(p.log, 40))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// httpOK reports whether GET url (with a bearer token, when given) answers
// 200; https is not verified (loopback, self-signed test servers).
func httpOK(url, token string) bool {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // loopback, self-signed test server
	}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the components in reverse order of start.
func (cp *controlPlane) stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// checkAlive fails the test with the log tail of any component that exited.
func (cp *controlPlane) checkAlive() {
	cp.t.Helper()
	for _, p := range cp.procs {
		select {
		case <-p.done:
			cp.t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, tail(p.log, 40))
		default:
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (cp *controlPlane) waitHTTP(name, url, token string, limit time.Duration) {
	cp.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // loopback, self-signed test server
	}}
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		cp.checkAlive()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	p := cp.procs[len(cp.procs)-1]
	cp.t.Fatalf("%s not ready after %s (%s)\n%s", name, limit, last, tail(p.log, 40))
}

func (cp *controlPlane) env() []string {
	return append(os.Environ(), "KUBECONFIG="+cp.kubeconfig)
}

func (cp *controlPlane) kubectl_(ctx context.Context, args ...string) (string, error) {
	return run(ctx, cp.env(), cp.kubectl, args...)
}

func (cp *controlPlane) kubectlOK(ctx context.Context, args ...string) string {
	cp.t.Helper()
	out, err := cp.kubectl_(ctx, args...)
	if err != nil {
		cp.checkAlive()
		cp.t.Fatal(err)
	}
	return out
}
