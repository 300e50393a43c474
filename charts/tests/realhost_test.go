package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The host side of the real-cluster test (realcluster_test.go): the one
// bridge, cgroup subtree and nft table the node uses, what the run changes on
// the machine, and how it is put back.
//
// Every change is recorded in hostStateFile before it is made, so that a run
// killed half-way is undone by the next run's sweep.
const (
	// The pod network: the node's bridge and the only range pods get.
	nodeBridge = "tgc0"
	podCIDR    = "10.244.0.0/24"
	bridgeIP   = "10.244.0.1" // the node's address: kubelet and kube-apiserver listen here
	// Service ClusterIPs: routed onto the bridge, never to the uplink.
	serviceCIDR  = "10.96.0.0/24"
	apiServiceIP = "10.96.0.1"
	dnsServiceIP = "10.96.0.10"
	// The kubelet's cgroupRoot: every pod's cgroups live under it.
	nodeCgroupRoot = "tollgate-e2e"
	// Our own nft table: drops anything pods send that would be forwarded
	// past the bridge (to the uplink).
	guardTable = "tollgate-e2e-guard"

	hostStateDir  = "/var/tmp/tollgate-cluster-e2e"
	hostStateFile = hostStateDir + "/state.json"
)

// hostSysctls are the settings the run changes or a component it starts may
// change: the CNI bridge plugin sets ip_forward; the kubelet sets the vm and
// kernel ones (kubelet's setupKernelTunables); kube-proxy may set the
// conntrack ones (left alone by its configuration, checked anyway).
var hostSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.conf.all.forwarding",
	"net.ipv4.conf.all.route_localnet",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait",
}

// sysctlRoots are the sysctl trees recorded before the run and compared and
// restored after it, every writable key (not only hostSysctls: a component
// may change one nobody listed). Per-interface keys (net.ipv4.conf.<if>,
// neigh.<if>) go with their interfaces; sysctlVolatile are left out.
var sysctlRoots = []string{"net/ipv4", "net/ipv6/conf/all", "net/ipv6/conf/default", "net/bridge", "net/netfilter", "net/core", "vm", "kernel"}

// sysctlVolatile are keys the kernel changes by itself: the last pid, the
// perf sample rate it lowers when interrupts run long, the taint flags a
// soft-lockup warning sets on an overloaded machine.
var sysctlVolatile = map[string]bool{
	"kernel.ns_last_pid":                true,
	"kernel.perf_event_max_sample_rate": true,
	"kernel.tainted":                    true,
}

// readSysctls reads every writable key of sysctlRoots and hostSysctls.
func readSysctls() map[string]string {
	m := map[string]string{}
	for _, root := range sysctlRoots {
		_ = filepath.WalkDir(filepath.Join("/proc/sys", root), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel("/proc/sys", p)
			parts := strings.Split(rel, "/")
			if d.IsDir() {
				if len(parts) >= 4 && parts[0] == "net" && (parts[2] == "conf" || parts[2] == "neigh") && parts[3] != "all" && parts[3] != "default" {
					return filepath.SkipDir
				}
				return nil
			}
			if info, err := d.Info(); err != nil || info.Mode().Perm()&0o200 == 0 {
				return nil
			}
			key := strings.Join(parts, ".")
			if sysctlVolatile[key] {
				return nil
			}
			if v, ok := readSysctl(key); ok {
				m[key] = v
			}
			return nil
		})
	}
	for _, k := range hostSysctls {
		if v, ok := readSysctl(k); ok {
			m[k] = v
		}
	}
	return m
}

// hostPaths are host directories containerd, runc or the CNI plugins create
// outside the run's own directory; removed at teardown when the run made them.
var hostPaths = []string{"/run/containerd", "/var/lib/cni", "/run/netns", "/var/run/netns", "/opt/containerd", "/etc/cni"}

// hostState is what the machine looked like before the run, and where the
// run keeps its files.
type hostState struct {
	RunDir    string            `json:"runDir"`
	Sysctls   map[string]string `json:"sysctls"`
	NftTables []string          `json:"nftTables"`
	Netns     []string          `json:"netns"`
	Paths     map[string]bool   `json:"paths"`   // path -> existed before
	Cgroups   []string          `json:"cgroups"` // containerd's k8s.io cgroups that existed before
	// The rest is what teardown compares the machine with when it is done.
	Links   []string `json:"links"`   // network interfaces
	Mounts  []string `json:"mounts"`  // mount points
	Ruleset string   `json:"ruleset"` // nft list ruleset, without counters
	Legacy  string   `json:"legacy"`  // iptables-legacy-save and ip6tables-legacy-save, without counters
}

// linkNames lists the machine's network interfaces.
func linkNames() []string {
	ifs, _ := net.Interfaces()
	var ns []string
	for _, i := range ifs {
		ns = append(ns, i.Name)
	}
	sort.Strings(ns)
	return ns
}

// mountPoints lists every mount point of the test's mount namespace.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 5 {
			ms = append(ms, unescapeMount(f[4]))
		}
	}
	sort.Strings(ms)
	return slices.Compact(ms)
}

// nftRuleset is the whole nft ruleset without counters (-s), so that two
// snapshots compare equal when no rule changed.
func nftRuleset() string {
	out, _ := exec.Command("nft", "-s", "list", "ruleset").Output()
	return string(out)
}

var iptablesNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// legacyRules is the iptables-legacy ruleset (kube components may pick the
// legacy backend when it has rules), without comments and counters.
func legacyRules() string {
	var b strings.Builder
	for _, c := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		if out, err := exec.Command(c).Output(); err == nil {
			b.WriteString(iptablesNoise.ReplaceAllString(string(out), ""))
		}
	}
	return b.String()
}

// hostLock serialises real-cluster runs on one machine (two clones' CI, or
// TestRealNode and TestRealCluster in two processes): one bridge, one state
// file. A later run waits; the sweep of a dead run's leftovers happens under
// the lock, so it never undoes a run still under way. The file is removed
// when the run ends (the machine as found): a waiter that locked a file
// since removed starts over with the new one.
const hostLock = "/var/tmp/tollgate-cluster-e2e.lock"

func lockHost(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Minute)
	for logged := false; ; {
		f, err := os.OpenFile(hostLock, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			if !logged {
				t.Logf("another real-cluster run holds %s; waiting for it (up to 30 minutes)", hostLock)
				logged = true
			}
			if time.Now().After(deadline) {
				f.Close()
				t.Fatalf("another real-cluster run held %s for 30 minutes", hostLock)
			}
			time.Sleep(time.Second)
		}
		var held, named syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(hostLock, &named) == nil && held.Ino == named.Ino && held.Dev == named.Dev {
			// Released after the teardown (cleanups run last-in first-out).
			t.Cleanup(func() {
				_ = os.Remove(hostLock)
				f.Close()
			})
			return
		}
		f.Close() // the holder removed it: lock the new one
	}
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func readSysctl(key string) (string, bool) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", false
	}
	return strings.Join(strings.Fields(string(b)), "\t"), true
}

func writeSysctl(key, v string) error {
	return os.WriteFile(sysctlPath(key), []byte(v+"\n"), 0o644)
}

// nftTables lists "family name" of every nft table.
func nftTables() []string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil
	}
	var ts []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			ts = append(ts, f[1]+" "+f[2])
		}
	}
	sort.Strings(ts)
	return ts
}

func netnsList() []string {
	var ns []string
	for _, d := range []string{"/run/netns", "/var/run/netns"} {
		es, _ := os.ReadDir(d)
		for _, e := range es {
			ns = append(ns, filepath.Join(d, e.Name()))
		}
	}
	sort.Strings(ns)
	return slices.Compact(ns)
}

// cgroupDirs lists the directories named name in every cgroup hierarchy.
func cgroupDirs(name string) []string {
	var ds []string
	hs, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hs {
		d := filepath.Join("/sys/fs/cgroup", h.Name(), name)
		if _, err := os.Stat(d); err == nil {
			ds = append(ds, d)
		}
	}
	return ds
}

// runCgroups lists the cgroups the run made: the kubelet's cgroupRoot, and
// the one containerd makes per namespace (k8s.io) unless it existed before.
func (st *hostState) runCgroups() []string {
	ds := cgroupDirs(nodeCgroupRoot)
	for _, d := range cgroupDirs("k8s.io") {
		if !slices.Contains(st.Cgroups, d) {
			ds = append(ds, d)
		}
	}
	return ds
}

// requireRealHost skips (or, under CLUSTER_E2E_STRICT or CI, fails) unless
// this is a Linux machine where a node can run: root and the apt packages.
func requireRealHost(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the node mounts, creates a bridge and cgroups)")
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nft", "iptables", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "/usr/lib/cni/bridge (apt-get install containernetworking-plugins)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing = append(missing, "redis-server (packaged into the Redis image)")
	}
	if len(missing) > 0 {
		msg := "the real-cluster test needs: " + strings.Join(missing, ", ")
		if os.Getenv("CLUSTER_E2E_STRICT") != "" || os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
}

// prepareHost undoes what an earlier run left behind, records the machine as
// it is, and registers the teardown that puts it back.
func prepareHost(t *testing.T) *hostState {
	t.Helper()
	lockHost(t)
	if err := sweepHost(t.Logf); err != nil {
		t.Fatalf("sweep of an earlier run: %v", err)
	}
	// A second run starts clean: nothing of an earlier one is left.
	if left := leftovers(); len(left) > 0 {
		t.Fatalf("an earlier real-cluster run left (remove by hand, then rerun): %s", strings.Join(left, "; "))
	}
	dir, err := os.MkdirTemp("", "tollgate-rc-")
	if err != nil {
		t.Fatal(err)
	}
	st := &hostState{RunDir: dir, Sysctls: readSysctls(), Paths: map[string]bool{}}
	st.NftTables = nftTables()
	st.Netns = netnsList()
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		st.Paths[p] = err == nil
	}
	st.Cgroups = cgroupDirs("k8s.io")
	st.Links = linkNames()
	st.Mounts = mountPoints()
	st.Ruleset = nftRuleset()
	st.Legacy = legacyRules()
	if err := os.MkdirAll(hostStateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(hostStateFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restoreHost(st, t.Logf, !t.Failed()); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return st
}

// sweepHost restores the machine from the state file an interrupted run left.
func sweepHost(logf func(string, ...any)) error {
	b, err := os.ReadFile(hostStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st hostState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", hostStateFile, err)
	}
	logf("an earlier run did not finish (%s): undoing what it left", st.RunDir)
	return restoreHost(&st, logf, true)
}

// restoreHost kills what the run started, then removes its mounts, network,
// nft tables, cgroups and files, and writes back the recorded sysctls. It
// keeps going past errors and reports them all; the state file is removed
// only when everything was undone.
func restoreHost(st *hostState, logf func(string, ...any), removeDir bool) error {
	var errs []error
	// 1. Processes: everything whose command line names the run directory
	// (the components, containerd's shims) and everything in the node's
	// cgroups (the containers).
	for round := 0; round < 50; round++ {
		pids := runPids(st)
		if len(pids) == 0 {
			break
		}
		sig := syscall.SIGTERM
		if round > 10 {
			sig = syscall.SIGKILL
		}
		for _, p := range pids {
			_ = syscall.Kill(p, sig)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pids := runPids(st); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes still alive: %v", pids))
	}
	// 2. Mounts under the run directory, the pods' network namespaces, and
	// new mounts in host directories the run created (iproute2 and some
	// runtimes make /run/netns a shared bind mount of itself).
	var newNetns []string
	for _, n := range netnsList() {
		if !slices.Contains(st.Netns, n) {
			newNetns = append(newNetns, n)
		}
	}
	newNetns = append(newNetns, st.newHostMounts()...)
	for round := 0; round < 5; round++ {
		ms := mountsUnder(st.RunDir, newNetns)
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if err := syscall.Unmount(m, 0); err != nil {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
	}
	if ms := mountsUnder(st.RunDir, newNetns); len(ms) > 0 {
		errs = append(errs, fmt.Errorf("mounts left: %v", ms))
	}
	for _, n := range newNetns {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// 3. Network: the bridge (its veths went with the pods' namespaces), the
	// service route, nft tables the run created (kube-proxy's, the kubelet's
	// through iptables-nft, the guard).
	// The pods' veths go with their namespaces, but the kernel destroys a
	// namespace asynchronously, and not while something still holds it:
	// delete the host ends (on the bridge, or new since the run began)
	// instead of waiting.
	for _, l := range runVeths(st) {
		if out, err := exec.Command("ip", "link", "del", l).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			errs = append(errs, fmt.Errorf("ip link del %s: %v %s", l, err, out))
		}
	}
	if _, err := net.InterfaceByName(nodeBridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", nodeBridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v %s", nodeBridge, err, out))
		}
	}
	_ = exec.Command("ip", "route", "del", serviceCIDR).Run()
	for _, tb := range nftTables() {
		if slices.Contains(st.NftTables, tb) {
			continue
		}
		f := strings.Fields(tb)
		if out, err := exec.Command("nft", "delete", "table", f[0], f[1]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s: %v %s", tb, err, out))
		}
	}
	// 4. Cgroups, deepest first.
	for _, root := range st.runCgroups() {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	// 5. Sysctls, in passes: writing one may change others (ip_forward
	// sets every interface's forwarding).
	var sysctlErrs []error
	for pass := 0; pass < 3; pass++ {
		sysctlErrs = nil
		changed := false
		for k, v := range st.Sysctls {
			if cur, ok := readSysctl(k); ok && cur != v {
				changed = true
				logf("restoring %s = %s (was %s during the run)", k, v, cur)
				if err := writeSysctl(k, v); err != nil {
					sysctlErrs = append(sysctlErrs, fmt.Errorf("sysctl %s: %w", k, err))
				}
			}
		}
		if !changed {
			break
		}
	}
	errs = append(errs, sysctlErrs...)
	// 6. Files: host directories the run created, and its own directory
	// unless a failure keeps it for its logs (mounts are gone by now).
	for p, existed := range st.Paths {
		if !existed {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if removeDir && len(mountsUnder(st.RunDir, nil)) == 0 {
		if err := os.RemoveAll(st.RunDir); err != nil {
			errs = append(errs, err)
		}
	} else {
		logf("real-cluster files kept in %s", st.RunDir)
	}
	// 7. The machine as it was found: compared, not assumed.
	if diff := st.differences(); len(diff) > 0 {
		errs = append(errs, fmt.Errorf("the machine differs from before the run: %s", strings.Join(diff, "; ")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(hostStateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(hostStateDir) // only when empty
	return nil
}

// newHostMounts lists mount points that appeared since the snapshot at or
// under a host directory that did not exist before the run.
func (st *hostState) newHostMounts() []string {
	if st.Mounts == nil { // a state file from before this field
		return nil
	}
	var ms []string
	for _, m := range mountPoints() {
		if slices.Contains(st.Mounts, m) {
			continue
		}
		for p, existed := range st.Paths {
			if !existed && (m == p || strings.HasPrefix(m, p+"/")) {
				ms = append(ms, m)
				break
			}
		}
	}
	return ms
}

// runVeths lists the veth interfaces of the run: those on the node's
// bridge, and those created since the run began (a veth left after the
// bridge was deleted). A run from before this snapshot was kept (Links
// empty) only has the former.
func runVeths(st *hostState) []string {
	var vs []string
	out, _ := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		onBridge := slices.Contains(f, "master") && f[slices.Index(f, "master")+1] == nodeBridge
		isNew := len(st.Links) > 0 && !slices.Contains(st.Links, name)
		if onBridge || isNew {
			vs = append(vs, name)
		}
	}
	return vs
}

// differences compares the machine with the snapshot taken before the run:
// sysctls, interfaces, mount points, network namespaces, the nft ruleset
// (kube-proxy's, the kubelet's iptables-nft chains, the guard), the
// iptables-legacy rules, cgroups, processes and host directories. A
// namespace's destruction is asynchronous, so it is given a few seconds.
func (st *hostState) differences() []string {
	var diff []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		diff = st.differencesNow()
		if len(diff) == 0 || time.Now().After(deadline) {
			return diff
		}
	}
}

func (st *hostState) differencesNow() []string {
	var diff []string
	for k, v := range st.Sysctls {
		if cur, ok := readSysctl(k); !ok || cur != v {
			diff = append(diff, fmt.Sprintf("sysctl %s = %q, was %q", k, cur, v))
		}
	}
	setDiff := func(what string, before, now []string) {
		if before == nil { // a state file from before this field
			return
		}
		var added, gone []string
		for _, n := range now {
			if !slices.Contains(before, n) {
				added = append(added, n)
			}
		}
		for _, b := range before {
			if !slices.Contains(now, b) {
				gone = append(gone, b)
			}
		}
		if len(added) > 0 {
			diff = append(diff, fmt.Sprintf("%s added: %v", what, added))
		}
		if len(gone) > 0 {
			diff = append(diff, fmt.Sprintf("%s gone: %v", what, gone))
		}
	}
	setDiff("network interfaces", st.Links, linkNames())
	setDiff("mounts", st.Mounts, mountPoints())
	setDiff("network namespaces", st.Netns, netnsList())
	setDiff("nft tables", st.NftTables, nftTables())
	if st.Links != nil && nftRuleset() != st.Ruleset {
		diff = append(diff, "nft ruleset changed:\n"+linesOnlyIn(st.Ruleset, nftRuleset()))
	}
	if st.Links != nil && legacyRules() != st.Legacy {
		diff = append(diff, "iptables-legacy rules changed:\n"+linesOnlyIn(st.Legacy, legacyRules()))
	}
	if ds := st.runCgroups(); len(ds) > 0 {
		diff = append(diff, fmt.Sprintf("cgroups left: %v", ds))
	}
	if pids := runPids(st); len(pids) > 0 {
		diff = append(diff, fmt.Sprintf("processes left: %v", pids))
	}
	for p, existed := range st.Paths {
		if _, err := os.Lstat(p); (err == nil) != existed {
			diff = append(diff, fmt.Sprintf("%s: existed before %v, now %v", p, existed, err == nil))
		}
	}
	return diff
}

// linesOnlyIn lists the lines only in a (-) and only in b (+).
func linesOnlyIn(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// leftovers names what an earlier run may have left that no state file
// records (a teardown that failed half-way and was then cleaned by hand,
// say): the bridge, veths on it, the cgroups, the guard and kube-proxy
// tables, CNI network namespaces, mounts of a run directory.
func leftovers() []string {
	var left []string
	if _, err := net.InterfaceByName(nodeBridge); err == nil {
		left = append(left, "bridge "+nodeBridge)
	}
	if vs := runVeths(&hostState{}); len(vs) > 0 {
		left = append(left, fmt.Sprintf("veths on %s: %v", nodeBridge, vs))
	}
	if ds := cgroupDirs(nodeCgroupRoot); len(ds) > 0 {
		left = append(left, fmt.Sprintf("cgroups %v", ds))
	}
	for _, tb := range nftTables() {
		if strings.HasSuffix(tb, " "+guardTable) || strings.HasSuffix(tb, " kube-proxy") {
			left = append(left, "nft table "+tb)
		}
	}
	for _, n := range netnsList() {
		if strings.HasPrefix(filepath.Base(n), "cni-") {
			left = append(left, "network namespace "+n)
		}
	}
	for _, m := range mountPoints() {
		if strings.Contains(m, "/tollgate-rc-") {
			left = append(left, "mount "+m)
		}
	}
	return left
}

// runPids lists processes that belong to the run: their command line names
// its directory, or they sit in the node's cgroups.
func runPids(st *hostState) []int {
	runDir := st.RunDir
	self := os.Getpid()
	seen := map[int]bool{}
	ps, _ := os.ReadDir("/proc")
	for _, p := range ps {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), runDir+"/") {
			seen[pid] = true
		}
	}
	for _, root := range st.runCgroups() {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != self {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	var pids []int
	for p := range seen {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids
}

// mountsUnder lists mount points at or below dir, and those of extra, deepest
// first, from /proc/self/mountinfo.
func mountsUnder(dir string, extra []string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") || slices.Contains(extra, mp) {
			ms = append(ms, mp)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return slices.Compact(ms)
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// setupNodeNetwork creates the node's bridge with its address, routes the
// service range onto it, and installs the guard: a forward hook that drops
// every packet arriving from the bridge that would leave by another device.
func setupNodeNetwork(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", bridgeIP + "/24", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
		{"route", "add", serviceCIDR, "dev", nodeBridge, "src", bridgeIP},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	guard := fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority -300; policy accept;
		iifname %[2]q oifname != %[2]q counter drop comment "pods reach nothing past the node"
		oifname %[2]q iifname != %[2]q counter drop comment "nothing from elsewhere reaches the pods"
	}
}
`, guardTable, nodeBridge)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(guard)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft guard: %v %s", err, out)
	}
}

// assertIsolated checks that the pod and service ranges route to the bridge
// only, never to the machine's uplink.
func assertIsolated(t *testing.T) {
	t.Helper()
	for _, ip := range []string{"10.244.0.7", "10.244.0.254", apiServiceIP, dnsServiceIP, "10.96.0.200"} {
		out, err := exec.Command("ip", "-o", "route", "get", ip).CombinedOutput()
		if err != nil {
			t.Fatalf("ip route get %s: %v %s", ip, err, out)
		}
		if f := strings.Fields(string(out)); !slices.Contains(f, "dev") || f[slices.Index(f, "dev")+1] != nodeBridge {
			t.Fatalf("%s would leave by %q, not the node's bridge %s", ip, strings.TrimSpace(string(out)), nodeBridge)
		}
	}
}

// guardDrops reads the guard's counter of packets from pods it dropped.
func guardDrops(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("nft", "list", "chain", "inet", guardTable, "forward").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain: %v %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "pods reach nothing") {
			f := strings.Fields(l)
			if i := slices.Index(f, "packets"); i >= 0 {
				n, _ := strconv.Atoi(f[i+1])
				return n
			}
		}
	}
	t.Fatalf("guard counter not found:\n%s", out)
	return 0
}
