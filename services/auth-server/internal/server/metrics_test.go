package server_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// metricsAt reads the Prometheus text exposition at url (an admin
// /metrics): every sample, keyed by its name and labels as written —
// `tollgate_auth_errors_total{endpoint="token",error="invalid_client"}`,
// `go_gc_duration_seconds_count` — with its value. Comment lines are
// skipped; a line without a value fails the test.
func metricsAt(tb testing.TB, url string) map[string]float64 {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("metrics at %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("metrics at %s: %d %v", url, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			tb.Fatalf("metrics at %s: %q has no value", url, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("metrics at %s: %q: %v", url, line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// adminMetricsURL is the /metrics of an auth-server the benchmark started
// as a process of its own (ADMIN_ADDR, a listener it handed over).
func (f *fleet) adminMetricsURL() string { return "http://" + f.env["ADMIN_ADDR"] + "/metrics" }
