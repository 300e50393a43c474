package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/services/platform/admin"
)

func TestReadinessReflectsChecksAndDrain(t *testing.T) {
	ready := admin.NewReadiness(time.Second)
	up := true
	ready.Add("redis", func(context.Context) error {
		if up {
			return nil
		}
		return errors.New("connection refused")
	})
	ready.Add("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	srv := httptest.NewServer(admin.Handler(admin.Options{Gatherer: prometheus.NewRegistry(), Readiness: ready}))
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get("/healthz/live"); code != 200 {
		t.Errorf("live = %d", code)
	}
	code, body := get("/healthz/ready")
	if code != 503 || body["status"] != "down" {
		t.Errorf("ready with a hanging check = %d %v", code, body)
	}
	ready.Add("slow", func(context.Context) error { return nil })
	if code, _ := get("/healthz/ready"); code != 200 {
		t.Errorf("ready = %d", code)
	}
	up = false
	if code, _ := get("/healthz/ready"); code != 503 {
		t.Errorf("ready with redis down = %d", code)
	}
	up = true
	ready.Drain()
	if code, _ := get("/healthz/ready"); code != 503 {
		t.Errorf("ready while draining = %d", code)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("metrics = %d", code)
	}
	if resp, _ := http.Get(srv.URL + "/debug/pprof/"); resp.StatusCode != 404 {
		t.Errorf("pprof without opt-in = %d", resp.StatusCode)
	}
}
