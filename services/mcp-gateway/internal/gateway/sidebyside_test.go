package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// BenchmarkSideBySide is the gateway's headline figure
// (docs/benchmarks/mcp-gateway.md): one run, same load generator settings,
// against
//
//   - mcpecho: a bare mcp-go Streamable HTTP server (internal/bench/mcpecho,
//     built here from the module cache) answering tools/call "echo";
//   - the gateway binary: authenticated tools/call of identity.profile and
//     of health.check, each a capability-core call over gRPC with the
//     caller's token forwarded.
//
// Each target gets a warm-up and then a timed window in which
// TOLLGATE_BENCH_CONNS keep-alive connections (default 32) each send one
// call after another for TOLLGATE_BENCH_DURATION (default 5s); the targets
// take turns for TOLLGATE_BENCH_ROUNDS rounds (default 3), so that a change
// in the machine's other load falls on all of them alike. It reports
// req/s and p99 per target and the ratios gateway ÷ mcpecho, plus the
// Redis commands per call and the gateway's session-cache hit share.
// TOLLGATE_BENCH_CPUPROFILE=<dir> writes the CPU profiles of the gateway
// and of capability-core over each gateway target's first window
// (ADMIN_PPROF), for `go tool pprof -top`. It also reports what does not
// depend on the machine's load: the gateway's heap allocations and bytes
// per call (its go_memstats counters), and with TOLLGATE_BENCH_SYSCALLS=1
// the system calls per call of mcpecho and of the gateway (perf stat's
// raw_syscalls:sys_enter, which needs perf and the permission to trace).
//
// It runs once whatever b.N is: run it with -benchtime 1x.
func BenchmarkSideBySide(b *testing.B) {
	conns := envInt(b, "TOLLGATE_BENCH_CONNS", 32)
	window := envDuration(b, "TOLLGATE_BENCH_DURATION", 5*time.Second)
	warmup := window / 5
	rounds := envInt(b, "TOLLGATE_BENCH_ROUNDS", 3)
	profDir := os.Getenv("TOLLGATE_BENCH_CPUPROFILE")
	countSyscalls := os.Getenv("TOLLGATE_BENCH_SYSCALLS") == "1"

	if err := testharness.BuildBinaries(binDir, testharness.Binary{ModuleDir: filepath.Join("..", ".."), Package: "./internal/bench/mcpecho"}); err != nil {
		b.Fatal(err)
	}
	echoProc := testharness.StartProcess(b, filepath.Join(binDir, "mcpecho"), nil, "MCPECHO_ADDR")
	echoAddr := echoProc.Addr("MCPECHO_ADDR")
	echoURL := "http://" + echoAddr + "/mcp"
	echoSID := initBare(b, echoURL)

	// capability-core with pprof on its admin listener, so that its CPU
	// profile can be taken next to the gateway's.
	f := &fleet{t: b, Redis: testharness.StartRedis(b), Issuer: tokentest.Start(b, issuerURL)}
	f.coreEnv = map[string]string{"ADMIN_PPROF": "true", "LOG_LEVEL": "info"}
	f.StartCore()
	// The limit is evaluated on every call (its Redis cost counts) but set
	// high enough never to refuse.
	g, gwProc := f.GatewayProcess("RATE_LIMIT_PER_MINUTE", "1000000000", "SESSION_LIMIT_PER_SUBJECT", "100000", "LOG_LEVEL", "warn", "ADMIN_PPROF", "true")
	tok := f.Token("bench", allScopes)
	sid := g.initialize(b, tok)
	gwHeader := map[string]string{"Authorization": "Bearer " + tok, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": version}

	targets := []struct {
		name   string
		url    string
		body   []byte
		header map[string]string
		gw     bool
	}{
		{"mcp-go-echo", echoURL, mustJSON(b, call("tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"text": "hello"}})),
			map[string]string{"Mcp-Session-Id": echoSID, "Mcp-Protocol-Version": version}, false},
		{"gateway-identity.profile", g.URL + "/mcp", mustJSON(b, call("tools/call", map[string]any{"name": "identity.profile"})), gwHeader, true},
		{"gateway-health.check", g.URL + "/mcp", mustJSON(b, call("tools/call", map[string]any{"name": "health.check"})), gwHeader, true},
	}
	// What an idle session costs: the gateway's live heap (after a GC) and
	// Redis' memory, before and after idleSessions more sessions, each
	// initialized, used once and left alone, 100 per subject (the default
	// cap). Measured before the load, whose connection buffers would blur
	// the heap.
	const idleSessions = 1000
	idleTokens := make([]string, idleSessions/100)
	for i := range idleTokens {
		idleTokens[i] = f.Token(fmt.Sprintf("idle-%d", i), allScopes)
	}
	time.Sleep(time.Second) // let start-up garbage settle
	heap0, redis0, keys0 := heapAlloc(b, g.Admin), redisMemory(b, f), redisKeySet(b, f)
	for i := range idleSessions {
		t := idleTokens[i/100]
		s := g.initialize(b, t)
		g.rpc(b, t, s, "tools/call", map[string]any{"name": "identity.profile"}, nil)
	}
	heapPer := float64(heapAlloc(b, g.Admin)-heap0) / idleSessions
	redisPer := float64(redisMemory(b, f)-redis0) / idleSessions
	idleKeys := newKeysUsage(b, f, keys0)
	keyBytesPer := float64(idleKeys.total) / idleSessions

	load1, _ := os.ReadFile("/proc/loadavg")
	results := map[string]*loadResult{}
	for round := range rounds {
		for _, tg := range targets {
			if round == 0 {
				runLoad(b, tg.url, tg.body, tg.header, conns, warmup) // warm-up, not counted
			}
			cmdsBefore := redisCommands(b, f)
			// CPU time of what serves the target: mcpecho, or the gateway,
			// capability-core and Redis.
			procs := []*testharness.Process{echoProc}
			if tg.gw {
				procs = []*testharness.Process{gwProc, f.core}
			}
			cpuBefore, mainBefore := processCPU(b, procs)+redisCPU(b, f, tg.gw), processCPU(b, procs[:1])
			lookups := func() (memory, hit, miss float64) {
				return g.metric(b, `tollgate_mcp_session_cache_total{result="memory"}`), g.metric(b, `tollgate_mcp_session_cache_total{result="hit"}`),
					g.metric(b, `tollgate_mcp_session_cache_total{result="miss"}`)
			}
			memBefore, hitsBefore, missesBefore := lookups()
			var prof, coreProf *cpuProfile
			if tg.gw && profDir != "" && round == 0 {
				prof = startCPUProfile(b, g.Admin, window, filepath.Join(profDir, "gateway-"+tg.name+".pprof"))
				coreProf = startCPUProfile(b, f.CoreAdmin, window, filepath.Join(profDir, "core-"+tg.name+".pprof"))
			}
			var mallocs0, bytes0 float64
			if tg.gw {
				mallocs0, bytes0 = g.metric(b, "go_memstats_mallocs_total"), g.metric(b, "go_memstats_alloc_bytes_total")
			}
			var sys *syscallCount
			if countSyscalls {
				sys = startSyscallCount(b, procs[0].Pid())
			}
			res := runLoad(b, tg.url, tg.body, tg.header, conns, window)
			if sys != nil {
				res.syscalls = sys.stop(b)
			}
			if tg.gw {
				res.mallocs = g.metric(b, "go_memstats_mallocs_total") - mallocs0
				res.allocBytes = g.metric(b, "go_memstats_alloc_bytes_total") - bytes0
			}
			res.cpu = processCPU(b, procs) + redisCPU(b, f, tg.gw) - cpuBefore
			res.mainCPU = processCPU(b, procs[:1]) - mainBefore
			if prof != nil {
				prof.wait(b)
				coreProf.wait(b)
			}
			if tg.gw {
				res.redisPerCall, res.redisCommands = perCall(cmdsBefore, redisCommands(b, f), res.calls)
				mem, hits, misses := lookups()
				mem, hits, misses = mem-memBefore, hits-hitsBefore, misses-missesBefore
				if all := mem + hits + misses; all > 0 {
					res.cacheHits, res.fromMemory = (mem+hits)/all, mem/all
				}
			}
			if prev := results[tg.name]; prev != nil {
				prev.add(res)
			} else {
				results[tg.name] = &res
			}
		}
	}
	load2, _ := os.ReadFile("/proc/loadavg")

	echo := results["mcp-go-echo"]
	var out strings.Builder
	fmt.Fprintf(&out, "\nside by side: %d connections, %d rounds of %s per target, GOMAXPROCS %d, load average before %s, after %s\n",
		conns, rounds, window, runtime.GOMAXPROCS(0), strings.Join(strings.Fields(string(load1))[:3], " "), strings.Join(strings.Fields(string(load2))[:3], " "))
	fmt.Fprintf(&out, "%-26s %10s %9s %9s %9s %11s %12s %14s %9s %12s\n", "target", "req/s", "p50 ms", "p99 ms", "× req/s", "× p99", "redis cmd/call*", "cpu µs/call**", "× cpu", "own µs/call")
	for _, tg := range targets {
		r := results[tg.name]
		fmt.Fprintf(&out, "%-26s %10.0f %9.2f %9.2f %9.2f %11.2f %12.2f %14.0f %9.2f %12.0f\n", tg.name, r.rps(), ms(r.p50()), ms(r.p99()),
			r.rps()/echo.rps(), ms(r.p99())/ms(echo.p99()), r.redisPerCall, r.cpuPerCall(), r.cpuPerCall()/echo.cpuPerCall(), r.mainCPUPerCall())
		b.ReportMetric(r.rps(), tg.name+"-req/s")
		b.ReportMetric(r.cpuPerCall(), tg.name+"-cpu-µs/call")
		b.ReportMetric(ms(r.p99()), tg.name+"-p99-ms")
		if tg.gw {
			b.ReportMetric(r.rps()/echo.rps(), tg.name+"-ratio")
			b.ReportMetric(r.redisPerCall, tg.name+"-redis-cmds/call")
			b.ReportMetric(r.cacheHits, tg.name+"-session-cache-hit")
			b.ReportMetric(r.fromMemory, tg.name+"-session-from-memory")
		}
	}
	fmt.Fprintf(&out, "** CPU time per call of the serving processes: mcpecho; or gateway + capability-core + Redis (own: mcpecho or the gateway alone)\n")
	for _, tg := range targets {
		r := results[tg.name]
		var parts []string
		if tg.gw {
			parts = append(parts, fmt.Sprintf("gateway heap allocations per call %.1f, bytes per call %.0f", r.mallocs/float64(r.calls), r.allocBytes/float64(r.calls)))
			b.ReportMetric(r.mallocs/float64(r.calls), tg.name+"-gateway-allocs/call")
			b.ReportMetric(r.allocBytes/float64(r.calls), tg.name+"-gateway-B/call")
		}
		if countSyscalls {
			parts = append(parts, fmt.Sprintf("system calls per call (%s alone) %.2f", map[bool]string{true: "gateway", false: "mcpecho"}[tg.gw], r.syscalls/float64(r.calls)))
			b.ReportMetric(r.syscalls/float64(r.calls), tg.name+"-syscalls/call")
		}
		if len(parts) > 0 {
			fmt.Fprintf(&out, "%s: %s\n", tg.name, strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(&out, "idle session (%d made before the load): gateway heap %.0f bytes each, Redis used_memory %.0f bytes each, MEMORY USAGE of the keys they created %.0f bytes each\n",
		idleSessions, heapPer, redisPer, keyBytesPer)
	fmt.Fprintf(&out, "  keys the idle sessions created, by kind: %s\n", idleKeys)
	b.ReportMetric(heapPer, "gateway-heap-B/idle-session")
	b.ReportMetric(redisPer, "redis-B/idle-session")
	b.ReportMetric(keyBytesPer, "redis-key-B/idle-session")
	for _, tg := range targets {
		if r := results[tg.name]; tg.gw {
			fmt.Fprintf(&out, "%s: Redis commands per call (*those scripts run inside Redis included): %s\n", tg.name, r.redisCommands)
		}
	}
	fmt.Print(out.String())
}

// loadResult is one or more timed windows of a target.
type loadResult struct {
	calls   int
	elapsed time.Duration
	lat     []time.Duration // sorted
	// redisPerCall and redisCommands are the last window's Redis commands
	// per call, in all and by command.
	redisPerCall  float64
	redisCommands string
	cacheHits     float64       // share of session checks whose record was known
	fromMemory    float64       // share answered without Redis
	cpu           time.Duration // CPU time of the serving processes
	mainCPU       time.Duration // of mcpecho or the gateway alone
	mallocs       float64       // the gateway's heap allocations
	allocBytes    float64       // and their bytes
	syscalls      float64       // system calls of mcpecho or the gateway (TOLLGATE_BENCH_SYSCALLS)
}

func (r *loadResult) add(o loadResult) {
	r.calls += o.calls
	r.cpu += o.cpu
	r.mainCPU += o.mainCPU
	r.mallocs += o.mallocs
	r.allocBytes += o.allocBytes
	r.syscalls += o.syscalls
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
	r.redisPerCall, r.redisCommands, r.cacheHits, r.fromMemory = o.redisPerCall, o.redisCommands, o.cacheHits, o.fromMemory
}

func (r *loadResult) rps() float64       { return float64(r.calls) / r.elapsed.Seconds() }
func (r *loadResult) p50() time.Duration { return r.lat[len(r.lat)/2] }
func (r *loadResult) p99() time.Duration { return r.lat[len(r.lat)*99/100] }

func (r *loadResult) cpuPerCall() float64 {
	return float64(r.cpu.Microseconds()) / float64(r.calls)
}

func (r *loadResult) mainCPUPerCall() float64 {
	return float64(r.mainCPU.Microseconds()) / float64(r.calls)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runLoad sends body to url from conns goroutines, each over its own
// keep-alive connection, one call after another, for d; every answer must
// be a successful tool result.
func runLoad(b *testing.B, url string, body []byte, header map[string]string, conns int, d time.Duration) loadResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	var failed sync.Once
	var failure error
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer client.CloseIdleConnections()
			buf := make([]byte, 0, 4096)
			for ctx.Err() == nil {
				hr, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				hr.Header.Set("Content-Type", "application/json")
				hr.Header.Set("Accept", "application/json, text/event-stream")
				for k, v := range header {
					hr.Header.Set(k, v)
				}
				t0 := time.Now()
				res, err := client.Do(hr)
				if err == nil {
					buf, err = readAll(res.Body, buf[:0])
					res.Body.Close()
				}
				if err == nil && (res.StatusCode != http.StatusOK || !bytes.Contains(buf, []byte(`"result"`)) || bytes.Contains(buf, []byte(`"isError":true`))) {
					err = fmt.Errorf("status %d: %s", res.StatusCode, buf)
				}
				if err != nil {
					failed.Do(func() { failure = err })
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failure != nil {
		b.Fatalf("%s: %v", url, failure)
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		b.Fatalf("%s: no call completed", url)
	}
	slices.Sort(all)
	return loadResult{calls: len(all), elapsed: elapsed, lat: all}
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// redisCommands is the number of commands the fleet's Redis has
// processed, by command (INFO commandstats; INFO itself left out).
func redisCommands(b *testing.B, f *fleet) map[string]int64 {
	b.Helper()
	info, err := f.Redis.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(calls, 10, 64)
	}
	return out
}

// perCall is the commands of after − before per call, as "evalsha 1.00 exists 1.00".
func perCall(before, after map[string]int64, calls int) (float64, string) {
	var total int64
	var parts []string
	for name, n := range after {
		if d := n - before[name]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(d)/float64(calls)))
		}
	}
	slices.Sort(parts)
	return float64(total) / float64(calls), strings.Join(parts, ", ")
}

// processCPU is the user + system CPU time the processes have used, all
// their threads included (/proc/<pid>/stat, in clock ticks of 10 ms).
func processCPU(b *testing.B, procs []*testharness.Process) time.Duration {
	b.Helper()
	var total time.Duration
	for _, p := range procs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command name, which ends with the last ')'.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}

// redisCPU is Redis' own CPU time (INFO cpu), when counted.
func redisCPU(b *testing.B, f *fleet, counted bool) time.Duration {
	b.Helper()
	if !counted {
		return 0
	}
	info, err := f.Redis.Client().Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			x, _ := strconv.ParseFloat(v, 64)
			total += x
		}
	}
	return time.Duration(total * float64(time.Second))
}

// heapAlloc is the gateway's live heap right after a GC (the heap profile
// with gc=1 collects first; debug=1 prints runtime.MemStats).
func heapAlloc(b *testing.B, admin string) int64 {
	b.Helper()
	res, err := http.Get(admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	b.Fatalf("no HeapAlloc in the heap profile: %.200s", raw)
	return 0
}

// redisMemory is the Redis server's used_memory.
func redisMemory(b *testing.B, f *fleet) int64 {
	b.Helper()
	info, err := f.Redis.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// redisKeySet is every key in Redis now.
func redisKeySet(b *testing.B, f *fleet) map[string]bool {
	b.Helper()
	keys, err := f.Redis.Client().Keys(context.Background(), "*").Result()
	if err != nil {
		b.Fatal(err)
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return set
}

// keysUsage is what MEMORY USAGE (all samples) reports for a set of keys,
// in all and by kind: the key with its 64-hex hashes written <h>, and the
// value's encoding.
type keysUsage struct {
	total  int64
	kinds  map[string]int64 // bytes by kind
	counts map[string]int
}

func (u keysUsage) String() string {
	kinds := slices.Sorted(maps.Keys(u.kinds))
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s ×%d: %d B each", k, u.counts[k], u.kinds[k]/int64(u.counts[k])))
	}
	return strings.Join(parts, "; ")
}

var hexHash = regexp.MustCompile(`[0-9a-f]{64}`)

// newKeysUsage sums MEMORY USAGE over the keys that are not in before:
// the keys a step created, whatever else it touched in Redis.
func newKeysUsage(b *testing.B, f *fleet, before map[string]bool) keysUsage {
	b.Helper()
	ctx := context.Background()
	rdb := f.Redis.Client()
	u := keysUsage{kinds: map[string]int64{}, counts: map[string]int{}}
	for k := range redisKeySet(b, f) {
		if before[k] {
			continue
		}
		// A key may expire between the listing and these reads (a rate-limit
		// bucket refilled to full): it no longer costs anything.
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			b.Fatalf("MEMORY USAGE %s: %v", k, err)
		}
		enc, err := rdb.ObjectEncoding(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			b.Fatalf("OBJECT ENCODING %s: %v", k, err)
		}
		kind := hexHash.ReplaceAllString(k, "<h>") + " (" + enc + ")"
		u.total += n
		u.kinds[kind] += n
		u.counts[kind]++
	}
	return u
}

// cpuProfile is a /debug/pprof/profile request covering a timed window.
type cpuProfile struct {
	done chan error
}

func startCPUProfile(b *testing.B, admin string, d time.Duration, path string) *cpuProfile {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	p := &cpuProfile{done: make(chan error, 1)}
	go func() {
		res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, max(1, int(d.Seconds()))))
		if err != nil {
			p.done <- err
			return
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: %d %s", res.StatusCode, raw)
		}
		if err == nil {
			err = os.WriteFile(path, raw, 0o644)
		}
		p.done <- err
	}()
	return p
}

func (p *cpuProfile) wait(b *testing.B) {
	if err := <-p.done; err != nil {
		b.Fatal(err)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		b.Fatalf("%s=%q: want a duration of at least 1s", name, v)
	}
	return d
}

// syscallCount is `perf stat -e raw_syscalls:sys_enter` attached to one
// process for a window: every system call its threads enter.
type syscallCount struct {
	cmd    *exec.Cmd
	output bytes.Buffer
}

func startSyscallCount(b *testing.B, pid int) *syscallCount {
	b.Helper()
	c := &syscallCount{cmd: exec.Command("perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", strconv.Itoa(pid))}
	c.cmd.Stderr = &c.output
	if err := c.cmd.Start(); err != nil {
		b.Fatalf("TOLLGATE_BENCH_SYSCALLS=1 needs perf: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // attached before the window starts
	return c
}

// stop ends the count (perf prints it on SIGINT) and returns it.
func (c *syscallCount) stop(b *testing.B) float64 {
	b.Helper()
	_ = c.cmd.Process.Signal(os.Interrupt)
	_ = c.cmd.Wait()
	for _, line := range strings.Split(c.output.String(), "\n") {
		if f := strings.Split(line, ","); len(f) > 2 && strings.Contains(line, "raw_syscalls:sys_enter") {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil {
				return n
			}
		}
	}
	b.Fatalf("perf stat: no raw_syscalls:sys_enter count in %q", c.output.String())
	return 0
}
