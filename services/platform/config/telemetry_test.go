package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
)

func tracing(env map[string]string) (config.Tracing, config.Problems) {
	s := config.NewSource(config.MapEnv(env))
	t := config.LoadTracing(s, "svc")
	return t, s.Problems()
}

func TestTracingSettings(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		enabled  bool
		endpoint string
		protocol string
	}{
		{"unset", nil, false, "", config.OTLPHTTP},
		{"base endpoint gets the signal path", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, true, "http://collector:4318/v1/traces", config.OTLPHTTP},
		{"traces endpoint is used as is", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/x"}, true, "https://b/x", config.OTLPHTTP},
		{"grpc keeps the base", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "http://collector:4317", config.OTLPGRPC},
		{"exporter otlp alone uses the default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "", config.OTLPHTTP},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, "http://c:4318/v1/traces", config.OTLPHTTP},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, "http://c:4318/v1/traces", config.OTLPHTTP},
	}
	for _, c := range cases {
		got, p := tracing(c.env)
		if len(p) > 0 || got.Enabled != c.enabled || got.Endpoint != c.endpoint || got.Protocol != c.protocol {
			t.Errorf("%s: %+v %v", c.name, got, p)
		}
	}
	got, _ := tracing(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "edge-1",
		"OTEL_RESOURCE_ATTRIBUTES":   "deployment.environment=prod,team=id%20p",
		"OTEL_EXPORTER_OTLP_HEADERS": "api-key=k1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=t",
		"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
		"OTEL_BSP_SCHEDULE_DELAY": "200",
	})
	if got.ServiceName != "edge-1" || got.ResourceAttributes["team"] != "id p" || got.Headers["api-key"] != "k1" || got.Headers["x-tenant"] != "t" ||
		got.Timeout != 2500*time.Millisecond || got.SamplerArg != 0.25 || got.BatchDelay != 200*time.Millisecond {
		t.Errorf("settings not read: %+v", got)
	}
}

func TestBadTracingSettingsAreProblems(t *testing.T) {
	_, p := tracing(map[string]string{
		"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
		"OTEL_EXPORTER_OTLP_HEADERS": "api-key-s3cret", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_TRACES_SAMPLER": "sometimes",
		"OTEL_TRACES_SAMPLER_ARG": "2", "OTEL_BSP_SCHEDULE_DELAY": "-1",
	})
	msg := p.Err().Error()
	for _, want := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_TRACES_SAMPLER:", "OTEL_BSP_SCHEDULE_DELAY"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no problem about %s:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("a header value reached the error:\n%s", msg)
	}
}

// TestBadSignalSpecificOTelSettingIsNamed: a bad OTEL_EXPORTER_OTLP_TRACES_*
// value is refused naming that variable, not the general one the operator
// may not have set; a bad general one still names the general one.
func TestBadSignalSpecificOTelSettingIsNamed(t *testing.T) {
	for key, val := range map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "notaurl",
		"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT":  "abc",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "notaurl",
		"OTEL_EXPORTER_OTLP_TIMEOUT":         "-5",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/json",
	} {
		s := config.NewSource(config.MapEnv(map[string]string{key: val}))
		config.LoadTracing(s, "svc")
		if got := strings.Join(s.Problems(), "\n"); !strings.HasPrefix(got, key+": ") || strings.Contains(got, "\n") {
			t.Errorf("%s=%s: problems %q; want one naming %s", key, val, got, key)
		}
	}
}
