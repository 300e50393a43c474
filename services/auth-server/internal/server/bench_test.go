package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// authServerProcessEnv makes the test binary run the auth-server instead of
// tests: BenchmarkTokenEndpoint starts the auth-server as a process of its
// own (this binary, re-executed) so that its CPU time is measured alone,
// without the benchmark's HTTP clients, the dev IdP or the login flows that
// mint codes, which share the test process.
const authServerProcessEnv = "TOLLGATE_BENCH_AUTH_SERVER_PROCESS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(signingPeerEnv); spec != "" {
		fmt.Fprintln(os.Stderr, "signing peer:", runSigningPeer(spec))
		os.Exit(1)
	}
	if spec := os.Getenv(storePeerEnv); spec != "" {
		fmt.Fprintln(os.Stderr, "store peer:", runStorePeer(spec))
		os.Exit(1)
	}
	if os.Getenv(authServerProcessEnv) == "1" {
		if os.Getenv(cpuProfileEnv) != "" && os.Getenv(allocProfileEnv) != "" {
			runtime.MemProfileRate = 4096
		}
		if dir := os.Getenv(windowDirEnv); dir != "" {
			anchorGCTrace()
			go windowOnSignal(dir)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := server.Run(ctx, os.Getenv, os.Stderr, nil)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "auth-server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cpuProfileEnv names a directory: when set, BenchmarkTokenEndpoint writes
// one CPU profile of the auth-server process per load case there,
// <case>.pprof, covering exactly the timed window (`go tool pprof -top`).
const cpuProfileEnv = "TOLLGATE_BENCH_CPUPROFILE"

// allocProfileEnv, set with cpuProfileEnv, also writes the auth-server's
// allocation profile at the start (<case>.pprof.allocs0) and the end
// (<case>.pprof.allocs) of each case's window, sampling every 4 KiB
// allocated: `go tool pprof -sample_index=alloc_space -base <start> <end>`
// is what the window allocated. The finer sampling, and the collection
// forced before each profile (writeAllocs), cost CPU: take no CPU figures
// from such a run.
const allocProfileEnv = "TOLLGATE_BENCH_ALLOCPROFILE"

// writeAllocs writes the allocation profile to path after a forced
// collection: the runtime publishes the allocations in its profile only
// as of the last completed collection (runtime.MemProfile), and at the
// auth-server's GC_PERCENT 800 a refresh case's window holds none — its
// two profiles were the same, the window's allocations in neither
// (session 49 "refresh49"). runtime.GC returns once the cycle's sweep is
// done and its allocations are published, as `go test -memprofile` does.
func writeAllocs(path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "alloc profile:", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "alloc profile:", err)
	}
}

// signalNotify: SIGUSR1 starts a window in the auth-server process,
// SIGUSR2 ends it (windowOnSignal).
func signalNotify(c chan os.Signal) { signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2) }

func isStart(s os.Signal) bool { return s == syscall.SIGUSR1 }

// startCPUProfile starts the auth-server process's CPU profile into
// <dir>/<name> (and its allocation profile at the start, with
// allocProfileEnv); nil when it could not.
func startCPUProfile(dir, name string) *os.File {
	out, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return nil
	}
	if os.Getenv(allocProfileEnv) != "" {
		writeAllocs(filepath.Join(dir, name+".allocs0"))
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		out.Close()
		return nil
	}
	return out
}

func stopCPUProfile(out *os.File) {
	pprof.StopCPUProfile()
	if os.Getenv(allocProfileEnv) != "" {
		writeAllocs(out.Name() + ".allocs")
	}
	out.Close()
}

// callgrindEnv names a directory: when set, BenchmarkTokenEndpoint runs
// the auth-server under valgrind's callgrind (instrumentation off until a
// case's timed window) and writes one callgrind profile per load case,
// covering exactly the timed window: instruction counts of the
// auth-server's own code, which — unlike CPU time — other load on the
// machine does not change (`callgrind_annotate <file>`; the case's
// instructions per grant are also reported as Ir/grant). Under valgrind the
// auth-server runs ~50× slower and serially: grants/s, latency and CPU
// times of such a run mean nothing; use few grants (TOLLGATE_BENCH_GRANTS).
const callgrindEnv = "TOLLGATE_BENCH_CALLGRIND"

// serverEnvEnv holds variables (space-separated NAME=value) set in the
// auth-server's process only — its runtime settings (GOGC, GOMEMLIMIT) for
// an A/B of them without changing the benchmark's clients, which share the
// test process.
const serverEnvEnv = "TOLLGATE_BENCH_SERVER_ENV"

// callgrindWindow brackets a timed window with callgrind's instrumentation
// when callgrindEnv is set; the returned func ends it and returns the
// instructions executed in the window (0 without callgrind).
func callgrindWindow(b *testing.B, pid int) func() int64 {
	dir := os.Getenv(callgrindEnv)
	if dir == "" {
		return func() int64 { return 0 }
	}
	name := strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())
	callgrindControl(b, pid, "--zero")
	callgrindControl(b, pid, "--instr=on")
	return func() int64 {
		callgrindControl(b, pid, "--instr=off")
		callgrindControl(b, pid, "--dump="+name)
		// callgrind names the dump <out>.<n> (n counting dumps); the one
		// naming this case holds its totals ("totals: <Ir>").
		files, _ := filepath.Glob(filepath.Join(dir, "callgrind.out.*"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil || !bytes.Contains(raw, []byte("\ncmd: ")) || !bytes.Contains(raw, []byte(name+"\n")) {
				continue
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if v, ok := strings.CutPrefix(line, "totals: "); ok {
					n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
					b.Logf("auth-server callgrind profile of this case: %s", f)
					return n
				}
			}
		}
		b.Errorf("no callgrind dump for %s in %s", name, dir)
		return 0
	}
}

func callgrindControl(b *testing.B, pid int, arg string) {
	if out, err := exec.Command("callgrind_control", arg, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("callgrind_control %s: %v\n%s", arg, err, out)
	}
}

// window brackets a timed window of the auth-server process p: it starts
// the process's window (runtime counters; the CPU profile when
// cpuProfileEnv is set) and returns once the process has; the returned func
// ends it and returns the runtime counters' difference.
func window(b *testing.B, p benchProcess) func() runtimeSample {
	name := strings.NewReplacer("/", "_", "=", "-").Replace(b.Name()) + ".pprof"
	if err := os.WriteFile(filepath.Join(p.dir, ".next"), []byte(name), 0o644); err != nil {
		b.Fatal(err)
	}
	_ = syscall.Kill(p.pid, syscall.SIGUSR1)
	waitFile(b, filepath.Join(p.dir, name+".started"))
	return func() runtimeSample {
		path := filepath.Join(p.dir, name+".runtime")
		if os.Getenv(callgrindEnv) == "" {
			_ = syscall.Kill(p.pid, syscall.SIGUSR2)
			waitFile(b, path)
		} else {
			endUnderCallgrind(b, p.pid, path)
		}
		if dir := os.Getenv(cpuProfileEnv); dir != "" {
			b.Logf("auth-server CPU profile of this case: %s", filepath.Join(dir, name))
		}
		raw, err := os.ReadFile(path)
		var rt runtimeSample
		if err == nil {
			err = json.Unmarshal(raw, &rt)
		}
		if err != nil {
			b.Fatalf("auth-server runtime counters: %v", err)
		}
		_ = os.Remove(path)
		_ = os.Remove(filepath.Join(p.dir, name+".started"))
		return rt
	}
}

// BenchmarkTokenAuthorizationCode measures the token endpoint redeeming a
// code (client_secret_basic, PKCE, ID token, Redis writes). The browser
// login that produces each code is outside the timer.
func BenchmarkTokenAuthorizationCode(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		a := newAuthRequest(c)
		code := f.authorize(a)
		b.StartTimer()
		if tr := f.exchange(c, a, code); tr.Status != http.StatusOK {
			b.Fatalf("token: %d %s", tr.Status, tr.Error)
		}
	}
}

// BenchmarkTokenRefresh measures a refresh grant with rotation.
func BenchmarkTokenRefresh(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		tr := f.refresh(c, rt)
		if tr.Status != http.StatusOK {
			b.Fatalf("refresh: %d %s", tr.Status, tr.Error)
		}
		rt = tr.RefreshToken
	}
}

// BenchmarkTokenEndpoint is the token endpoint under load, as in `make dev`:
// the auth-server in a process of its own with a real redis-server, the
// dev-init clients with their real secret hashes, real HTTP with keep-alive,
// 8 and 32 concurrent clients (each its own connection), for
// authorization_code and refresh_token grants, with RS256 and with ES256
// access tokens. In the same run it measures what one signature costs on one
// core. It reports, per case:
//
//	grants/s             completed grants per second of wall time
//	p50-ms, p99-ms       latency of one token request
//	cpu-µs/grant         the auth-server process's CPU time (/proc/<pid>/schedstat)
//	                     over the timed window, per grant
//	signatures/grant     JWS in each response (access token, ID token)
//	signing-share        the CPU the auth-server counted for those signatures
//	                     (tollgate_auth_signing_cpu_seconds_total) ÷ its CPU
//	signing-share-meter  the same with one signature's CPU measured on one
//	                     core right before and right after the case (their mean)
//	cpu-µs/grant-outside-sig  the auth-server's CPU per grant minus what it
//	                     counted for the signatures
//	ctxsw/grant, syscr/grant, syscw/grant  the auth-server's context switches
//	                     and read- and write-family system calls per grant
//	user-µs/grant, sys-µs/grant  its CPU time in user and in kernel mode
//	                     (/proc/<pid>/stat's utime and stime: tick-sampled,
//	                     10 ms units) per grant
//	minflt/grant         its minor page faults per grant (/proc/<pid>/stat)
//	alloc-KiB/grant, gc/1000grants  its heap allocation and GC cycles
//	heap-goal-MiB, rss-peak-MiB  its collector's heap goal at the window's
//	                     end and its peak resident memory (VmHWM) so far
//
// and, from the signing peer run right after the case with the same clients
// and request count (bench_peer_test.go: a bare net/http server that only
// makes the same signatures):
//
//	peer-grants/s, peer-p50-ms, peer-p99-ms, peer-cpu-µs/grant  the peer's
//	grants/s-vs-peer, p99-vs-peer  the auth-server's ÷ the peer's
//	peer-signing-share   the peer's signatures' CPU (counted as the
//	                     auth-server's meter counts them) ÷ its CPU
//	signing-share-vs-peer  signing-share ÷ peer-signing-share
//	peer-ctxsw/grant, peer-syscr/grant, peer-syscw/grant, peer-user-µs/grant,
//	peer-sys-µs/grant, peer-alloc-KiB/grant, peer-gc/1000grants  the peer's,
//	                     as the auth-server's (above)
//
// and, only with TOLLGATE_BENCH_STORE_PEER=1, from the store peer run after
// the signing peer (bench_peer_test.go: the signing peer plus client
// authentication, the grant's Redis round trips and an audit line, lean):
//
//	storepeer-grants/s, storepeer-p50-ms, storepeer-p99-ms,
//	storepeer-cpu-µs/grant, storepeer-cpu-µs/grant-outside-sig  the store peer's
//	storepeer-redis-cpu-µs/grant  redis-server's CPU per store-peer grant
//	storepeer-signing-share  counted as peer-signing-share is
//	storepeer-ctxsw/grant, storepeer-syscr/grant, storepeer-syscw/grant,
//	storepeer-user-µs/grant, storepeer-sys-µs/grant,
//	storepeer-alloc-KiB/grant, storepeer-gc/1000grants  as the auth-server's
//	signing-share-vs-storepeer  signing-share ÷ storepeer-signing-share
//
// and where the latency's tail comes from (bench_tail_test.go; the
// detail — latency histogram, the slowest 1 % against all requests, Redis
// commands by name — is logged, printed in full with -v):
//
//	p90-ms, p999-ms, max-ms   more of the client's latency distribution
//	p50-handler-ms, p99-handler-ms  the auth-server's own duration of the
//	                     requests (its access-log line, matched by request id)
//	gc-overlap-all, gc-overlap-slow  the share of all requests, and of the
//	                     slowest 1 %, whose handler overlapped a GC cycle
//	                     (gctrace in the auth-server's log)
//	go-runq-µs/grant, go-runq-p99-ms  goroutines waiting for a P
//	                     (/sched/latencies:seconds), per grant and p99
//	os-runq-µs/grant     the auth-server's threads waiting for a CPU
//	                     (schedstat's run-queue time)
//	mutex-wait-µs/grant  goroutines blocked on a mutex (/sync/mutex/wait/total)
//	gc-cpu-µs/grant      the collector's CPU (/cpu/classes/gc: mark assists,
//	                     mark workers, pauses × GOMAXPROCS) per grant
//	redis-wait-µs/grant  the auth-server waiting for Redis replies
//	                     (tollgate_redis_command_duration_seconds)
//	client-cpu-µs/grant, redis-cpu-µs/grant  the CPU of this benchmark's
//	                     own process (the clients) and of redis-server
//
// and for signatures/RS256 and signatures/ES256: sig/s on one core and
// cpu-µs/sig (thread CPU time of one locked goroutine signing an access
// token's claims), measured once at the start. CPU times, not wall times,
// so other load on the machine changes grants/s and latency far more than
// the ratios; measuring the signature next to each case keeps the two CPU
// times of a ratio under the same load.
//
// TOLLGATE_BENCH_GRANTS sets the grants per case (default 400);
// TOLLGATE_BENCH_LOG_LEVEL the auth-server's LOG_LEVEL (default info).
func BenchmarkTokenEndpoint(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("process CPU time is read from /proc")
	}
	grants := 400
	if n, err := strconv.Atoi(os.Getenv("TOLLGATE_BENCH_GRANTS")); err == nil && n > 0 {
		grants = n
	}
	meter := newSignatureMeter(b)
	sigCost := map[string]time.Duration{}
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		sigCost[string(alg)] = meter.cpu(b, alg)
		b.Run("signatures/"+string(alg), func(b *testing.B) {
			d := sigCost[string(alg)] // measured above, in CPU time
			b.ReportMetric(float64(d.Nanoseconds()), "ns/op")
			b.ReportMetric(float64(d.Nanoseconds())/1e3, "cpu-µs/sig")
			b.ReportMetric(1e9/float64(d.Nanoseconds()), "sig/s")
		})
	}
	for _, alg := range []string{"RS256", "ES256"} {
		// One fleet per algorithm, owned by the parent benchmark so that it
		// outlives each case.
		f, proc := startFleetProcess(b, map[string]string{
			// Logging as `make dev` and the chart run it (the services'
			// defaults): JSON lines at info, so every request's access-log
			// line is written and counted, as the audit line is.
			"ACCESS_TOKEN_SIGNING_ALG": alg, "LOG_LEVEL": benchLogLevel(), "LOG_FORMAT": "json",
			"RATE_LIMIT_TOKEN_PER_MINUTE": "10000000", "RATE_LIMIT_AUTHORIZE_PER_MINUTE": "10000000",
			"RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "10000000", // the limits are evaluated (their cost counts), never reached
			// The signing queue's admission is timed, and what it refuses is
			// the machine's load, not the grant's cost: on a busy machine
			// (make bench at load 20–30, signatures at twice their quiet
			// cost) 32 clients' code grants waited past the default 2 s and
			// were answered 503, failing the run. The benchmark measures
			// grants, so it waits.
			"SIGNING_QUEUE_WAIT": "1m",
		})
		for _, grant := range []string{"authorization_code", "refresh_token"} {
			for _, clients := range []int{8, 32} {
				b.Run(fmt.Sprintf("alg=%s/grant=%s/clients=%d", alg, grant, clients), func(b *testing.B) {
					// The signature's CPU is measured again right before and
					// after the case (their mean), so that the share compares
					// CPU times taken under the same load on the machine.
					before := map[string]time.Duration{}
					for _, a := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
						before[string(a)] = meter.cpu(b, a)
					}
					r := loadTokenEndpoint(b, f, proc, grant, clients, grants)
					// sigCPU: the CPU of the case's signatures at the meter's
					// cost, per grant (the same for the peer, which makes
					// the same signatures).
					sigCPU := 0.0
					for k, n := range r.signatures {
						sigCPU += float64(n) * float64(before[k]+meter.cpu(b, jose.SignatureAlgorithm(k))) / 2
					}
					sigCPU /= float64(r.grants)
					b.ReportMetric(sigCPU*float64(r.grants)/float64(r.cpu), "signing-share-meter")
					// The signatures' CPU as the auth-server counted it
					// while serving this case.
					b.ReportMetric(float64(r.signingCPU)/float64(r.cpu), "signing-share")
					b.ReportMetric(float64(r.signingCPU.Nanoseconds())/1e3/float64(r.sigTotal()), "cpu-µs/sig-in-server")
					b.ReportMetric(float64(r.wall.Nanoseconds())/float64(r.grants), "ns/op")
					b.ReportMetric(float64(r.grants)/r.wall.Seconds(), "grants/s")
					b.ReportMetric(ms(r.p50), "p50-ms")
					b.ReportMetric(ms(r.p99), "p99-ms")
					b.ReportMetric(float64(r.cpu.Nanoseconds())/1e3/float64(r.grants), "cpu-µs/grant")
					b.ReportMetric(float64(r.sigTotal())/float64(r.grants), "signatures/grant")
					b.ReportMetric(float64((r.cpu-r.signingCPU).Nanoseconds())/1e3/float64(r.grants), "cpu-µs/grant-outside-sig")
					r.os.report(b, r.grants)
					r.tail.report(b, r.grants, r.wall, clients)
					if r.instructions > 0 {
						b.ReportMetric(float64(r.instructions)/float64(r.grants), "Ir/grant")
						return // the peer is not run under callgrind
					}
					// The same load on the signing peer (bench_peer_test.go):
					// HTTP and the same signatures, nothing else.
					sigs := int(float64(r.sigTotal())/float64(r.grants) + 0.5)
					pr := loadSigningPeer(b, alg, sigs, clients, grants)
					peerRate := float64(pr.grants) / pr.wall.Seconds()
					b.ReportMetric(peerRate, "peer-grants/s")
					b.ReportMetric(ms(pr.p50), "peer-p50-ms")
					b.ReportMetric(ms(pr.p99), "peer-p99-ms")
					b.ReportMetric(float64(pr.cpu.Nanoseconds())/1e3/float64(pr.grants), "peer-cpu-µs/grant")
					// The share a server that only signs reaches here, and
					// the auth-server's CPU per grant against its own.
					peerCPU := float64(pr.cpu) / float64(pr.grants)
					b.ReportMetric(sigCPU/peerCPU, "peer-signing-share-meter")
					// The peer's signing share counted as the auth-server
					// counts its own: the ceiling signing-share is read
					// against, measured in the same run.
					b.ReportMetric(float64(pr.signingCPU)/float64(pr.cpu), "peer-signing-share")
					b.ReportMetric(float64(r.signingCPU)/float64(r.cpu)/(float64(pr.signingCPU)/float64(pr.cpu)), "signing-share-vs-peer")
					b.ReportMetric(float64(r.cpu)/float64(r.grants)/peerCPU, "cpu/grant-vs-peer")
					b.ReportMetric(float64(r.grants)/r.wall.Seconds()/peerRate, "grants/s-vs-peer")
					b.ReportMetric(float64(r.p99)/float64(pr.p99), "p99-vs-peer")
					pr.os.reportAs(b, "peer-", pr.grants)
					if os.Getenv(storePeerOptIn) != "1" {
						return
					}
					// The same load on the store peer (bench_peer_test.go):
					// the signing peer plus the Redis round trips, client
					// authentication and audit line no Redis-backed token
					// endpoint can leave out.
					sp := loadStorePeer(b, f, alg, sigs, grant, clients, grants)
					spShare := float64(sp.signingCPU) / float64(sp.cpu)
					b.ReportMetric(float64(sp.grants)/sp.wall.Seconds(), "storepeer-grants/s")
					b.ReportMetric(ms(sp.p50), "storepeer-p50-ms")
					b.ReportMetric(ms(sp.p99), "storepeer-p99-ms")
					b.ReportMetric(float64(sp.cpu.Nanoseconds())/1e3/float64(sp.grants), "storepeer-cpu-µs/grant")
					b.ReportMetric(float64((sp.cpu-sp.signingCPU).Nanoseconds())/1e3/float64(sp.grants), "storepeer-cpu-µs/grant-outside-sig")
					b.ReportMetric(float64(sp.redisCPU.Nanoseconds())/1e3/float64(sp.grants), "storepeer-redis-cpu-µs/grant")
					b.ReportMetric(spShare, "storepeer-signing-share")
					b.ReportMetric(float64(r.signingCPU)/float64(r.cpu)/spShare, "signing-share-vs-storepeer")
					sp.os.reportAs(b, "storepeer-", sp.grants)
				})
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// benchLogLevel is the auth-server's LOG_LEVEL in BenchmarkTokenEndpoint:
// info, the default `make dev` and the chart run with, unless
// TOLLGATE_BENCH_LOG_LEVEL says otherwise (warn leaves out the access-log
// line of every request, as this benchmark did until 2026-11-30).
func benchLogLevel() string {
	if l := os.Getenv("TOLLGATE_BENCH_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// loadResult is one measured case.
type loadResult struct {
	grants     int
	wall, cpu  time.Duration
	p50, p99   time.Duration
	signatures map[string]int // JWS by algorithm, over all grants
	// instructions the auth-server executed in the window (callgrindEnv; 0
	// without)
	instructions int64
	// signingCPU is the CPU time the auth-server counted for its own
	// signatures in the window (tollgate_auth_signing_cpu_seconds_total)
	signingCPU time.Duration
	// os is what the auth-server process cost the kernel and its runtime
	// in the window: context switches, read and write system calls,
	// allocation and GC cycles
	os processCounters
	// tail is what the requests waited for (bench_tail_test.go)
	tail tailReport
}

// processCounters are counters of the auth-server process read before and
// after a window; their difference says where CPU outside Go code goes.
type processCounters struct {
	ctxSwitches  int64 // voluntary + involuntary, all threads (/proc/<pid>/task/*/status)
	syscr, syscw int64 // read- and write-family system calls (/proc/<pid>/io)
	// utime, stime: the process's CPU time in user and in kernel mode, all
	// threads (/proc/<pid>/stat, fields 14 and 15). The kernel samples the
	// mode at each scheduler tick (CONFIG_TICK_CPU_ACCOUNTING, 250 Hz here)
	// and scales the two to the exact total; they are read in 10 ms units
	// (USER_HZ). The kernel side includes the softirq work done in the
	// process's context: on loopback, a socket write(2) delivers the bytes
	// into the receiving socket before it returns.
	utime, stime time.Duration
	// minflt: its minor page faults (/proc/<pid>/stat, field 10): pages
	// the kernel mapped in on first touch, as the heap grows into memory
	// the process has not used before.
	minflt         int64
	allocBytes, gc float64 // go_memstats_alloc_bytes_total, go_gc_duration_seconds_count (admin /metrics)
	// Levels at the window's end, not differences (0 where not read, as
	// for the peers): the collector's heap goal (go_memstats_next_gc_bytes)
	// and the process's peak resident memory so far (VmHWM,
	// /proc/<pid>/status), bytes — what the GC policy costs in memory.
	heapGoal, rssPeak float64
}

func readProcessCounters(b *testing.B, pid int, metrics map[string]float64) processCounters {
	var c processCounters
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that exited: Go keeps its threads, so none in a window
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				c.ctxSwitches += n
			}
		}
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				c.rssPeak = kb * 1024
			}
		}
	}
	c.utime, c.stime, c.minflt = userSystemCPU(b, pid)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatalf("auth-server io counters: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			c.syscr = n
		case "syscw":
			c.syscw = n
		}
	}
	c.allocBytes, c.gc = metrics["go_memstats_alloc_bytes_total"], metrics["go_gc_duration_seconds_count"]
	c.heapGoal = metrics["go_memstats_next_gc_bytes"]
	return c
}

// userSystemCPU is process pid's CPU time so far in user and in kernel
// mode (/proc/<pid>/stat's utime and stime, clock ticks of 10 ms: Linux's
// USER_HZ is 100 on every architecture Go supports) and its minor page
// faults (minflt).
func userSystemCPU(b *testing.B, pid int) (user, system time.Duration, minflt int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("CPU time of %d: %v", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields counted from the state (field 3) follow the last ')'.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(f) < 13 {
		b.Fatalf("CPU time of %d: /proc/%d/stat: %q", pid, pid, raw)
	}
	flt, err0 := strconv.ParseInt(f[7], 10, 64)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		b.Fatalf("CPU time of %d: /proc/%d/stat: %q", pid, pid, raw)
	}
	const tick = 10 * time.Millisecond
	return time.Duration(ut) * tick, time.Duration(st) * tick, flt
}

func (c processCounters) sub(o processCounters) processCounters {
	return processCounters{ctxSwitches: c.ctxSwitches - o.ctxSwitches, syscr: c.syscr - o.syscr, syscw: c.syscw - o.syscw,
		utime: c.utime - o.utime, stime: c.stime - o.stime, minflt: c.minflt - o.minflt, allocBytes: c.allocBytes - o.allocBytes, gc: c.gc - o.gc, heapGoal: c.heapGoal, rssPeak: c.rssPeak}
}

func (c processCounters) report(b *testing.B, grants int) { c.reportAs(b, "", grants) }

// reportAs reports the counters under names starting with prefix (a
// peer's: "peer-", "storepeer-").
func (c processCounters) reportAs(b *testing.B, prefix string, grants int) {
	n := float64(grants)
	b.ReportMetric(float64(c.ctxSwitches)/n, prefix+"ctxsw/grant")
	b.ReportMetric(float64(c.syscr)/n, prefix+"syscr/grant")
	b.ReportMetric(float64(c.syscw)/n, prefix+"syscw/grant")
	b.ReportMetric(float64(c.utime.Microseconds())/n, prefix+"user-µs/grant")
	b.ReportMetric(float64(c.stime.Microseconds())/n, prefix+"sys-µs/grant")
	b.ReportMetric(float64(c.minflt)/n, prefix+"minflt/grant")
	b.ReportMetric(c.allocBytes/1024/n, prefix+"alloc-KiB/grant")
	b.ReportMetric(c.gc*1000/n, prefix+"gc/1000grants")
	if c.heapGoal > 0 {
		b.ReportMetric(c.heapGoal/(1<<20), prefix+"heap-goal-MiB")
	}
	if c.rssPeak > 0 {
		b.ReportMetric(c.rssPeak/(1<<20), prefix+"rss-peak-MiB")
	}
}

func (r loadResult) sigTotal() int {
	n := 0
	for _, v := range r.signatures {
		n += v
	}
	return n
}

// loadTokenEndpoint runs n grants of one type from `clients` concurrent
// clients and measures them. Codes (browser logins through the dev IdP) and
// the grants to refresh are made before the timed window.
func loadTokenEndpoint(b *testing.B, f *fleet, p benchProcess, grant string, clients, n int) loadResult {
	pid := p.pid
	c := f.Clients["gpt-apps-mcp"]
	// One keep-alive connection per client, as separate clients have.
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	type job struct{ form url.Values }
	perClient := make([][]job, clients)
	switch grant {
	case "authorization_code":
		var wg sync.WaitGroup
		var mu sync.Mutex
		sem := make(chan struct{}, 4)
		for i := range n + clients { // clients extra for warm-up
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				a := newAuthRequest(c)
				code := f.authorize(a)
				form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
				mu.Lock()
				perClient[i%clients] = append(perClient[i%clients], job{form})
				mu.Unlock()
			}()
		}
		wg.Wait()
		// A login that failed (f.authorize's Fatalf ends only its own
		// goroutine) left a client short of codes: stop here, with its
		// message, not with an index out of range in the window.
		if b.Failed() {
			b.FailNow()
		}
	case "refresh_token":
		// Each client refreshes its own grant, chaining the rotated tokens.
		for i := range clients {
			perClient[i] = []job{{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.fullFlow(c, newAuthRequest(c)).RefreshToken}}}}
		}
	}
	do := func(form url.Values, id string) (tokenResponse, time.Duration) {
		body := url.Values{}
		for k, v := range form {
			body[k] = v
		}
		if c.AuthMethod == "client_secret_post" {
			body.Set("client_id", c.ClientID)
			body.Set("client_secret", c.ClientSecret)
		}
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			// As an ingress sends it; it names the request's access-log
			// line (the tail attribution).
			req.Header.Set("X-Request-Id", id)
		}
		if c.AuthMethod == "client_secret_basic" || c.AuthMethod == "" {
			req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Errorf("token: %v", err)
			return tokenResponse{}, 0
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		var tr tokenResponse
		_ = json.Unmarshal(raw, &tr)
		tr.Status = resp.StatusCode
		if tr.Status != http.StatusOK {
			b.Errorf("%s: %d %s %s", grant, tr.Status, tr.Error, tr.Description)
		}
		return tr, d
	}
	for i := range clients {
		if len(perClient[i]) == 0 {
			b.Fatalf("client %d has nothing to redeem (a login failed)", i)
		}
	}
	// Warm-up: one grant per client (connections, script cache).
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, _ := do(perClient[i][0].form, "")
			if grant == "refresh_token" {
				perClient[i][0].form.Set("refresh_token", tr.RefreshToken)
			} else {
				perClient[i] = perClient[i][1:]
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	per := make([]int, clients)
	for i := range n {
		per[i%clients]++
	}
	lat := make([][]sample, clients)
	// The tokens are kept and their signatures counted after the window:
	// parsing JWS in the clients would spend CPU of the two cores the
	// auth-server runs on, inside the window.
	toks := make([][]string, clients)
	logStart, err := os.Stat(p.log)
	if err != nil {
		b.Fatal(err)
	}
	endWindow := window(b, p)
	m0 := metricsAt(b, f.adminMetricsURL())
	os0 := readProcessCounters(b, pid, m0)
	redisCPU0, redisCalls0, redisUsec0 := redisStats(b, f)
	delay0, client0 := runDelay(b, pid), processCPU(b, os.Getpid())
	// The instructions are counted over the grants only, as the CPU time
	// is: the admin /metrics scrapes before and after them (their gzip,
	// ~20 M instructions each) are not the grants' work.
	endCallgrind := callgrindWindow(b, pid)
	cpu0 := processCPU(b, pid)
	t0 := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := perClient[i][0].form
			for k := range per[i] {
				if grant == "authorization_code" {
					form = perClient[i][k].form
				}
				id := fmt.Sprintf("bench-%d-%d", i, k)
				t := time.Now()
				tr, d := do(form, id)
				lat[i] = append(lat[i], sample{id: id, start: t, latency: d})
				toks[i] = append(toks[i], tr.AccessToken, tr.IDToken)
				if grant == "refresh_token" {
					form.Set("refresh_token", tr.RefreshToken)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	cpu := processCPU(b, pid) - cpu0
	instructions := endCallgrind()
	tail := tailReport{serverRunDelay: runDelay(b, pid) - delay0, clientCPU: processCPU(b, os.Getpid()) - client0}
	m1 := metricsAt(b, f.adminMetricsURL())
	os1 := readProcessCounters(b, pid, m1)
	redisCPU1, redisCalls1, redisUsec1 := redisStats(b, f)
	tail.redisCPU, tail.redisCalls, tail.redisCmd = redisCPU1-redisCPU0, redisCalls1-redisCalls0, redisUsec1-redisUsec0
	tail.redisWait = redisWait(m1)
	tail.leaseWaits = m1["tollgate_auth_rate_limit_lease_waits_total"] - m0["tollgate_auth_rate_limit_lease_waits_total"]
	tail.leasesAhead = m1["tollgate_auth_rate_limit_leases_ahead_total"] - m0["tollgate_auth_rate_limit_leases_ahead_total"]
	for cmd, e := range redisWait(m0) {
		tail.redisWait[cmd] = [2]float64{tail.redisWait[cmd][0] - e[0], tail.redisWait[cmd][1] - e[1]}
	}
	tail.rt = endWindow()
	r := loadResult{grants: n, wall: wall, cpu: cpu, signatures: map[string]int{}, instructions: instructions,
		signingCPU: signingCPU(m1) - signingCPU(m0), os: os1.sub(os0)}
	var all []time.Duration
	for i := range clients {
		for _, s := range lat[i] {
			all = append(all, s.latency)
		}
		tail.samples = append(tail.samples, lat[i]...)
		for _, tok := range toks[i] {
			if alg := jwsAlg(tok); alg != "" {
				r.signatures[alg]++
			}
		}
	}
	slices.Sort(all)
	r.p50, r.p99 = all[len(all)/2], all[(len(all)*99+99)/100-1]
	byID, gcs, err := serverLog(p.log, logStart.Size())
	if err != nil {
		b.Errorf("tail attribution: %v", err)
	}
	tail.gcs = gcs
	tail.match(byID)
	r.tail = tail
	return r
}

// signingCPU is the auth-server's tollgate_auth_signing_cpu_seconds_total
// (every algorithm and token) in metrics (metricsAt).
func signingCPU(metrics map[string]float64) time.Duration {
	var sum float64
	for k, v := range metrics {
		if strings.HasPrefix(k, "tollgate_auth_signing_cpu_seconds_total{") {
			sum += v
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// jwsAlg is the "alg" of a compact JWS, "" for anything else.
func jwsAlg(raw string) string {
	if strings.Count(raw, ".") != 2 {
		return ""
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return ""
	}
	return tok.Headers[0].Algorithm
}

// signatureMeter measures the CPU time of one access-token signature on
// one core, with the keys of a ring made once.
type signatureMeter struct {
	ring *tokens.KeyRing
	std  jwt.Claims
	priv tokens.AccessClaims
}

// newBenchKeyRing is a key ring with a new RSA-2048 key and a new P-256
// key, for the signature meter and the signing peer.
func newBenchKeyRing() (*tokens.KeyRing, error) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"rsa": rk}, "rsa")
	if err != nil {
		return nil, err
	}
	return ring.WithECKeys(map[string]*ecdsa.PrivateKey{"ec": ek}, "ec")
}

func newSignatureMeter(b *testing.B) *signatureMeter {
	ring, err := newBenchKeyRing()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	return &signatureMeter{
		ring: ring,
		std: jwt.Claims{Issuer: "http://127.0.0.1:4000", Subject: "dev-user-0001", Audience: jwt.Audience{"http://127.0.0.1:4000/mcp"},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: rand.Text()},
		priv: tokens.AccessClaims{ClientID: "gpt-apps-mcp", Scope: "openid profile email", AuthTime: now.Unix(),
			Profile: tokens.Profile{Name: "Dev User", Email: "dev@example.com", EmailVerified: true, PreferredUsername: "dev"}},
	}
}

// cpu is the CPU time of one access-token signature with alg on one core:
// a goroutine locked to its thread signs access-token claims for at least
// 300 ms of CPU and divides its thread's CPU time
// (/proc/thread-self/schedstat) by the count.
func (m *signatureMeter) cpu(b *testing.B, alg jose.SignatureAlgorithm) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, n := threadCPU(b), 0
	for threadCPU(b)-c0 < 300*time.Millisecond {
		for range 10 {
			if _, err := m.ring.SignWith(alg, tokens.AccessTokenType, m.std, m.priv); err != nil {
				b.Fatal(err)
			}
		}
		n += 10
	}
	return (threadCPU(b) - c0) / time.Duration(n)
}

// processCPU is the CPU time of process pid so far: the sum over its
// threads (/proc/<pid>/task/*/schedstat, ns; a Go process keeps its
// threads, so none of the window's CPU leaves with an exited thread).
func processCPU(b *testing.B, pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("CPU time of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		sum += schedstat(b, t)
	}
	return sum
}

// threadCPU is the calling thread's CPU time so far.
func threadCPU(b *testing.B) time.Duration { return schedstat(b, "/proc/thread-self/schedstat") }

// schedstat reads the time spent on a CPU, in ns, the first field of a
// schedstat file (Linux, CONFIG_SCHED_INFO).
func schedstat(b *testing.B, path string) time.Duration {
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("CPU time: %v", err)
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		b.Fatalf("CPU time: %s is empty", path)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		b.Fatalf("CPU time: %s: %v", path, err)
	}
	return time.Duration(ns)
}

// startFleetProcess is startFleet with the auth-server in a process of its
// own (this test binary re-executed) and dev-init's real secret hashes, as
// in `make dev`. It returns the fleet and the auth-server's process.
func startFleetProcess(b *testing.B, env map[string]string) (*fleet, benchProcess) {
	f := newFleet(b, env, "", false)
	// The admin port on a listener of ours (the process's fd 4): the
	// benchmark reads the signing counters there.
	admin := testharness.Listener(b)
	f.env["ADMIN_ADDR"] = admin.Addr().String()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if dir := os.Getenv(callgrindEnv); dir != "" {
		cmd = exec.Command("valgrind", "--tool=callgrind", "--instr-atstart=no",
			"--callgrind-out-file="+filepath.Join(dir, "callgrind.out"), os.Args[0], "-test.run=^$")
	}
	p := benchProcess{dir: b.TempDir()}
	cmd.Env = append(os.Environ(), authServerProcessEnv+"=1", windowDirEnv+"="+p.dir)
	// gctrace: one line per GC cycle in the log (its time and phases), for
	// the tail attribution.
	godebug := "gctrace=1"
	if os.Getenv(callgrindEnv) != "" {
		godebug += ",asyncpreemptoff=1" // Go's preemption signals and valgrind
		// valgrind 3.19 (Debian's) does not know RDTSCP, which the Go
		// runtime uses on CPUs that have it (runtime.cputicks): without
		// this the auth-server stops at once with SIGILL under callgrind.
		godebug += ",cpu.rdtscp=off"
	}
	cmd.Env = append(cmd.Env, "GODEBUG="+godebug)
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The auth-server's own runtime settings (GOGC, GOMEMLIMIT, ...), not
	// the clients': variables set for the whole go test reach both.
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv(serverEnvEnv))...)
	// The process serves on the listener newFleet bound (its fd 3).
	lnFile, err := f.ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer lnFile.Close()
	adminFile, err := admin.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer adminFile.Close()
	cmd.ExtraFiles = []*os.File{lnFile, adminFile}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+app.FDPrefix+"3", "ADMIN_ADDR="+app.FDPrefix+"4")
	// Its log goes to a file, written by the process itself: through a
	// pipe, a goroutine of this process would copy every line, on the
	// cores the auth-server runs on.
	logFile, err := os.Create(filepath.Join(b.TempDir(), "auth-server.log"))
	if err != nil {
		b.Fatal(err)
	}
	p.log = logFile.Name()
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	logTail := func() string {
		raw, _ := os.ReadFile(logFile.Name())
		if len(raw) > 16<<10 {
			raw = raw[len(raw)-16<<10:]
		}
		return string(raw)
	}
	// Stopped when the benchmark ends, however it ends (startChild).
	proc := startChild(b, cmd, 10*time.Second)
	deadline := time.Now().Add(180 * time.Second)
	// With a timeout: the listener is this process's, so the kernel accepts
	// a connection whether or not the auth-server lives to answer it.
	poll := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := poll.Get(f.Base + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.pid = cmd.Process.Pid
				return f, p
			}
		}
		select {
		case <-proc.done:
			b.Fatalf("auth-server exited: %v\n%s", proc.err, logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("auth-server not serving after 180s\n%s", logTail())
		}
	}
}

// benchProcess is the auth-server process of BenchmarkTokenEndpoint.
type benchProcess struct {
	pid int
	// dir is where it reads window names and writes window files
	// (windowOnSignal), log the file it logs to.
	dir, log string
}

// BenchmarkVerifyAccessToken measures the fleet verifier on a real
// auth-server token: steady state (cached), and a verifier that has the
// key set but has not seen the token (signature and claims checked).
func BenchmarkVerifyAccessToken(b *testing.B) {
	f := startFleet(b, map[string]string{"LOG_LEVEL": "warn"})
	c := f.Clients["local-test"]
	at := f.fullFlow(c, newAuthRequest(c)).AccessToken
	b.Run("cached", func(b *testing.B) {
		v := f.Verifier(c.Audience)
		ctx := ctxT(b)
		if _, err := v.Verify(ctx, at); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		src := f.KeySource()
		ctx := ctxT(b)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			v := tokens.NewVerifier(tokens.VerifierOptions{Source: src, Audiences: []string{c.Audience}})
			if err := v.Ready(ctx); err != nil { // fetch the key set outside the timer
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := v.Verify(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}
