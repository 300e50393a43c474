package tests

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realCluster is a one-node Kubernetes cluster whose containers really run:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler as in
// controlplane_test.go, plus containerd, a kubelet and kube-proxy. Every
// file lives under the run directory; the network is the node's bridge
// (realhost_test.go).
type realCluster struct {
	*controlPlane
	host       *hostState
	containerd string // containerd's socket
	ctr        string
	apiServer  string
}

const nodeName = "tollgate-node"

// startRealCluster brings up the node and waits until it is Ready.
func startRealCluster(t *testing.T, host *hostState) *realCluster {
	t.Helper()
	bins := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy"} {
		bins[b] = tool(t, b)
	}
	dir := host.RunDir
	rc := &realCluster{controlPlane: &controlPlane{t: t, dir: dir, kubectl: bins["kubectl"]}, host: host}
	// Components end before the host teardown (registered earlier, runs later).
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(rc.diagnose())
		}
		rc.stop()
	})
	start := time.Now()
	setupNodeNetwork(t)
	assertIsolated(t)

	// etcd on loopback.
	etcdPorts := rc.spawnBinding("etcd", bins["etcd"], 2, func(ports []int) []string {
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		return []string{"--name=tollgate-e2e", "--data-dir=" + filepath.Join(dir, "etcd"),
			"--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=tollgate-e2e=" + peerURL,
			"--log-level=warn", "--quota-backend-bytes=1073741824", "--unsafe-no-fsync",
		}
	}, func(ports []int) bool { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", ports[0]), "") }, time.Minute)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPorts[0])

	// kube-apiserver on the node's bridge address: pods reach it through the
	// kubernetes Service, the test and the components through the bridge.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	token := rand.Text()
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(token+",tollgate-admin,tollgate-admin,system:masters\n"))
	certDir := filepath.Join(dir, "apiserver-certs")
	apiPorts := rc.spawnBinding("kube-apiserver", bins["kube-apiserver"], 1, func(ports []int) []string {
		return []string{"--etcd-servers=" + clientURL,
			"--bind-address=" + bridgeIP, "--advertise-address=" + bridgeIP, fmt.Sprintf("--secure-port=%d", ports[0]),
			"--cert-dir=" + certDir,
			"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
			"--service-cluster-ip-range=" + serviceCIDR,
			"--kubelet-preferred-address-types=InternalIP",
			"--v=0",
		}
	}, func(ports []int) bool {
		return httpOK(fmt.Sprintf("https://%s:%d/readyz", bridgeIP, ports[0]), token)
	}, 3*time.Minute)
	rc.apiServer = fmt.Sprintf("https://%s:%d", bridgeIP, apiPorts[0])
	// The serving certificate kube-apiserver generated for itself is
	// self-signed: it is the CA that pods' service-account volumes carry.
	caFile := filepath.Join(certDir, "apiserver.crt")

	rc.kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, rc.kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: tollgate-e2e
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: tollgate-e2e
  context: {cluster: tollgate-e2e, user: admin, namespace: default}
current-context: tollgate-e2e
`, rc.apiServer, caFile, token)))

	rc.spawn("kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig="+rc.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--service-account-private-key-file="+saKey,
		"--root-ca-file="+caFile, "--use-service-account-credentials",
		"--cluster-cidr="+podCIDR, "--service-cluster-ip-range="+serviceCIDR,
		"--concurrent-deployment-syncs=10", "--v=0",
	)
	rc.spawn("kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig="+rc.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0", "--v=0",
	)

	rc.startContainerd(t)
	rc.importSandboxImage(t)
	rc.startKubelet(t, bins["kubelet"])
	rc.startKubeProxy(t, bins["kube-proxy"])
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		rc.checkAlive()
		if _, err := rc.kubectl_(timeout(t, 30*time.Second), "get", "node", nodeName); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the kubelet did not register %s: %v", nodeName, err)
		}
	}
	rc.kubectlOK(timeout(t, 3*time.Minute), "wait", "--for=condition=Ready", "node/"+nodeName, "--timeout=150s")
	t.Logf("node %s Ready in %s (kube-apiserver %s)", nodeName, time.Since(start).Round(time.Second), rc.serverVersion())
	return rc
}

// startContainerd runs containerd with its root, state, socket and CNI
// configuration under the run directory: overlayfs snapshots, runc with
// cgroupfs, the bridge plugin on the node's bridge.
func (rc *realCluster) startContainerd(t *testing.T) {
	t.Helper()
	dir := filepath.Join(rc.dir, "containerd")
	for _, d := range []string{"cni/net.d", "cni/ipam", "root", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "cni/net.d/10-tollgate.conflist"), []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "tollgate-e2e",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "isDefaultGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "dataDir": %q
    }
  }]
}
`, nodeBridge, podCIDR, bridgeIP, filepath.Join(dir, "cni/ipam"))))
	rc.containerd = filepath.Join(dir, "containerd.sock")
	config := filepath.Join(dir, "config.toml")
	// restrict_oom_score_adj: this machine denies lowering oom_score_adj,
	// which every sandbox asks for otherwise. The "opt" plugin would create
	// /opt/containerd; the other snapshotters are not used.
	writeFile(t, config, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), rc.containerd, rc.containerd+".ttrpc",
		pauseImage, filepath.Join(dir, "cni/net.d"))))
	rc.spawn("containerd", "containerd", "--config", config)
	rc.ctr = "ctr"
	deadline := time.Now().Add(time.Minute)
	for {
		rc.checkAlive()
		if _, err := run(timeout(t, 10*time.Second), nil, rc.ctr, "--address", rc.containerd, "version"); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd not answering: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// importImage loads an image tarball (docker save or OCI format) into the
// namespace the kubelet's pods use.
func (rc *realCluster) importImage(t *testing.T, tarPath string) {
	t.Helper()
	if _, err := run(timeout(t, 5*time.Minute), nil, rc.ctr, "--address", rc.containerd, "-n", "k8s.io",
		"images", "import", tarPath); err != nil {
		t.Fatalf("import %s: %v", filepath.Base(tarPath), err)
	}
}

func (rc *realCluster) importSandboxImage(t *testing.T) {
	t.Helper()
	rc.importImage(t, buildPauseImage(t, rc.dir))
}

// startKubelet registers the node: cgroupfs on this cgroup v1 host
// (failCgroupV1: false; 1.35 is the last minor that allows it), every pod
// under the tollgate-e2e cgroup, its files under the run directory, and
// cluster DNS at the kube-dns Service.
func (rc *realCluster) startKubelet(t *testing.T, bin string) {
	t.Helper()
	dir := filepath.Join(rc.dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(dir, "pod-logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	createCgroupRoot(t)
	resolv := filepath.Join(dir, "resolv.conf")
	// Pods with dnsPolicy Default get this: no resolver outside the cluster.
	writeFile(t, resolv, []byte("nameserver "+dnsServiceIP+"\n"))
	config := filepath.Join(dir, "config.yaml")
	// The kubelet binds its ports itself (it cannot be handed a listener):
	// spawnBinding starts it again on fresh ports when one was taken
	// between freePort and its bind ("address already in use"), and waits
	// until both listen.
	rc.spawnBinding("kubelet", bin, 2, func(ports []int) []string {
		writeFile(t, config, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
# Reachable only on the node's bridge; kube-apiserver (logs, exec) sends
# no client certificate here.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %q
podLogsDir: %q
podCIDR: %s
maxPods: 40
failSwapOn: false
protectKernelDefaults: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
localStorageCapacityIsolation: false
registerNode: true
staticPodPath: ""
syncFrequency: 10s
fileCheckFrequency: 20s
nodeStatusUpdateFrequency: 5s
shutdownGracePeriod: 0s
`, nodeCgroupRoot, rc.containerd, bridgeIP, ports[0], ports[1], dnsServiceIP, resolv,
			filepath.Join(dir, "pod-logs"), podCIDR)))
		return []string{"--config=" + config, "--kubeconfig=" + rc.kubeconfig,
			"--root-dir=" + filepath.Join(dir, "root"), "--cert-dir=" + filepath.Join(dir, "pki"),
			"--hostname-override=" + nodeName, "--node-ip=" + bridgeIP,
			"--v=0",
		}
	}, func(ports []int) bool {
		return tcpOpen(fmt.Sprintf("%s:%d", bridgeIP, ports[0])) && tcpOpen(fmt.Sprintf("127.0.0.1:%d", ports[1]))
	}, 3*time.Minute)
}

// startKubeProxy runs kube-proxy in nftables mode (its own tables, removed
// at teardown) without touching the conntrack sysctls; NodePorts only on
// the node's bridge address.
func (rc *realCluster) startKubeProxy(t *testing.T, bin string) {
	t.Helper()
	config := filepath.Join(rc.dir, "kube-proxy.yaml")
	// Its health and metrics ports, as the kubelet's (startKubelet).
	rc.spawnBinding("kube-proxy", bin, 2, func(ports []int) []string {
		writeFile(t, config, []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
mode: nftables
clusterCIDR: %s
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: [%s/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, rc.kubeconfig, nodeName, podCIDR, ports[0], ports[1], bridgeIP)))
		return []string{"--config=" + config, "--v=0"}
	}, func(ports []int) bool {
		return tcpOpen(fmt.Sprintf("127.0.0.1:%d", ports[0])) && tcpOpen(fmt.Sprintf("127.0.0.1:%d", ports[1]))
	}, 3*time.Minute)
}

// tcpOpen reports whether something accepts TCP connections at addr.
func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// diagnose collects what a failure report needs: pods, events, the tails of
// the component logs.
func (rc *realCluster) diagnose() string {
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := rc.kubectl_(ctx, "get", "pods", "-A", "-o", "wide"); err == nil {
		b.WriteString(out)
	}
	if out, err := rc.kubectl_(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp"); err == nil {
		lines := strings.Split(out, "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		b.WriteString(strings.Join(lines, "\n"))
	}
	for _, p := range rc.procs {
		fmt.Fprintf(&b, "\n--- %s (last lines of %s)\n%s\n", p.name, p.log, tail(p.log, 15))
	}
	return b.String()
}

// createCgroupRoot makes the kubelet's cgroupRoot in every cgroup v1
// hierarchy (the kubelet refuses a root that does not exist); a new cpuset
// cgroup starts with no CPUs or memory nodes, so it inherits its parent's.
func createCgroupRoot(t *testing.T) {
	t.Helper()
	hs, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		parent := filepath.Join("/sys/fs/cgroup", h.Name())
		if _, err := os.Stat(filepath.Join(parent, "tasks")); err != nil {
			continue // not a v1 hierarchy (the unified one, or a symlink)
		}
		d := filepath.Join(parent, nodeCgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
