// Package config turns environment variables and mounted files into typed
// settings. Every service builds one struct from a Source and validates it
// with a Problems list, so an operator sees every mistake in one pass.
//
// Any secret setting X may instead be given as X_FILE, the path of a file
// holding the value (a mounted Kubernetes Secret, for example). Trailing
// newlines are trimmed.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Source reads settings. Parse failures are recorded, not returned, so that
// Load functions stay linear and Validate reports them with everything else.
type Source struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	problems Problems
}

// NewSource reads from getenv (os.Getenv in main, a map in tests).
func NewSource(getenv func(string) string) *Source {
	return &Source{getenv: getenv, readFile: os.ReadFile}
}

// MapEnv adapts a map to a getenv function.
func MapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// String returns the value of key, or def when it is unset or empty.
func (s *Source) String(key, def string) string {
	if v := strings.TrimSpace(s.getenv(key)); v != "" {
		return v
	}
	return def
}

// Secret returns key's value, or the content of the file named by key_FILE.
// Setting both is a problem: it is ambiguous which one is meant. So is a
// key_FILE that names an empty file (nothing but line breaks): a Secret
// made from a command that failed (`--from-file=k=<(kubectl … | base64
// -d)` when kubectl could not answer) mounts such a file, and taking it as
// "not set" would start the service on a default in its place — for
// CLIENT_SECRET_HMAC_KEY, a key derived from TOKEN_HMAC_SECRET under which
// no hash of the static registry verifies.
func (s *Source) Secret(key string) string {
	v, path := s.secret(key)
	if path != "" && v == "" {
		s.problems.Addf("%s_FILE: %q is empty: it must hold the value (unset %s_FILE when there is none)", key, path, key)
	}
	return v
}

// secret is Secret without the empty file's problem: the value and, when
// it was read from key_FILE, that file's path ("" otherwise, and when the
// file could not be read: that problem is recorded).
func (s *Source) secret(key string) (string, string) {
	v := s.getenv(key)
	path := strings.TrimSpace(s.getenv(key + "_FILE"))
	if path == "" {
		return v, ""
	}
	if v != "" {
		s.problems.Addf("%s and %s_FILE are both set; set one", key, key)
		return v, ""
	}
	b, err := s.readFile(path)
	if err != nil {
		s.problems.Addf("%s_FILE: cannot read %q: %v", key, path, errors.Unwrap(err))
		return "", ""
	}
	return strings.TrimRight(string(b), "\r\n"), path
}

// Bool parses key as a boolean (true/false/1/0/yes/no).
func (s *Source) Bool(key string, def bool) bool {
	v := strings.ToLower(s.String(key, ""))
	switch v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	s.problems.Addf("%s: %q is not a boolean (use true or false)", key, v)
	return def
}

// Int parses key as a decimal integer.
func (s *Source) Int(key string, def int) int {
	v := s.String(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		s.problems.Addf("%s: %q is not an integer", key, v)
		return def
	}
	return n
}

// Duration parses key as a Go duration ("15m", "720h").
func (s *Source) Duration(key string, def time.Duration) time.Duration {
	v := s.String(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.problems.Addf("%s: %q is not a duration (for example 30s, 15m, 720h)", key, v)
		return def
	}
	return d
}

// List splits key on commas, dropping empty items.
func (s *Source) List(key string, def []string) []string {
	return splitList(s.String(key, ""), def, ",")
}

// SecretList is List for a list of secrets: key's value, or the content of
// the file named by key_FILE (as Secret), split on commas and line breaks
// (a file may hold one item per line), dropping white space around items
// and empty items.
// An empty key_FILE is the empty list (def), as an unset key is: a list
// may have no items.
func (s *Source) SecretList(key string, def []string) []string {
	v, _ := s.secret(key)
	return splitList(v, def, ",\r\n")
}

// splitList splits v at any of seps; an empty (or all white space) v is def.
func splitList(v string, def []string, seps string) []string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	var out []string
	for _, item := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Problems returns the parse problems met so far.
func (s *Source) Problems() Problems { return s.problems }

// Problems collects configuration mistakes.
type Problems []string

// Addf records one problem.
func (p *Problems) Addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Err returns nil when there is no problem, else an error listing all of them.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Problems: append(Problems(nil), p...)}
}

// Error is an invalid configuration; its message lists every problem.
type Error struct{ Problems Problems }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

// Environment is where a service runs.
type Environment string

const (
	Development Environment = "development"
	Production  Environment = "production"
)

// Common holds the settings every service has.
type Common struct {
	Service         string
	Env             Environment
	LogLevel        slog.Level
	LogFormat       string // json or text
	AdminAddr       string
	Pprof           bool
	ShutdownTimeout time.Duration
	// Tracing is the OpenTelemetry export (OTEL_* variables; off when unset).
	Tracing Tracing
	// GRPCStreamWorkers is how many reused goroutines a gRPC server of the
	// service serves calls on (GRPC_STREAM_WORKERS; 0: a goroutine per call).
	GRPCStreamWorkers int
}

// StreamWorkers is GRPCStreamWorkers as grpcx.ServerOptions.StreamWorkers
// takes it (negative: none).
func (c Common) StreamWorkers() int {
	if c.GRPCStreamWorkers == 0 {
		return -1
	}
	return c.GRPCStreamWorkers
}

// LoadCommon reads TOLLGATE_ENV, LOG_LEVEL, LOG_FORMAT, ADMIN_ADDR,
// ADMIN_PPROF, SHUTDOWN_TIMEOUT, GRPC_STREAM_WORKERS and the OTEL_* trace
// settings (LoadTracing).
func LoadCommon(s *Source, service string) Common {
	c := Common{
		Service:         service,
		Env:             Environment(strings.ToLower(s.String("TOLLGATE_ENV", string(Development)))),
		LogFormat:       strings.ToLower(s.String("LOG_FORMAT", "json")),
		AdminAddr:       s.String("ADMIN_ADDR", ":9100"),
		Pprof:           s.Bool("ADMIN_PPROF", false),
		ShutdownTimeout: s.Duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		Tracing:         LoadTracing(s, service),
		// grpcx.DefaultStreamWorkers.
		GRPCStreamWorkers: s.Int("GRPC_STREAM_WORKERS", 64),
	}
	if c.GRPCStreamWorkers < 0 || c.GRPCStreamWorkers > 4096 {
		s.problems.Addf("GRPC_STREAM_WORKERS: %d is outside 0–4096", c.GRPCStreamWorkers)
	}
	if err := c.LogLevel.UnmarshalText([]byte(s.String("LOG_LEVEL", "info"))); err != nil {
		s.problems.Addf("LOG_LEVEL: %q is not a level (debug, info, warn, error)", s.String("LOG_LEVEL", ""))
	}
	return c
}

// Production reports whether the service must fail closed.
func (c Common) Production() bool { return c.Env == Production }

// Validate adds the problems of c to p.
func (c Common) Validate(p *Problems) {
	if c.Env != Development && c.Env != Production {
		p.Addf("TOLLGATE_ENV: %q is not development or production", c.Env)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.Addf("LOG_FORMAT: %q is not json or text", c.LogFormat)
	}
	if c.AdminAddr == "" {
		p.Addf("ADMIN_ADDR: must not be empty")
	}
	if c.ShutdownTimeout <= 0 {
		p.Addf("SHUTDOWN_TIMEOUT: must be positive")
	}
}

// PublicURL checks that raw is an absolute URL; in production it must use
// https. It returns the URL without a trailing slash.
func PublicURL(p *Problems, key, raw string, production bool) string {
	if raw == "" {
		p.Addf("%s: required", key)
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		p.Addf("%s: %q is not an absolute http(s) URL", key, raw)
		return raw
	}
	if production && u.Scheme != "https" {
		p.Addf("%s: %q must use https in production", key, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		p.Addf("%s: %q must not have a query or fragment", key, raw)
	}
	return strings.TrimRight(raw, "/")
}

// Origins checks a list of browser origins (ALLOWED_ORIGINS): each must be
// an explicit scheme://host[:port] — no wildcard, path, query or
// credentials — and https in production. It returns them normalised to
// lower case, the form browsers send in the Origin header.
func Origins(p *Problems, key string, list []string, production bool) []string {
	out := make([]string, 0, len(list))
	for _, o := range list {
		if strings.Contains(o, "*") {
			p.Addf("%s: %q is a wildcard; list every allowed origin explicitly", key, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			p.Addf("%s: %q is not an http(s) origin (scheme://host[:port])", key, o)
			continue
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			p.Addf("%s: %q must be an origin only, without path, query or credentials", key, o)
			continue
		}
		if production && u.Scheme != "https" {
			p.Addf("%s: %q must use https in production", key, o)
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out
}

// LegacySSEResource is the resource identifier of the legacy HTTP+SSE
// endpoint of the MCP server whose canonical resource is mcpResource: the
// URL a legacy client starts at (MCP_RESOURCE_URL with its final /mcp
// replaced by /sse; the origin's /sse when it does not end in /mcp). RFC
// 9728 §3.3 has a client that followed a 401 from /sse accept only
// protected resource metadata whose resource is that URL, so the gateway
// publishes metadata for it and the auth-server accepts it as a name of the
// MCP resource (docs/reference/oauth.md, "Resources and audiences").
// It returns "" for an mcpResource that is not an absolute URL.
func LegacySSEResource(mcpResource string) string {
	u, err := url.Parse(mcpResource)
	if err != nil || u.Host == "" {
		return ""
	}
	u.RawQuery, u.Fragment = "", ""
	if p, ok := strings.CutSuffix(strings.TrimRight(u.Path, "/"), "/mcp"); ok {
		u.Path = p + "/sse"
	} else {
		u.Path = "/sse"
	}
	return u.String()
}
