package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
)

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	s := config.NewSource(config.MapEnv(map[string]string{
		"TOLLGATE_ENV":        "staging",
		"LOG_LEVEL":           "loud",
		"LOG_FORMAT":          "xml",
		"SHUTDOWN_TIMEOUT":    "soon",
		"ADMIN_PPROF":         "maybe",
		"REDIS_URL":           "http://redis",
		"GRPC_STREAM_WORKERS": "-1",
	}))
	c := config.LoadCommon(s, "svc")
	r := config.LoadRedis(s, false)
	p := s.Problems()
	c.Validate(&p)
	r.Validate(&p, false)
	config.PublicURL(&p, "PUBLIC_ISSUER_URL", "not a url", false)
	err := p.Err()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"TOLLGATE_ENV", "LOG_LEVEL", "LOG_FORMAT", "SHUTDOWN_TIMEOUT", "ADMIN_PPROF", "REDIS_URL", "PUBLIC_ISSUER_URL", "GRPC_STREAM_WORKERS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if len(ce.Problems) != 8 {
		t.Errorf("%d problems, want 8:\n%v", len(ce.Problems), err)
	}
}

// TestGRPCStreamWorkers: 64 reused goroutines unless GRPC_STREAM_WORKERS
// says otherwise; 0 turns them off (grpcx: a negative StreamWorkers);
// outside 0–4096 is refused.
func TestGRPCStreamWorkers(t *testing.T) {
	for _, tc := range []struct {
		env     string
		workers int
		problem bool
	}{{"", 64, false}, {"0", -1, false}, {"8", 8, false}, {"4096", 4096, false}, {"4097", 0, true}, {"-2", 0, true}, {"many", 64, true}} {
		s := config.NewSource(config.MapEnv(map[string]string{"GRPC_STREAM_WORKERS": tc.env}))
		c := config.LoadCommon(s, "svc")
		p := s.Problems()
		if got := len(p) > 0; got != tc.problem {
			t.Errorf("GRPC_STREAM_WORKERS=%q: problems %v, want a problem: %v", tc.env, p, tc.problem)
		}
		if !tc.problem && c.StreamWorkers() != tc.workers {
			t.Errorf("GRPC_STREAM_WORKERS=%q: StreamWorkers() = %d, want %d", tc.env, c.StreamWorkers(), tc.workers)
		}
	}
}

func TestProductionFailsClosed(t *testing.T) {
	var p config.Problems
	config.PublicURL(&p, "PUBLIC_ISSUER_URL", "http://tollgate.example.com", true)
	config.Redis{}.Validate(&p, true)
	config.Redis{URL: "redis://redis.internal:6379/0"}.Validate(&p, true)
	got := strings.Join(p, "\n")
	for _, want := range []string{"must use https in production", "REDIS_URL: required", "needs a password"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	p = nil
	config.PublicURL(&p, "PUBLIC_ISSUER_URL", "https://tollgate.example.com/", true)
	config.Redis{URL: "rediss://user:pw@redis.internal:6380/0"}.Validate(&p, true)
	if len(p) != 0 {
		t.Errorf("valid production settings refused: %v", p)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.NewSource(config.MapEnv(map[string]string{"A_FILE": path, "B": "x", "B_FILE": path, "C_FILE": filepath.Join(dir, "missing")}))
	if v := s.Secret("A"); v != "s3cret" {
		t.Errorf("A = %q", v)
	}
	s.Secret("B")
	s.Secret("C")
	got := strings.Join(s.Problems(), "\n")
	if !strings.Contains(got, "B and B_FILE are both set") || !strings.Contains(got, "C_FILE: cannot read") {
		t.Errorf("problems = %s", got)
	}
}

// An empty X_FILE is refused, not read as "X not set": a Secret made by
// a command that failed mounts an empty file, and the service would start
// on X's default (for CLIENT_SECRET_HMAC_KEY, a derived key no static
// hash verifies under). A list's empty file is the empty list.
func TestEmptySecretFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	newlines := filepath.Join(dir, "newlines")
	for path, body := range map[string]string{empty: "", newlines: "\n\r\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := config.NewSource(config.MapEnv(map[string]string{"A_FILE": empty, "B_FILE": newlines, "L_FILE": empty}))
	if v := s.Secret("A"); v != "" {
		t.Errorf("A = %q", v)
	}
	s.Secret("B")
	if l := s.SecretList("L", []string{"def"}); len(l) != 1 || l[0] != "def" {
		t.Errorf("L = %q, want the default", l)
	}
	got := s.Problems()
	want := []string{
		fmt.Sprintf("A_FILE: %q is empty: it must hold the value (unset A_FILE when there is none)", empty),
		fmt.Sprintf("B_FILE: %q is empty: it must hold the value (unset B_FILE when there is none)", newlines),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTypedValues(t *testing.T) {
	s := config.NewSource(config.MapEnv(map[string]string{"D": "90s", "L": " a, ,b ", "I": "7", "B": "yes"}))
	if s.Duration("D", 0) != 90*time.Second || s.Int("I", 0) != 7 || !s.Bool("B", false) || strings.Join(s.List("L", nil), "|") != "a|b" {
		t.Error("typed values misread")
	}
	if s.String("MISSING", "def") != "def" || len(s.Problems()) != 0 {
		t.Error("defaults misread")
	}
}

func TestOrigins(t *testing.T) {
	var p config.Problems
	got := config.Origins(&p, "ALLOWED_ORIGINS", []string{"https://ChatGPT.com", "https://chat.openai.com/", "http://localhost:4000"}, false)
	if strings.Join(got, " ") != "https://chatgpt.com https://chat.openai.com http://localhost:4000" || len(p) != 0 {
		t.Errorf("valid origins: %v %v", got, p)
	}
	p = nil
	got = config.Origins(&p, "ALLOWED_ORIGINS", []string{"*", "https://*.example.com", "chatgpt.com", "https://a.example/path", "https://u:p@a.example", "ftp://a.example", "http://a.example"}, true)
	if len(got) != 1 || len(p) != 7 {
		t.Errorf("got %v with %d problems, want 1 kept (with an https problem) and 7 problems:\n%s", got, len(p), strings.Join(p, "\n"))
	}
	for _, want := range []string{"wildcard", "not an http(s) origin", "origin only", "https in production"} {
		if !strings.Contains(strings.Join(p, "\n"), want) {
			t.Errorf("problems lack %q", want)
		}
	}
}

func TestLegacySSEResource(t *testing.T) {
	for in, want := range map[string]string{
		"https://mcp.example.com/mcp":    "https://mcp.example.com/sse",
		"https://mcp.example.com/x/mcp/": "https://mcp.example.com/x/sse",
		"http://localhost:4000/mcp":      "http://localhost:4000/sse",
		"https://mcp.example.com/":       "https://mcp.example.com/sse",
		"https://mcp.example.com/api/v1": "https://mcp.example.com/sse",
		"not a url":                      "",
	} {
		if got := config.LegacySSEResource(in); got != want {
			t.Errorf("LegacySSEResource(%q) = %q, want %q", in, got, want)
		}
	}
}
