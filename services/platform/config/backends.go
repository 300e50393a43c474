package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/keepalive"
)

// Backends are the gRPC services whose capabilities the connectors expose
// and whose scopes the auth-server supports: CAPABILITY_BACKENDS and the
// per-backend CAPABILITY_BACKEND_<NAME>_TLS* settings
// (docs/guides/bring-your-own-backend.md, docs/reference/configuration.md).
type Backends struct {
	// List is in the operator's order: on a conflict the earlier backend
	// wins (services/platform/registry/discovery.go).
	List []Backend
	// RefreshInterval is how often every backend's reflection is read
	// again (CAPABILITY_REFRESH_INTERVAL, default 30s).
	RefreshInterval time.Duration
}

// Backend is one configured backend.
type Backend struct {
	// Name labels the backend in logs and metrics and names its TLS
	// settings: lower-case letters, digits and '-', starting with a letter.
	Name string
	// Target is the gRPC target: host:port (DNS, every address used
	// round-robin) or dns:///host:port.
	Target string
	// TLS is nil for plaintext; otherwise the client TLS configuration,
	// with the client certificate for mTLS when one is configured.
	TLS *tls.Config
	// Keepalive is how the connection to the backend is pinged
	// (CAPABILITY_BACKEND_<NAME>_KEEPALIVE): nil is the fleet's own
	// setting (grpcx.Dial's default, KeepaliveFleet).
	Keepalive *keepalive.ClientParameters
}

// Values of CAPABILITY_BACKEND_<NAME>_KEEPALIVE besides a duration.
const (
	// KeepaliveFleet is the fleet's own setting (grpcx.KeepaliveTime 10 s,
	// grpcx.KeepaliveTimeout 2 s, pings without calls too): a dead peer is
	// noticed within 12 s even on an idle connection, but the backend must
	// permit pings 5 s apart without calls (grpcx.KeepalivePolicy). The
	// default for the backend at CORE_GRPC_ADDR, the fleet's capability-core.
	KeepaliveFleet = "fleet"
	// KeepaliveGRPCDefault fits gRPC's default server enforcement policy
	// (MinTime 5 minutes, no pings without calls; grpc-go, grpc-java and
	// gRPC core alike): pings only while calls are in flight, keepalive
	// time GRPCDefaultKeepaliveTime. The default for every other backend.
	KeepaliveGRPCDefault = "grpc-default"
)

// Keepalive parameters of a backend's connection.
const (
	// GRPCDefaultKeepaliveTime is the keepalive time of KeepaliveGRPCDefault:
	// gRPC's default policy's MinTime, so no ping is ever a strike.
	GRPCDefaultKeepaliveTime = 5 * time.Minute
	// BackendKeepaliveTimeout is how long a ping's acknowledgement is
	// awaited with KeepaliveGRPCDefault or a duration (gRPC's own default
	// client timeout, 20 s: a backend of one's own may be far away).
	BackendKeepaliveTimeout = 20 * time.Second
	// MinBackendKeepaliveTime is the shortest keepalive time a backend may
	// be given: grpcx.KeepaliveTime (10 s). grpc-go raises any shorter
	// time to 10 s anyway, and a server should permit half the client's
	// time for slack (grpcx.KeepaliveMinTime's reasoning).
	MinBackendKeepaliveTime = 10 * time.Second
)

// Bounds and default of CAPABILITY_REFRESH_INTERVAL.
const (
	DefaultBackendRefresh = 30 * time.Second
	MinBackendRefresh     = time.Second
	MaxBackendRefresh     = time.Hour
)

// ReservedBackend is the name of the implicit backend the connectors
// always discover at AUTH_GRPC_ADDR (the auth-server's GrantsService); no
// CAPABILITY_BACKENDS entry may take it.
const ReservedBackend = "auth-server"

// DefaultBackendName names the default backend, CORE_GRPC_ADDR.
const DefaultBackendName = "capability-core"

var backendNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// BackendEnvPrefix returns the prefix of name's per-backend variables:
// "CAPABILITY_BACKEND_" + NAME upper-cased with '-' as '_'.
func BackendEnvPrefix(name string) string {
	return "CAPABILITY_BACKEND_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
}

// LoadBackends reads CAPABILITY_BACKENDS (comma-separated "NAME=HOST:PORT"
// or "HOST:PORT" entries; default "capability-core=" + coreAddr when
// coreAddr is set), each backend's TLS settings and
// CAPABILITY_REFRESH_INTERVAL. Every mistake is recorded in s; the files
// named by the TLS settings are read now. With neither CAPABILITY_BACKENDS
// nor coreAddr the list is empty when optional, else that is a problem.
func LoadBackends(s *Source, coreAddr string, optional bool) Backends {
	b := Backends{RefreshInterval: s.Duration("CAPABILITY_REFRESH_INTERVAL", DefaultBackendRefresh)}
	if b.RefreshInterval < MinBackendRefresh || b.RefreshInterval > MaxBackendRefresh {
		s.problems.Addf("CAPABILITY_REFRESH_INTERVAL: %s is outside [%s, %s]", b.RefreshInterval, MinBackendRefresh, MaxBackendRefresh)
	}
	entries := s.List("CAPABILITY_BACKENDS", nil)
	if len(entries) == 0 {
		switch {
		case coreAddr != "":
			// CORE_GRPC_ADDR as it is (it may be a comma-separated list
			// of addresses; see grpcx.Dial), plaintext.
			b.List = []Backend{{Name: DefaultBackendName, Target: coreAddr}}
		case !optional:
			s.problems.Addf("CAPABILITY_BACKENDS: required (comma-separated NAME=HOST:PORT gRPC targets; defaults to capability-core=CORE_GRPC_ADDR when CORE_GRPC_ADDR is set)")
		}
		return b
	}
	names, targets := map[string]bool{}, map[string]string{}
	for _, e := range entries {
		name, target, named := strings.Cut(e, "=")
		if !named {
			name, target = "", e
		}
		name, target = strings.TrimSpace(name), strings.TrimSpace(target)
		host, err := targetHost(target)
		if err != nil {
			s.problems.Addf("CAPABILITY_BACKENDS: %q: %v", e, err)
			continue
		}
		if !named {
			name = strings.ToLower(strings.SplitN(host, ".", 2)[0])
			if !backendNameRE.MatchString(name) {
				s.problems.Addf("CAPABILITY_BACKENDS: %q: cannot name the backend after its host; write NAME=%s", e, target)
				continue
			}
		}
		switch {
		case !backendNameRE.MatchString(name):
			s.problems.Addf("CAPABILITY_BACKENDS: %q: name %q must be lower-case letters, digits and '-', starting with a letter, at most 40 characters", e, name)
			continue
		case name == ReservedBackend:
			s.problems.Addf("CAPABILITY_BACKENDS: %q: the name %q is reserved (the auth-server is always a backend, at AUTH_GRPC_ADDR)", e, name)
			continue
		case names[name]:
			s.problems.Addf("CAPABILITY_BACKENDS: backend name %q appears twice", name)
			continue
		}
		if prev, dup := targets[target]; dup {
			s.problems.Addf("CAPABILITY_BACKENDS: backends %q and %q have the same target %s", prev, name, target)
			continue
		}
		names[name], targets[target] = true, name
		def := KeepaliveGRPCDefault
		if target == coreAddr {
			def = KeepaliveFleet
		}
		b.List = append(b.List, Backend{Name: name, Target: target, TLS: loadBackendTLS(s, name, host), Keepalive: loadBackendKeepalive(s, name, def)})
	}
	return b
}

// targetHost checks a target and returns its host.
func targetHost(target string) (string, error) {
	hp := strings.TrimPrefix(target, "dns:///")
	if strings.Contains(hp, "://") {
		return "", fmt.Errorf("only host:port and dns:///host:port targets are supported")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("not a host:port gRPC target")
	}
	return host, nil
}

// loadBackendKeepalive reads CAPABILITY_BACKEND_<NAME>_KEEPALIVE (fleet,
// grpc-default or a keepalive time; def when unset) and, with a time,
// _KEEPALIVE_PERMIT_WITHOUT_STREAM (default false).
func loadBackendKeepalive(s *Source, name, def string) *keepalive.ClientParameters {
	p := BackendEnvPrefix(name)
	v := strings.TrimSpace(s.String(p+"KEEPALIVE", def))
	permit := s.String(p+"KEEPALIVE_PERMIT_WITHOUT_STREAM", "")
	switch v {
	case KeepaliveFleet, KeepaliveGRPCDefault:
		if permit != "" {
			s.problems.Addf("%sKEEPALIVE_PERMIT_WITHOUT_STREAM: set for backend %q, whose keepalive %q fixes it; it goes with a keepalive time (%sKEEPALIVE=1m, for example)", p, name, v, p)
		}
		if v == KeepaliveFleet {
			return nil
		}
		return &keepalive.ClientParameters{Time: GRPCDefaultKeepaliveTime, Timeout: BackendKeepaliveTimeout}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.problems.Addf("%sKEEPALIVE: %q for backend %q is not %s, %s or a keepalive time (a duration such as 1m)", p, v, name, KeepaliveFleet, KeepaliveGRPCDefault)
		return nil
	}
	if d < MinBackendKeepaliveTime {
		s.problems.Addf("%sKEEPALIVE: keepalive time %s for backend %q is under %s (gRPC clients ping at most every %s; the backend must permit half the time)", p, v, name, MinBackendKeepaliveTime, MinBackendKeepaliveTime)
		return nil
	}
	return &keepalive.ClientParameters{Time: d, Timeout: BackendKeepaliveTimeout, PermitWithoutStream: s.Bool(p+"KEEPALIVE_PERMIT_WITHOUT_STREAM", false)}
}

// loadBackendTLS reads CAPABILITY_BACKEND_<NAME>_TLS, _TLS_CA_FILE,
// _TLS_CERT_FILE, _TLS_KEY_FILE and _TLS_SERVER_NAME.
func loadBackendTLS(s *Source, name, host string) *tls.Config {
	p := BackendEnvPrefix(name)
	ca, cert, key := s.String(p+"TLS_CA_FILE", ""), s.String(p+"TLS_CERT_FILE", ""), s.String(p+"TLS_KEY_FILE", "")
	serverName := s.String(p+"TLS_SERVER_NAME", "")
	implied := ca != "" || cert != "" || key != "" || serverName != ""
	on := s.Bool(p+"TLS", implied)
	if !on {
		if implied {
			s.problems.Addf("%sTLS is false but TLS files or a server name are set for backend %q", p, name)
		}
		return nil
	}
	if serverName == "" {
		serverName = host
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if ca != "" {
		pool, err := LoadCAFile(ca)
		if err != nil {
			s.problems.Addf("%sTLS_CA_FILE: %v", p, err)
		}
		c.RootCAs = pool
	}
	switch {
	case cert != "" && key != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			s.problems.Addf("%sTLS_CERT_FILE/%sTLS_KEY_FILE: %v", p, p, err)
		}
		c.Certificates = []tls.Certificate{pair}
	case cert != "" || key != "":
		s.problems.Addf("%sTLS_CERT_FILE and %sTLS_KEY_FILE: set both for mTLS, or neither", p, p)
	}
	return c
}
