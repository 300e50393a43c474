package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkTokenEndpointFlood is the token endpoint of a real auth-server
// process (startFleetProcess: real Redis, real HTTP, dev-init's secrets)
// serving the real fast-hash client (gpt-apps-mcp, refresh_token grants
// from TOLLGATE_BENCH_FLOOD_CLIENTS concurrent clients, default 4) while a
// flood of wrong bcrypt secrets (an operator client's, bcrypt cost 10)
// keeps TOLLGATE_BENCH_FLOOD_IN_FLIGHT requests (default 12) in flight,
// each from a new client address behind the trusted proxy — the
// per-(client, address) back-off never slows it. In the same run, on the
// same process, the same grants are measured without the flood first. One
// case per bound of the bcrypt checks:
//
//	slow-checks=cpus  the old default: one check per CPU
//	slow-checks=half  the default bound: half the CPUs, at least one
//
// Each case reports, for the fast-hash client, quiet-grants/s,
// quiet-p50-ms, quiet-p99-ms, then grants/s, p50-ms, p99-ms under the
// flood and their ratios (p50-vs-quiet, p99-vs-quiet, grants/s-vs-quiet),
// and for the flood: bcrypt-checks/s run, busy/s (503, not run), the most
// checks in flight at once (the server's own count), the auth-server's
// CPU per second of the flood window (cpu-cores) and the 1-minute load
// average at the start (loadavg-1m: figures taken on a loaded machine
// mean little). A flood request answered 503 is sent again after
// TOLLGATE_BENCH_FLOOD_BUSY_PAUSE (default 50ms): the flood keeps the
// slots full without becoming a flood of cheap refusals, which the address
// limit, not the bcrypt bound, is for.
//
// TOLLGATE_BENCH_GRANTS sets the grants per measurement (default 200).
func BenchmarkTokenEndpointFlood(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("process CPU time is read from /proc")
	}
	grants := envInt("TOLLGATE_BENCH_GRANTS", 200)
	clients := envInt("TOLLGATE_BENCH_FLOOD_CLIENTS", 4)
	inFlight := envInt("TOLLGATE_BENCH_FLOOD_IN_FLIGHT", 12)
	pause := 50 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("TOLLGATE_BENCH_FLOOD_BUSY_PAUSE")); err == nil {
		pause = d
	}
	cpus := runtime.GOMAXPROCS(0)
	half := max(1, cpus/2)
	for _, c := range []struct {
		name  string
		slots int
	}{
		{"slow-checks=cpus", cpus},
		{"slow-checks=half", half},
	} {
		// Measured once: a benchmark function run again (the testing
		// package does, while a run is shorter than -benchtime) reports
		// the same figures.
		var report func(b *testing.B)
		b.Run(c.name, func(b *testing.B) {
			if report == nil {
				report = measureFlood(b, c.slots, clients, grants, inFlight, pause)
			}
			report(b)
		})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// floodClientID is the operator (bcrypt) client the flood names.
const floodClientID = "flood-ops"

func measureFlood(b *testing.B, slots, clients, grants, inFlight int, pause time.Duration) func(*testing.B) {
	load := loadAverage()
	f, proc := startFleetProcess(b, map[string]string{
		"LOG_LEVEL": benchLogLevel(), "LOG_FORMAT": "json",
		"RATE_LIMIT_TOKEN_PER_MINUTE": "10000000", "RATE_LIMIT_AUTHORIZE_PER_MINUTE": "10000000",
		"RATE_LIMIT_TOKEN_PER_ADDRESS_PER_MINUTE": "10000000",
		"SIGNING_QUEUE_WAIT":                      "1m",
		// The benchmark's connections come from loopback, the proxy: the
		// flood's X-Forwarded-For names a new client address per request.
		"TRUSTED_PROXIES":           "127.0.0.1/32",
		"CLIENT_SECRET_SLOW_CHECKS": strconv.Itoa(slots),
		// The operator client is added to the registry after start.
		"CLIENTS_FILE_RELOAD_INTERVAL": "200ms",
	})
	addBcryptClient(b, f)
	quiet := loadTokenEndpoint(b, f, proc, "refresh_token", clients, grants)

	ctx, stop := context.WithCancel(context.Background())
	fl := startWrongSecretFlood(ctx, f, inFlight, pause)
	// The slots fill within one check; the window starts once they have.
	waitMetric(b, f, "tollgate_auth_client_secret_slow_checks_in_flight", float64(slots))
	m0 := metricsAt(b, f.adminMetricsURL())
	flooded := loadTokenEndpoint(b, f, proc, "refresh_token", clients, grants)
	m1 := metricsAt(b, f.adminMetricsURL())
	stop()
	fl.wait()
	if n := fl.accepted.Load(); n > 0 {
		b.Errorf("%d wrong secrets accepted during the flood", n)
	}
	if n := fl.other.Load(); n > 0 {
		b.Errorf("%d flood requests answered neither 401 nor 503 (last: %s)", n, fl.last.Load())
	}
	secs := flooded.wall.Seconds()
	checks := (m1["tollgate_auth_client_secret_slow_checks_total"] - m0["tollgate_auth_client_secret_slow_checks_total"]) / secs
	busy := (m1["tollgate_auth_client_secret_slow_checks_busy_total"] - m0["tollgate_auth_client_secret_slow_checks_busy_total"]) / secs
	most := m1["tollgate_auth_client_secret_slow_checks_in_flight_max"]
	if most > float64(slots) {
		b.Errorf("%v bcrypt checks ran at once, bound %d", most, slots)
	}
	rate := func(r loadResult) float64 { return float64(r.grants) / r.wall.Seconds() }
	b.Logf("slots %d, load average %.1f: fast-hash client p50 %.1f → %.1f ms (×%.1f), p99 %.1f → %.1f ms (×%.1f), %.0f → %.0f grants/s; flood: %.1f bcrypt checks/s, %.0f busy/s, at most %v in flight",
		slots, load, ms(quiet.p50), ms(flooded.p50), float64(flooded.p50)/float64(quiet.p50),
		ms(quiet.p99), ms(flooded.p99), float64(flooded.p99)/float64(quiet.p99), rate(quiet), rate(flooded), checks, busy, most)
	return func(b *testing.B) {
		b.ReportMetric(float64(flooded.wall.Nanoseconds())/float64(flooded.grants), "ns/op")
		b.ReportMetric(float64(slots), "slow-checks")
		b.ReportMetric(load, "loadavg-1m")
		b.ReportMetric(rate(quiet), "quiet-grants/s")
		b.ReportMetric(ms(quiet.p50), "quiet-p50-ms")
		b.ReportMetric(ms(quiet.p99), "quiet-p99-ms")
		b.ReportMetric(rate(flooded), "grants/s")
		b.ReportMetric(ms(flooded.p50), "p50-ms")
		b.ReportMetric(ms(flooded.p99), "p99-ms")
		b.ReportMetric(float64(flooded.p50)/float64(quiet.p50), "p50-vs-quiet")
		b.ReportMetric(float64(flooded.p99)/float64(quiet.p99), "p99-vs-quiet")
		b.ReportMetric(rate(flooded)/rate(quiet), "grants/s-vs-quiet")
		b.ReportMetric(checks, "bcrypt-checks/s")
		b.ReportMetric(busy, "busy/s")
		b.ReportMetric(most, "max-in-flight")
		b.ReportMetric(flooded.cpu.Seconds()/secs, "cpu-cores")
	}
}

// addBcryptClient adds the flood's operator client (bcrypt, cost 10 as
// an operator's hash usually is) to the running auth-server's registry
// and waits until it authenticates.
func addBcryptClient(b *testing.B, f *fleet) {
	h, err := bcrypt.GenerateFromPassword([]byte("operator-chosen-secret"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := os.OpenFile(filepath.Join(f.Dir, "clients.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	_, err = fmt.Fprintf(reg, `- client_id: %s
  client_name: Operator client
  client_secret_hash: %q
  redirect_uris: ["https://ops.example/cb"]
  token_endpoint_auth_method: client_secret_post
  resources: [%q]
`, floodClientID, h, f.Base+"/mcp")
	if cerr := reg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	ops := devClient{ClientID: floodClientID}
	for range 300 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "operator-chosen-secret", badRefresh())}); r.Error == "invalid_grant" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatal("the operator client was not in the registry 30 s after it was added")
}

// wrongSecretFlood is a running flood of wrong bcrypt secrets.
type wrongSecretFlood struct {
	wg                             sync.WaitGroup
	checked, busy, accepted, other atomic.Int64
	last                           atomic.Value // string: the last unexpected answer
}

func (fl *wrongSecretFlood) wait() { fl.wg.Wait() }

// startWrongSecretFlood keeps inFlight wrong-secret requests for the
// operator client in flight until ctx ends, each from a client address of
// its own (X-Forwarded-For); one answered 503 is sent again after pause.
func startWrongSecretFlood(ctx context.Context, f *fleet, inFlight int, pause time.Duration) *wrongSecretFlood {
	fl := &wrongSecretFlood{}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
	var n atomic.Int64
	for range inFlight {
		fl.wg.Add(1)
		go func() {
			defer fl.wg.Done()
			for ctx.Err() == nil {
				i := n.Add(1)
				form := postCreds(devClient{ClientID: floodClientID}, "flood-"+strconv.FormatInt(i, 10), badRefresh())
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fl.other.Add(1)
						fl.last.Store(err.Error())
						time.Sleep(pause)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusUnauthorized:
					fl.checked.Add(1)
				case http.StatusServiceUnavailable:
					fl.busy.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				case http.StatusOK, http.StatusBadRequest:
					fl.accepted.Add(1)
				default:
					fl.other.Add(1)
					fl.last.Store(resp.Status)
				}
			}
		}()
	}
	return fl
}

// waitMetric waits (up to 60 s) until the auth-server's metric name
// reaches at least v.
func waitMetric(b *testing.B, f *fleet, name string, v float64) {
	for range 600 {
		if metricsAt(b, f.adminMetricsURL())[name] >= v {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s did not reach %v within 60 s", name, v)
}

// loadAverage is the machine's 1-minute load average (/proc/loadavg).
func loadAverage() float64 {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
