package clients

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"sigs.k8s.io/yaml"
)

// fileClient is one entry of the registry file (docs/operations/client-registry.md).
type fileClient struct {
	ClientID         string          `json:"client_id"`
	ClientName       string          `json:"client_name"`
	ClientSecretHash string          `json:"client_secret_hash,omitempty"`
	RedirectURIs     []string        `json:"redirect_uris"`
	GrantTypes       []string        `json:"grant_types,omitempty"`
	Scopes           []string        `json:"scopes,omitempty"`
	Resources        []string        `json:"resources"`
	AuthMethod       string          `json:"token_endpoint_auth_method"`
	RequirePKCE      *bool           `json:"require_pkce,omitempty"`
	SkipConsent      bool            `json:"skip_consent,omitempty"`
	JWKS             json.RawMessage `json:"jwks,omitempty"`
	JWKSURI          string          `json:"jwks_uri,omitempty"`
	// ResourceServer may introspect every token (RFC 7662).
	ResourceServer bool `json:"resource_server,omitempty"`
}

// Static is the registry of statically configured clients. Reload swaps
// the whole registry atomically; safe for concurrent use.
type Static struct {
	byID atomic.Pointer[map[string]*Client]
}

func newStatic(byID map[string]*Client) *Static {
	s := &Static{}
	s.byID.Store(&byID)
	return s
}

// Get returns the client with id, or ErrNotFound.
func (s *Static) Get(id string) (*Client, error) {
	if c, ok := (*s.byID.Load())[id]; ok {
		return c, nil
	}
	return nil, ErrNotFound
}

// Len is the number of clients.
func (s *Static) Len() int { return len(*s.byID.Load()) }

// HasHMACHashes reports whether a client's secret is stored as a keyed
// fast hash, which needs the server's client secret key to verify.
func (s *Static) HasHMACHashes() bool {
	for _, c := range *s.byID.Load() {
		if IsHMACHash(c.SecretHash) {
			return true
		}
	}
	return false
}

// Replace swaps in the clients of next (a freshly loaded registry).
// Requests that already hold a client finish with it; the next lookup
// sees the new registry, so a rotated secret's old hash is gone at once.
func (s *Static) Replace(next *Static) { s.byID.Store(next.byID.Load()) }

// LoadFile reads the registry at path (YAML or JSON). An empty path gives
// an empty registry. Every problem of every client is reported at once.
func LoadFile(path string, rules Rules) (*Static, []string) {
	s := newStatic(map[string]*Client{})
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return s, []string{fmt.Sprintf("CLIENTS_FILE: %v", err)}
	}
	return Parse(b, rules)
}

// Parse decodes and checks a registry document.
func Parse(b []byte, rules Rules) (*Static, []string) {
	byID := map[string]*Client{}
	s := newStatic(byID)
	var doc struct {
		Clients []fileClient `json:"clients"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		return s, []string{fmt.Sprintf("CLIENTS_FILE: %v", err)}
	}
	var problems []string
	for _, fc := range doc.Clients {
		c := &Client{
			ID: fc.ClientID, Name: fc.ClientName, SecretHash: []byte(fc.ClientSecretHash),
			RedirectURIs: fc.RedirectURIs, Grants: fc.GrantTypes, AllowedScope: fc.Scopes,
			Resources: fc.Resources, AuthMethod: fc.AuthMethod, RequirePKCE: true,
			SkipConsent: fc.SkipConsent, JWKSURI: fc.JWKSURI, Kind: KindStatic,
			ResourceServer: fc.ResourceServer,
		}
		if fc.RequirePKCE != nil {
			c.RequirePKCE = *fc.RequirePKCE
		}
		if c.Grants == nil {
			c.Grants = append([]string(nil), GrantTypes...)
		}
		if c.AllowedScope == nil {
			c.AllowedScope = slices.Clone(rules.SupportedScopes())
			c.AnyScope = rules.ScopeSource
		}
		if c.Name == "" {
			c.Name = c.ID
		}
		if len(fc.JWKS) > 0 {
			// Each member by exactly its name, as in a metadata document.
			if set, err := DecodeJWKS(fc.JWKS); err != nil {
				problems = append(problems, fmt.Sprintf("client %q: jwks %v", c.ID, err))
			} else {
				c.JWKS = set
			}
		}
		if strings.HasPrefix(c.ID, "https://") {
			problems = append(problems, fmt.Sprintf("client %q: https client ids are reserved for Client ID Metadata Documents", c.ID))
		}
		if strings.HasPrefix(c.ID, DynamicPrefix) {
			problems = append(problems, fmt.Sprintf("client %q: the prefix %q is reserved for dynamic registration", c.ID, DynamicPrefix))
		}
		if _, dup := byID[c.ID]; dup {
			problems = append(problems, fmt.Sprintf("client %q: defined twice", c.ID))
		}
		problems = append(problems, rules.Check(c)...)
		byID[c.ID] = c
	}
	return s, problems
}

// DynamicPrefix starts the id of every dynamically registered client.
const DynamicPrefix = "dcr-"

// Watch re-reads the registry at path every interval until ctx ends and
// swaps it in when its content changed (a mounted ConfigMap or Secret is
// updated in place). A registry with problems is refused as a whole and
// logged; the running one stays. accept, if set, may refuse a registry
// the server cannot serve (for example HMAC hashes without a key).
func (s *Static) Watch(ctx context.Context, path string, rules Rules, interval time.Duration, log *slog.Logger, accept func(*Static) error) {
	if path == "" || interval <= 0 {
		return
	}
	last := fileDigest(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := fileDigest(path)
		if d == last {
			continue
		}
		last = d
		next, problems := LoadFile(path, rules)
		if len(problems) == 0 && accept != nil {
			if err := accept(next); err != nil {
				problems = append(problems, err.Error())
			}
		}
		if len(problems) > 0 {
			log.Warn("client registry changed but was refused; the previous registry stays in use", "file", path, "problems", problems)
			continue
		}
		s.Replace(next)
		log.Info("client registry reloaded", "file", path, "clients", next.Len())
	}
}

func fileDigest(path string) [sha256.Size]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}
	}
	return sha256.Sum256(b)
}
