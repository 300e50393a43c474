package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/services/actions-api/internal/config"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// panicking is a capability-core connection whose every call panics, to
// prove that a panic anywhere under a handler becomes the one error shape.
type panicking struct{}

func (panicking) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	panic("kaboom in a handler")
}

func (panicking) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	panic("kaboom in a handler")
}

func TestPanicBecomesErrorShape(t *testing.T) {
	redis := testharness.StartRedis(t)
	reg, err := Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ins, err := newInstruments(prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{
		cfg: config.Config{RateLimitPerMinute: 10, PublicRateLimitPerMinute: 10, CoreTimeout: 5 * time.Second, MaxBodyBytes: 1 << 16, PrivacyPolicy: "p"},
		log: log, reg: reg, core: panicking{},
		limiter: ratelimit.New(redis.Client()), doc: []byte(`{}`), instruments: ins,
	}
	e, err := s.handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body Error
	if err := json.Unmarshal(b, &body); err != nil || res.StatusCode != 500 || body.Error != "server_error" || body.Description != "unexpected error" {
		t.Fatalf("panic answered %d %s, want 500 server_error", res.StatusCode, b)
	}
	if strings.Contains(string(b), "kaboom") {
		t.Error("the panic message reached the client")
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Error("the panic was not logged")
	}
}
