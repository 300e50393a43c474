package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// OTLP protocols (OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	OTLPHTTP = "http/protobuf"
	OTLPGRPC = "grpc"
)

// Tracing is the OpenTelemetry trace export configuration, read from the
// standard OTEL_* environment variables of the OpenTelemetry specification
// ("Environment Variable Specification" and "OTLP Exporter Configuration").
// Tracing is off unless OTEL_TRACES_EXPORTER is "otlp" or an OTLP endpoint
// is set; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
//
// The variables are read through the service's getenv (not the process
// environment) so that tests configure in-process services like any other
// setting.
type Tracing struct {
	Enabled bool
	// Protocol is OTLPHTTP (the specification's default) or OTLPGRPC.
	Protocol string
	// Endpoint is the full URL traces are sent to: for OTLP/HTTP the
	// signal URL (…/v1/traces), for gRPC scheme://host:port (http means
	// plaintext). Empty means the exporter's default (localhost).
	Endpoint string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS), for
	// example an API key: never logged.
	Headers map[string]string
	// Timeout bounds one export (OTEL_EXPORTER_OTLP_TIMEOUT, milliseconds).
	Timeout time.Duration
	// ServiceName is OTEL_SERVICE_NAME, else the service's own name.
	ServiceName string
	// ResourceAttributes are OTEL_RESOURCE_ATTRIBUTES (key=value,…).
	ResourceAttributes map[string]string
	// Sampler is OTEL_TRACES_SAMPLER (default parentbased_always_on) and
	// SamplerArg its OTEL_TRACES_SAMPLER_ARG ratio for the *traceidratio samplers.
	Sampler    string
	SamplerArg float64
	// BatchDelay is how long spans wait to be exported in a batch
	// (OTEL_BSP_SCHEDULE_DELAY, milliseconds; default 5000).
	BatchDelay time.Duration
}

// Samplers supported in OTEL_TRACES_SAMPLER.
var samplers = map[string]bool{
	"always_on": true, "always_off": true, "traceidratio": true,
	"parentbased_always_on": true, "parentbased_always_off": true, "parentbased_traceidratio": true,
}

// signalKey is signal when that variable is set (it wins), else general.
func signalKey(s *Source, signal, general string) string {
	if s.String(signal, "") != "" {
		return signal
	}
	return general
}

// LoadTracing reads the OTEL_* trace settings; the signal-specific
// variables (OTEL_EXPORTER_OTLP_TRACES_*) win over the general ones.
func LoadTracing(s *Source, service string) Tracing {
	t := Tracing{ServiceName: s.String("OTEL_SERVICE_NAME", service)}
	exporter := strings.ToLower(s.String("OTEL_TRACES_EXPORTER", ""))
	traces := s.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	base := s.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	switch exporter {
	case "", "otlp", "none":
	default:
		s.problems.Addf("OTEL_TRACES_EXPORTER: %q is not supported (use otlp or none)", exporter)
	}
	t.Enabled = exporter == "otlp" || (exporter == "" && (traces != "" || base != ""))
	if s.Bool("OTEL_SDK_DISABLED", false) {
		t.Enabled = false
	}
	// Each problem names the variable that gave the value: the
	// signal-specific one when it is set, the general one otherwise.
	protocolKey := signalKey(s, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	t.Protocol = strings.ToLower(s.String(protocolKey, OTLPHTTP))
	if t.Protocol != OTLPHTTP && t.Protocol != OTLPGRPC {
		s.problems.Addf("%s: %q is not supported (use %s or %s)", protocolKey, t.Protocol, OTLPHTTP, OTLPGRPC)
	}
	endpointKey := signalKey(s, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	switch {
	case traces != "":
		t.Endpoint = traces
	case base != "" && t.Protocol == OTLPHTTP:
		// The general endpoint is a base URL: the signal path is appended.
		t.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
	default:
		t.Endpoint = base
	}
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			s.problems.Addf("%s: %q is not an absolute http(s) URL", endpointKey, t.Endpoint)
		}
	}
	t.Headers = keyValues(s, "OTEL_EXPORTER_OTLP_HEADERS", s.Secret("OTEL_EXPORTER_OTLP_HEADERS"))
	for k, v := range keyValues(s, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", s.Secret("OTEL_EXPORTER_OTLP_TRACES_HEADERS")) {
		t.Headers[k] = v
	}
	t.ResourceAttributes = keyValues(s, "OTEL_RESOURCE_ATTRIBUTES", s.String("OTEL_RESOURCE_ATTRIBUTES", ""))
	t.Timeout = 10 * time.Second
	timeoutKey := signalKey(s, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
	if ms := s.String(timeoutKey, ""); ms != "" {
		n, err := strconv.Atoi(ms)
		if err != nil || n <= 0 {
			s.problems.Addf("%s: %q is not a positive number of milliseconds", timeoutKey, ms)
		} else {
			t.Timeout = time.Duration(n) * time.Millisecond
		}
	}
	t.BatchDelay = 5 * time.Second
	if ms := s.String("OTEL_BSP_SCHEDULE_DELAY", ""); ms != "" {
		n, err := strconv.Atoi(ms)
		if err != nil || n <= 0 {
			s.problems.Addf("OTEL_BSP_SCHEDULE_DELAY: %q is not a positive number of milliseconds", ms)
		} else {
			t.BatchDelay = time.Duration(n) * time.Millisecond
		}
	}
	t.Sampler = strings.ToLower(s.String("OTEL_TRACES_SAMPLER", "parentbased_always_on"))
	if !samplers[t.Sampler] {
		s.problems.Addf("OTEL_TRACES_SAMPLER: %q is not supported (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)", t.Sampler)
	}
	t.SamplerArg = 1
	if arg := s.String("OTEL_TRACES_SAMPLER_ARG", ""); arg != "" && strings.HasSuffix(t.Sampler, "traceidratio") {
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			s.problems.Addf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio between 0 and 1", arg)
		} else {
			t.SamplerArg = f
		}
	}
	return t
}

// keyValues parses the W3C-baggage-like list the OTEL_* variables use:
// key=value pairs separated by commas, values percent-encoded.
func keyValues(s *Source, key, raw string) map[string]string {
	out := map[string]string{}
	for _, item := range strings.Split(raw, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if dv, err := url.PathUnescape(strings.TrimSpace(v)); err == nil {
			v = dv
		} else {
			ok = false
		}
		if !ok || k == "" {
			// The value may be a credential: name the position, not the text.
			s.problems.Addf("%s: an entry is not key=value", key)
			continue
		}
		out[k] = v
	}
	return out
}
