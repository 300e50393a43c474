package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The token-endpoint benchmark's tail attribution (docs/benchmarks/auth-server-history.md,
// "Where the p99 comes from"): what a slow request waited for. The
// auth-server process reports, per timed window, the Go runtime's own
// counters (runtime/metrics: how long goroutines waited for a P, GC
// cycles and their stop-the-world pauses, time blocked on sync.Mutex) and
// writes a gctrace line per GC cycle into its log; the benchmark's client
// sends a request id with every request, so that the auth-server's
// access-log line (its handler's duration and end) can be matched to the
// latency the client saw. Everything is read before and after the window:
// nothing is parsed or polled inside it.

// windowDirEnv names the directory where the auth-server process (the
// test binary re-executed) exchanges window files with the benchmark.
const windowDirEnv = "TOLLGATE_BENCH_WINDOW_DIR"

// clockLine is the line the auth-server process writes before the forced
// GC that anchors gctrace's process-relative times to the wall clock.
const clockLine = "tollgate-bench-clock "

// anchorGCTrace runs in the auth-server process before it serves: it
// writes the wall clock, then forces a GC, whose gctrace line ("gc N
// @T s … (forced)") gives T, the time since the runtime started, for that
// wall clock (to the millisecond, gctrace's precision).
func anchorGCTrace() {
	fmt.Fprintf(os.Stderr, "%s%d\n", clockLine, time.Now().UnixNano())
	runtime.GC()
}

// runtimeSample is what the auth-server process reports of the Go runtime
// over one window (the difference of two runtime/metrics reads).
type runtimeSample struct {
	// SchedLatency is how long goroutines waited, runnable, for a P
	// (/sched/latencies:seconds): counts per bucket and the bucket bounds.
	SchedCounts  []uint64  `json:"sched_counts"`
	SchedBuckets []float64 `json:"sched_buckets"`
	// GCPauseCounts and GCPauseBuckets: stop-the-world pauses of the GC
	// (/sched/pauses/total/gc:seconds).
	GCPauseCounts  []uint64  `json:"gc_pause_counts"`
	GCPauseBuckets []float64 `json:"gc_pause_buckets"`
	GCCycles       uint64    `json:"gc_cycles"`
	// CPU classes, seconds (the runtime's estimates over GOMAXPROCS).
	GCMarkAssist, GCMarkDedicated, GCMarkIdle, GCPause, CPUTotal, CPUUser float64
	// MutexWait is the time goroutines spent blocked on sync.Mutex and
	// sync.RWMutex (/sync/mutex/wait/total:seconds).
	MutexWait float64 `json:"mutex_wait"`
}

var runtimeMetricNames = []string{
	"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds", "/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/mark/assist:cpu-seconds", "/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds", "/cpu/classes/gc/pause:cpu-seconds",
	"/cpu/classes/total:cpu-seconds", "/cpu/classes/user:cpu-seconds", "/sync/mutex/wait/total:seconds",
}

func readRuntime() []metrics.Sample {
	s := make([]metrics.Sample, len(runtimeMetricNames))
	for i, n := range runtimeMetricNames {
		s[i].Name = n
	}
	metrics.Read(s)
	return s
}

func subCounts(a, b *metrics.Float64Histogram) []uint64 {
	out := make([]uint64, len(b.Counts))
	for i := range b.Counts {
		out[i] = b.Counts[i] - a.Counts[i]
	}
	return out
}

func runtimeDelta(a, b []metrics.Sample) runtimeSample {
	f := func(i int) float64 { return b[i].Value.Float64() - a[i].Value.Float64() }
	sa, sb := a[0].Value.Float64Histogram(), b[0].Value.Float64Histogram()
	pa, pb := a[1].Value.Float64Histogram(), b[1].Value.Float64Histogram()
	return runtimeSample{
		SchedCounts: subCounts(sa, sb), SchedBuckets: finite(sb.Buckets),
		GCPauseCounts: subCounts(pa, pb), GCPauseBuckets: finite(pb.Buckets),
		GCCycles:     b[2].Value.Uint64() - a[2].Value.Uint64(),
		GCMarkAssist: f(3), GCMarkDedicated: f(4), GCMarkIdle: f(5), GCPause: f(6), CPUTotal: f(7), CPUUser: f(8),
		MutexWait: f(9),
	}
}

// finite makes a runtime/metrics histogram's bounds JSON-encodable: an
// open first bucket starts at 0 (these are durations), an open last bucket
// ends where it starts.
func finite(b []float64) []float64 {
	out := slices.Clone(b)
	if len(out) > 0 && math.IsInf(out[0], -1) {
		out[0] = 0
	}
	if n := len(out); n > 1 && math.IsInf(out[n-1], 1) {
		out[n-1] = out[n-2]
	}
	return out
}

// windowOnSignal runs in the auth-server process: SIGUSR1 starts a window
// named by <dir>/.next (runtime counters read, the CPU profile started when
// cpuProfileEnv is set) and answers with <dir>/<name>.started; SIGUSR2 ends
// it and writes the runtime counters' difference to <dir>/<name>.runtime.
func windowOnSignal(dir string) {
	sig := make(chan os.Signal, 1)
	signalNotify(sig)
	var (
		name  string
		start []metrics.Sample
		prof  *os.File
	)
	profDir := os.Getenv(cpuProfileEnv)
	for s := range sig {
		switch {
		case isStart(s) && name == "":
			raw, err := os.ReadFile(filepath.Join(dir, ".next"))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench window:", err)
				continue
			}
			name = string(raw)
			if profDir != "" {
				prof = startCPUProfile(profDir, name)
			}
			start = readRuntime()
			_ = os.WriteFile(filepath.Join(dir, name+".started"), nil, 0o644)
		case !isStart(s) && name != "":
			d := runtimeDelta(start, readRuntime())
			if prof != nil {
				stopCPUProfile(prof)
				prof = nil
			}
			raw, err := json.Marshal(d)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench window:", err)
			}
			tmp := filepath.Join(dir, name+".runtime.tmp")
			if err := os.WriteFile(tmp, raw, 0o644); err == nil {
				_ = os.Rename(tmp, filepath.Join(dir, name+".runtime"))
			}
			name = ""
		}
	}
}

// waitFile waits up to 10 s for path to exist (2 min when the process
// runs under callgrind, many times slower).
func waitFile(b *testing.B, path string) {
	wait := 10 * time.Second
	if os.Getenv(callgrindEnv) != "" {
		wait = 2 * time.Minute
	}
	for deadline := time.Now().Add(wait); ; {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the auth-server process did not write %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endUnderCallgrind ends the window of the valgrind-run auth-server pid
// and waits for its runtime file (path): SIGUSR2, sent again every 10 s
// until the file exists (a repeat after the window ended is ignored), for
// up to 10 minutes. Under a loaded machine the valgrind-run process did
// not answer one signal within waitFile's 2 minutes (2026-12-02 and
// 2026-12-05, load 25–70), and the run failed after its grants.
func endUnderCallgrind(b *testing.B, pid int, path string) {
	for deadline := time.Now().Add(10 * time.Minute); ; {
		_ = syscall.Kill(pid, syscall.SIGUSR2)
		for next := time.Now().Add(10 * time.Second); time.Now().Before(next); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the auth-server process did not write %s", path)
		}
	}
}

// histQuantile is the upper bound of the bucket holding quantile q of a
// runtime/metrics histogram (an upper estimate: buckets are ~6 % wide
// around the microseconds and milliseconds that matter here).
func histQuantile(counts []uint64, buckets []float64, q float64) float64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= target {
			return buckets[i+1]
		}
	}
	return buckets[len(buckets)-1]
}

// histSum is the sum of a histogram's values, each taken at its bucket's
// midpoint (the lower bound for the last, open bucket: finite).
func histSum(counts []uint64, buckets []float64) float64 {
	var sum float64
	for i, c := range counts {
		sum += float64(c) * (buckets[i] + buckets[i+1]) / 2
	}
	return sum
}

// sample is one request as the client saw it (wall-clock start and
// latency) and, matched by its request id, as the auth-server's access log
// recorded it.
type sample struct {
	id      string
	start   time.Time
	latency time.Duration
	// handler is the auth-server's own duration of the request
	// (duration_ms: its handler chain, from after the request's headers
	// were read to the handler's return); end is the access-log line's
	// time (millisecond precision). Zero when no line matched.
	handler time.Duration
	end     time.Time
	// gcOverlap: the handler's interval overlaps a GC cycle's mark phase
	// (sweep termination to mark termination, from gctrace).
	gcOverlap bool
}

// gcWindow is one GC cycle from gctrace: from sweep termination's start
// to mark termination's end, wall clock.
type gcWindow struct{ from, to time.Time }

var gctraceLine = regexp.MustCompile(`^gc \d+ @([0-9.]+)s \d+%: ([0-9.]+)\+([0-9.]+)\+([0-9.]+) ms clock`)

// serverLog reads the auth-server's log from offset: the access-log lines'
// duration and time by request id, and the GC cycles (gctrace), anchored
// to the wall clock by the process's clock line.
func serverLog(path string, offset int64) (byID map[string]struct {
	d   time.Duration
	end time.Time
}, gcs []gcWindow, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	// The anchor is near the start of the file.
	var anchor time.Time
	var anchorSet bool
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pos := int64(0)
	var clock time.Time
	byID = map[string]struct {
		d   time.Duration
		end time.Time
	}{}
	for sc.Scan() {
		line := sc.Bytes()
		at := pos
		pos += int64(len(line)) + 1
		if v, ok := bytes.CutPrefix(line, []byte(clockLine)); ok {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			clock = time.Unix(0, n)
			continue
		}
		if m := gctraceLine.FindSubmatch(line); m != nil {
			at2, _ := strconv.ParseFloat(string(m[1]), 64)
			if !anchorSet && !clock.IsZero() && bytes.Contains(line, []byte("(forced)")) {
				anchor, anchorSet = clock.Add(-time.Duration(at2*float64(time.Second))), true
				continue
			}
			if !anchorSet || at < offset {
				continue
			}
			var ms float64
			for _, p := range m[2:] {
				v, _ := strconv.ParseFloat(string(p), 64)
				ms += v
			}
			from := anchor.Add(time.Duration(at2 * float64(time.Second)))
			gcs = append(gcs, gcWindow{from, from.Add(time.Duration(ms * float64(time.Millisecond)))})
			continue
		}
		if at < offset || !bytes.Contains(line, []byte(`"msg":"request"`)) {
			continue
		}
		var l struct {
			Time     time.Time `json:"time"`
			ID       string    `json:"request_id"`
			Duration float64   `json:"duration_ms"`
		}
		if json.Unmarshal(line, &l) != nil || l.ID == "" {
			continue
		}
		byID[l.ID] = struct {
			d   time.Duration
			end time.Time
		}{time.Duration(l.Duration * float64(time.Millisecond)), l.Time}
	}
	if !anchorSet {
		return byID, nil, fmt.Errorf("no gctrace anchor in %s", path)
	}
	return byID, gcs, sc.Err()
}

// tailReport is the tail attribution of one case.
type tailReport struct {
	rt                   runtimeSample
	samples              []sample
	matched              int
	gcs                  []gcWindow
	serverRunDelay       time.Duration // the auth-server's threads waiting on the kernel's run queue
	clientCPU, redisCPU  time.Duration
	redisCalls, redisCmd float64 // Redis commands (all clients of it) and their execution time in Redis, µs
	// redisWait: the auth-server's time waiting for Redis replies (its
	// command histogram), by command: seconds and commands
	redisWait map[string][2]float64
	// leaseWaits, leasesAhead: requests that waited for a rate-limit lease,
	// leases taken ahead of time (the auth-server's lease counters)
	leaseWaits, leasesAhead float64
}

// report prints and records the attribution.
func (t *tailReport) report(b *testing.B, grants int, wall time.Duration, clients int) {
	n := float64(grants)
	lat := make([]time.Duration, 0, len(t.samples))
	for _, s := range t.samples {
		lat = append(lat, s.latency)
	}
	slices.Sort(lat)
	q := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(math.Ceil(p*float64(len(l))))-1)]
	}
	p99 := q(lat, 0.99)
	b.ReportMetric(ms(q(lat, 0.90)), "p90-ms")
	b.ReportMetric(ms(q(lat, 0.999)), "p999-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")

	// Histogram of the client's latencies.
	var hist strings.Builder
	edges := []float64{1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 70, 100, 150, 200, 300, 500, 1000, math.Inf(1)}
	i := 0
	for _, e := range edges {
		c := 0
		for i < len(lat) && ms(lat[i]) < e {
			c++
			i++
		}
		if c > 0 {
			fmt.Fprintf(&hist, "  < %-5v ms %6d %5.1f %%\n", e, c, 100*float64(c)/float64(len(lat)))
		}
	}
	b.Logf("latency histogram (client, %d requests):\n%s", len(lat), hist.String())

	// The auth-server's handler against the client's latency.
	var handler []time.Duration
	var slow, all struct {
		n, gc                 int
		lat, handler, outside time.Duration
	}
	for _, s := range t.samples {
		if s.end.IsZero() {
			continue
		}
		handler = append(handler, s.handler)
		add := func(a *struct {
			n, gc                 int
			lat, handler, outside time.Duration
		}) {
			a.n++
			a.lat += s.latency
			a.handler += s.handler
			a.outside += s.latency - s.handler
			if s.gcOverlap {
				a.gc++
			}
		}
		add(&all)
		if s.latency >= p99 {
			add(&slow)
		}
	}
	slices.Sort(handler)
	if all.n > 0 && slow.n > 0 {
		b.ReportMetric(ms(q(handler, 0.99)), "p99-handler-ms")
		b.ReportMetric(ms(q(handler, 0.50)), "p50-handler-ms")
		b.ReportMetric(float64(slow.gc)/float64(slow.n), "gc-overlap-slow")
		b.ReportMetric(float64(all.gc)/float64(all.n), "gc-overlap-all")
		per := func(d time.Duration, k int) float64 { return ms(d) / float64(k) }
		b.Logf("requests matched to access-log lines: %d of %d; GC cycles in the window %d (gctrace)\n"+
			"               n   latency   handler   outside the handler   handler overlaps a GC mark phase\n"+
			"  all     %5d  %6.2f ms %6.2f ms      %6.2f ms            %5.1f %%\n"+
			"  >= p99  %5d  %6.2f ms %6.2f ms      %6.2f ms            %5.1f %%",
			t.matched, len(t.samples), len(t.gcs),
			all.n, per(all.lat, all.n), per(all.handler, all.n), per(all.outside, all.n), 100*float64(all.gc)/float64(all.n),
			slow.n, per(slow.lat, slow.n), per(slow.handler, slow.n), per(slow.outside, slow.n), 100*float64(slow.gc)/float64(slow.n))
	}

	// Where the clients' time went, in total (Little: clients × wall is
	// the sum of all latencies).
	rt := t.rt
	sched := histSum(rt.SchedCounts, rt.SchedBuckets)
	b.ReportMetric(sched*1e6/n, "go-runq-µs/grant")
	b.ReportMetric(histQuantile(rt.SchedCounts, rt.SchedBuckets, 0.99)*1e3, "go-runq-p99-ms")
	b.ReportMetric(float64(t.serverRunDelay.Microseconds())/n, "os-runq-µs/grant")
	b.ReportMetric(rt.MutexWait*1e6/n, "mutex-wait-µs/grant")
	// The collector's CPU as the runtime estimates it (mark assists, the
	// dedicated and idle mark workers, stop-the-world pauses ×
	// GOMAXPROCS): what the GC policy moves.
	b.ReportMetric((rt.GCMarkAssist+rt.GCMarkDedicated+rt.GCMarkIdle+rt.GCPause)*1e6/n, "gc-cpu-µs/grant")
	var redisWait, redisWaitCount float64
	var byCmd strings.Builder
	for _, cmd := range slices.Sorted(maps.Keys(t.redisWait)) {
		e := t.redisWait[cmd]
		if e[1] == 0 {
			continue
		}
		redisWait, redisWaitCount = redisWait+e[0], redisWaitCount+e[1]
		fmt.Fprintf(&byCmd, " %s %.3f/grant mean %.0f µs;", cmd, e[1]/n, e[0]*1e6/e[1])
	}
	b.ReportMetric(redisWait*1e6/n, "redis-wait-µs/grant")
	b.ReportMetric(float64(t.clientCPU.Microseconds())/n, "client-cpu-µs/grant")
	b.ReportMetric(float64(t.redisCPU.Microseconds())/n, "redis-cpu-µs/grant")
	var pauses uint64
	for _, c := range rt.GCPauseCounts {
		pauses += c
	}
	sumLat := time.Duration(0)
	for _, l := range lat {
		sumLat += l
	}
	b.Logf("the clients' time (Σ latency %.0f ms = %d clients × %.0f ms wall), per grant %.0f µs:\n"+
		"  waiting for a P (Go run queue, /sched/latencies: %d waits, mean %.0f µs, p99 %.2f ms) %.0f µs\n"+
		"  the auth-server's threads waiting for a CPU (kernel run queue, schedstat)      %.0f µs\n"+
		"  waiting for Redis replies (tollgate_redis_command_duration_seconds: %.2f commands, mean %.0f µs)  %.0f µs; in Redis itself (commandstats, all its clients) %.0f µs\n"+
		"   by command:%s\n"+
		"   rate-limit leases (two buckets per request): %.3f/grant waited for, %.3f/grant taken ahead of time\n"+
		"  blocked on sync.Mutex                                                           %.1f µs\n"+
		"  GC: %d cycles, %d stop-the-world pauses (mean %.2f ms, p99 %.2f ms); mark CPU assist %.0f / dedicated %.0f / idle %.0f µs per grant\n"+
		"  CPU per grant: test process (clients, this benchmark) %.0f µs, redis-server %.0f µs",
		ms(sumLat), clients, ms(wall), ms(sumLat)*1e3/n,
		uint64(sum64(rt.SchedCounts)), sched*1e6/math.Max(1, float64(sum64(rt.SchedCounts))), histQuantile(rt.SchedCounts, rt.SchedBuckets, 0.99)*1e3, sched*1e6/n,
		float64(t.serverRunDelay.Microseconds())/n,
		redisWaitCount/n, redisWait*1e6/math.Max(1, redisWaitCount), redisWait*1e6/n, t.redisCmd/n, byCmd.String(),
		t.leaseWaits/n, t.leasesAhead/n,
		rt.MutexWait*1e6/n,
		rt.GCCycles, pauses, histSum(rt.GCPauseCounts, rt.GCPauseBuckets)*1e3/math.Max(1, float64(pauses)), histQuantile(rt.GCPauseCounts, rt.GCPauseBuckets, 0.99)*1e3,
		rt.GCMarkAssist*1e6/n, rt.GCMarkDedicated*1e6/n, rt.GCMarkIdle*1e6/n,
		float64(t.clientCPU.Microseconds())/n, float64(t.redisCPU.Microseconds())/n)
}

func sum64(c []uint64) uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// match joins the client's samples with the access log and the GC cycles.
func (t *tailReport) match(byID map[string]struct {
	d   time.Duration
	end time.Time
}) {
	for i := range t.samples {
		s := &t.samples[i]
		l, ok := byID[s.id]
		if !ok {
			continue
		}
		t.matched++
		s.handler, s.end = l.d, l.end
		from := s.end.Add(-s.handler)
		for _, g := range t.gcs {
			if g.from.Before(s.end) && g.to.After(from) {
				s.gcOverlap = true
				break
			}
		}
	}
}

// runDelay is the time the threads of process pid have waited on a run
// queue so far (the second field of /proc/<pid>/task/*/schedstat, ns).
func runDelay(b *testing.B, pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(raw))
		if len(f) > 1 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sum += time.Duration(n)
		}
	}
	return sum
}

// redisStats reads redis-server's CPU time (INFO cpu) and its commands'
// count and execution time (INFO commandstats, µs).
func redisStats(b *testing.B, f *fleet) (cpu time.Duration, calls, usec float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := f.Redis.Client().Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		b.Fatalf("redis INFO: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_sys" || k == "used_cpu_user":
			s, _ := strconv.ParseFloat(v, 64)
			cpu += time.Duration(s * float64(time.Second))
		case strings.HasPrefix(k, "cmdstat_") && k != "cmdstat_info":
			for _, kv := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(kv, "=")
				x, _ := strconv.ParseFloat(val, 64)
				switch name {
				case "calls":
					calls += x
				case "usec":
					usec += x
				}
			}
		}
	}
	return cpu, calls, usec
}

// redisWait is the auth-server's tollgate_redis_command_duration_seconds
// in metrics by command (every result): seconds and commands.
func redisWait(m map[string]float64) map[string][2]float64 {
	out := map[string][2]float64{}
	for k, v := range m {
		i := strings.Index(k, `command="`)
		if i < 0 || !strings.HasPrefix(k, "tollgate_redis_command_duration_seconds_") {
			continue
		}
		cmd := k[i+len(`command="`):]
		cmd = cmd[:strings.IndexByte(cmd, '"')]
		e := out[cmd]
		switch {
		case strings.HasPrefix(k, "tollgate_redis_command_duration_seconds_sum"):
			e[0] += v
		case strings.HasPrefix(k, "tollgate_redis_command_duration_seconds_count"):
			e[1] += v
		}
		out[cmd] = e
	}
	return out
}
