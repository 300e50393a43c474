package api_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkSession measures the hot path of a protected operation over real
// HTTP: bearer extraction, the verified-token cache, the Redis rate limit
// and the gRPC call to capability-core.
func BenchmarkSession(b *testing.B) {
	f := start(b, map[string]string{"RATE_LIMIT_PER_MINUTE": "100000000", "LOG_LEVEL": "warn"})
	req, err := http.NewRequest(http.MethodGet, f.base+"/actions/session", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token(b, allScopes))
	b.ReportAllocs()
	for b.Loop() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}
