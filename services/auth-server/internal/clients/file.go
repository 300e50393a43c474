package clients

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
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
	// ResourceServer may introspect every access token (RFC 7662); a
	// refresh token only its own client.
	ResourceServer bool `json:"resource_server,omitempty"`
}

// Static is the registry of statically configured clients. Reload swaps
// the whole registry atomically; safe for concurrent use.
type Static struct {
	byID atomic.Pointer[map[string]*Client]
	// refused is set by Watch while the file on disk is refused (Refused).
	refused atomic.Pointer[Refusal]
	// warnEvery, when set (tests), replaces refusedWarnEvery.
	warnEvery time.Duration
	// readFile, when set (tests), replaces os.ReadFile in Watch.
	readFile func(path string) ([]byte, error)
	// loaded is the fingerprint of the file as LoadFile read it (the
	// SHA-256 of the bytes parsed, zero if the read failed), Watch's
	// starting point; fromFile reports that LoadFile set it.
	loaded   [sha256.Size]byte
	fromFile bool
	// listed is what the file says of each client's scopes, by client id:
	// Client.AllowedScope of a client that lists none is the supported
	// scopes of the moment it was loaded, not a setting of the file.
	listed atomic.Pointer[map[string]scopeListing]
}

// scopeListing is a client's scopes member as the registry file has it:
// absent ("all supported", listed false), or the list it names.
type scopeListing struct {
	listed bool
	scopes []string
}

// same reports whether a and b say the same: both absent, or both lists
// of the same scopes (their order means nothing: scope is a set, RFC 6749
// §3.3).
func (a scopeListing) same(b scopeListing) bool {
	if a.listed != b.listed {
		return false
	}
	x, y := slices.Clone(a.scopes), slices.Clone(b.scopes)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func newStatic(byID map[string]*Client) *Static {
	s := &Static{}
	s.byID.Store(&byID)
	listed := map[string]scopeListing{}
	for id, c := range byID {
		listed[id] = scopeListing{listed: true, scopes: c.AllowedScope}
	}
	s.listed.Store(&listed)
	return s
}

// Refusal is the state of a registry file whose change Watch refused: the
// clients in use are those of the last file accepted.
type Refusal struct {
	// Since is when the file was first refused (a later refused change
	// keeps it).
	Since time.Time
	// Problems are those of the file on disk, as last read.
	Problems []string
}

// Refused is the refusal of the registry file on disk, nil while the
// registry in use is the file's content (none was refused since the last
// accepted reload, or the start).
func (s *Static) Refused() *Refusal { return s.refused.Load() }

// Get returns the client with id, or ErrNotFound.
func (s *Static) Get(id string) (*Client, error) {
	if c, ok := (*s.byID.Load())[id]; ok {
		return c, nil
	}
	return nil, ErrNotFound
}

// HasJWKSURI reports whether uri is the jwks_uri of a client of the
// registry (now: a reload counts from the next call). A nil registry has
// none. The registry is the operator's, a few hundred clients at most: a
// scan, at each private_key_jwt assertion verified with a jwks_uri.
func (s *Static) HasJWKSURI(uri string) bool {
	if s == nil || uri == "" {
		return false
	}
	for _, c := range *s.byID.Load() {
		if c.JWKSURI == uri {
			return true
		}
	}
	return false
}

// Len is the number of clients.
func (s *Static) Len() int { return len(*s.byID.Load()) }

// UnsupportedScopes lists, as "client_id scope", each scope a client of
// the registry allows that supported does not hold (the rule Rules.Check
// applies, Client.unsupportedScopes), sorted.
func (s *Static) UnsupportedScopes(supported []string) []string {
	var out []string
	for id, c := range *s.byID.Load() {
		for _, sc := range c.unsupportedScopes(supported) {
			out = append(out, id+" "+sc)
		}
	}
	slices.Sort(out)
	return out
}

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
func (s *Static) Replace(next *Static) {
	s.byID.Store(next.byID.Load())
	s.listed.Store(next.listed.Load())
}

// LoadFile reads the registry at path (YAML or JSON). An empty path gives
// an empty registry. Every problem of every client is reported at once.
// The registry remembers the fingerprint of the bytes it was parsed from,
// from which Watch starts.
func LoadFile(path string, rules Rules) (*Static, []string) {
	s := newStatic(map[string]*Client{})
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		s.fromFile = true // a failed read fingerprints as zero, as in Watch
		return s, []string{err.Error()}
	}
	s, problems := parse(b, rules, path)
	s.loaded, s.fromFile = sha256.Sum256(b), true
	return s, problems
}

// Parse decodes and checks a registry document.
func Parse(b []byte, rules Rules) (*Static, []string) { return parse(b, rules, "") }

// parse is Parse of the document read from the file path ("" when none:
// the problems then name no file).
func parse(b []byte, rules Rules, path string) (*Static, []string) {
	byID := map[string]*Client{}
	s := newStatic(byID)
	listed := *s.listed.Load()
	var doc struct {
		Clients []fileClient `json:"clients"`
	}
	problems := miscasedFields(b, path)
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		return s, append(problems, err.Error())
	}
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
				c.setJWKS(set)
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
		listed[c.ID] = scopeListing{listed: fc.Scopes != nil, scopes: slices.Clone(fc.Scopes)}
	}
	return s, problems
}

// fileFields are the registry's field names: "clients" in the document,
// fileClient's (its json tags) in each client.
var (
	fileFields   = []string{"clients"}
	clientFields = func() []string {
		var names []string
		t := reflect.TypeFor[fileClient]()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			names = append(names, name)
		}
		return names
	}()
)

// miscasedFields returns a problem for each field of the registry document
// b — in the document or in a client — whose name is a known field's in
// another letter case ("Client_Id", "REDIRECT_URIS"): the YAML decoder
// (sigs.k8s.io/yaml through encoding/json) matches field names without
// regard to case and would take it silently, while the registry's names,
// like the RFC 7591 metadata they mirror, are exact. Each problem names
// the file (path, when there is one), the client (by its client_id, as
// written under any spelling, and its position, 1-based), the field as
// written and the expected spelling. A document that does not decode gives
// none here: the decoder reports it. A client's jwks is a JWK Set, read by
// DecodeJWKS under its own rules, and is not looked into.
func miscasedFields(b []byte, path string) []string {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(j, &doc) != nil {
		return nil
	}
	where := ""
	if path != "" {
		where = path + ": "
	}
	var problems []string
	miscased := func(context string, members map[string]json.RawMessage, known []string) {
		for _, name := range slices.Sorted(maps.Keys(members)) {
			for _, k := range known {
				if name != k && strings.EqualFold(name, k) {
					problems = append(problems, fmt.Sprintf("%s%sfield %q is spelled %q: field names are case-sensitive, and one that differs from a field only in letter case is refused",
						where, context, name, k))
				}
			}
		}
	}
	miscased("", doc, fileFields)
	var list []json.RawMessage
	if v, ok := doc["clients"]; ok {
		_ = json.Unmarshal(v, &list)
	} else {
		for name, v := range doc {
			if strings.EqualFold(name, "clients") {
				_ = json.Unmarshal(v, &list)
			}
		}
	}
	for i, raw := range list {
		var members map[string]json.RawMessage
		if json.Unmarshal(raw, &members) != nil {
			continue
		}
		id := ""
		if v, ok := members["client_id"]; ok {
			_ = json.Unmarshal(v, &id)
		} else {
			for name, v := range members {
				if strings.EqualFold(name, "client_id") {
					_ = json.Unmarshal(v, &id)
				}
			}
		}
		miscased(fmt.Sprintf("client %q (entry %d): ", id, i+1), members, clientFields)
	}
	return problems
}

// DynamicPrefix starts the id of every dynamically registered client.
const DynamicPrefix = "dcr-"

// RecordRemovals records that the clients ids were removed from the
// registry at at, fleet-wide (revocation.Revoker.RemoveClients). It is
// called again with the same arguments until it returns nil.
type RecordRemovals func(ctx context.Context, at time.Time, ids []string) error

// removalRecordTimeout bounds one attempt of RecordRemovals.
const removalRecordTimeout = 5 * time.Second

// removalFollowUp is how long after the swap a removal is recorded once
// more, with the time of that second record, if the client is still
// absent: a token request that looked the client up just before the swap
// may sign its access token a little later (a wait for a signing turn,
// Redis round trips), with an iat after the first record's time; the
// second record covers it. A client added back before then gets no second
// record, so its new tokens are not refused. A variable for tests.
var removalFollowUp = 5 * time.Second

// removal is a diff of a reload not recorded yet.
type removal struct {
	at  time.Time
	ids []string
}

// Watch re-reads the registry at path every interval until ctx ends and
// swaps it in when its content changed (a mounted ConfigMap or Secret is
// updated in place): a change is taken once two reads settleDelay apart
// agree, and what is parsed is the bytes of the second read, the very
// ones fingerprinted. Watch starts from the bytes LoadFile parsed, not
// from the file as it is when Watch starts: a file that differs from them
// at the first tick (changed while the server was starting) is a change
// like any other. A registry not made by LoadFile (Parse) is not the
// file's: the first tick reads the file as a change. A registry with
// problems is refused as a whole and
// logged; the running one stays. accept, if set, may refuse a registry
// the server cannot serve (for example HMAC hashes without a key).
//
// When a registry swapped in lacks clients the running one had, record
// (if set) is told their ids and the time of the swap, right after it,
// and again removalFollowUp later (at the first tick then) with that
// time, for those still absent:
// from then on this replica knows no such client, and the fleet's
// verifiers refuse the access tokens it was issued until then. A failed
// record (Redis unavailable) is logged and tried again, with the same
// time, at every later tick until it succeeds; removals are never dropped
// while the process runs. A replica that starts with a client already
// absent has no previous registry to compare and records nothing
// (docs/operations/client-registry.md says when that leaves a window).
// Each accepted reload writes to auditLog (nil: nowhere) one
// client_registry_change record per client added, removed or changed
// (Change; docs/operations/audit-log.md).
//
// A refused file is not silent: Refused reports it until a reload is
// accepted (the auth-server's tollgate_auth_clients_file_refused gauge and
// its readiness dependency "clients-file" read it), and a WARN with its
// problems is logged when it is refused — a later refused change logs
// another at most once every refusedWarnEvery. Watch does not repeat it
// while the file stays refused: the reminder is the readiness
// dependency's (its "still down" WARN, once a minute, with the problems),
// and a second one from here made two lines a minute.
func (s *Static) Watch(ctx context.Context, path string, rules Rules, interval time.Duration, log *slog.Logger, accept func(*Static) error, record RecordRemovals, auditLog *audit.Logger) {
	if path == "" || interval <= 0 {
		return
	}
	read := os.ReadFile
	if s.readFile != nil {
		read = s.readFile
	}
	// Each tick reads the file once; a change is taken as the bytes of
	// the read that confirms it, fingerprinted and parsed alike — a write
	// landing after that read is the next tick's change, never parsed
	// under the fingerprint of the bytes before it.
	snapshot := func() ([]byte, [sha256.Size]byte, error) {
		b, err := read(path)
		if err != nil {
			return nil, [sha256.Size]byte{}, err
		}
		return b, sha256.Sum256(b), nil
	}
	last, known := s.loaded, s.fromFile
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending, followUps []removal
	var warned time.Time // the last WARN about the refused file
	every := refusedWarnEvery
	if s.warnEvery > 0 {
		every = s.warnEvery
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, d, _ := snapshot(); d != last || !known {
			// A file being written in place (an editor, cp; a mounted
			// Secret is swapped whole) may be read half written, and a
			// half registry would record its missing clients as removed
			// fleet-wide: the change is taken only once the file reads
			// the same a moment later.
			select {
			case <-ctx.Done():
				return
			case <-time.After(settleDelay):
			}
			b, again, err := snapshot()
			if again != d {
				continue
			}
			last, known = d, true
			var next *Static
			var problems []string
			if err != nil {
				next, problems = newStatic(map[string]*Client{}), []string{err.Error()}
			} else {
				next, problems = parse(b, rules, path)
			}
			if len(problems) == 0 && next.Len() == 0 && s.Len() > 0 && len(bytes.TrimSpace(b)) == 0 {
				problems = append(problems, "the file is empty (to remove every client, write \"clients: []\")")
			}
			if len(problems) == 0 && accept != nil {
				if err := accept(next); err != nil {
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				r := &Refusal{Since: time.Now(), Problems: problems}
				if prev := s.refused.Load(); prev != nil {
					r.Since = prev.Since
				}
				s.refused.Store(r)
				if now := time.Now(); warned.IsZero() || now.Sub(warned) >= every {
					warned = now
					log.Warn("client registry changed but was refused; the previous registry stays in use", "file", path, "problems", problems)
				}
			} else {
				gone := s.missingFrom(next)
				changes := s.changesTo(next)
				s.Replace(next)
				if prev := s.refused.Swap(nil); prev != nil {
					log.Info("client registry file accepted again", "file", path, "refused_for", time.Since(prev.Since).Round(time.Second))
				}
				warned = time.Time{}
				log.Info("client registry reloaded", "file", path, "clients", next.Len())
				for _, c := range changes {
					auditLog.Log(ctx, audit.Record{Event: audit.ClientRegistryChange, ClientID: c.ClientID, Reason: c.What})
				}
				if len(gone) > 0 && record != nil {
					log.Info("clients removed from the registry: their access tokens issued until now are refused fleet-wide", "file", path, "client_ids", gone)
					now := time.Now()
					pending = append(pending, removal{at: now, ids: gone})
					followUps = append(followUps, removal{at: now.Add(removalFollowUp), ids: gone})
				}
			}
		}
		followUps, pending = s.dueFollowUps(followUps, pending, time.Now())
		pending = recordPending(ctx, pending, record, log)
	}
}

// dueFollowUps moves the follow-ups due at now to pending, as removals
// at now of those of their clients the registry still lacks, and returns
// the follow-ups not due yet and the pending removals.
func (s *Static) dueFollowUps(followUps, pending []removal, now time.Time) (left, _ []removal) {
	for _, f := range followUps {
		if now.Before(f.at) {
			left = append(left, f)
			continue
		}
		var still []string
		for _, id := range f.ids {
			if _, err := s.Get(id); err != nil {
				still = append(still, id)
			}
		}
		if len(still) > 0 {
			pending = append(pending, removal{at: now, ids: still})
		}
	}
	return left, pending
}

// recordPending tries the removals not recorded yet, oldest first, and
// returns those left: after the first failure (Redis not answering) the
// rest wait for the next tick too, so that a tick costs at most one
// attempt's timeout however many removals wait — the registry's reloads
// (a rotated secret) are not held up.
func recordPending(ctx context.Context, pending []removal, record RecordRemovals, log *slog.Logger) []removal {
	for i, r := range pending {
		rctx, cancel := context.WithTimeout(ctx, removalRecordTimeout)
		err := record(rctx, r.at, r.ids)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("clients removed from the registry are not recorded yet: verifiers other than the auth-server still accept their access tokens; retrying at the next reload tick",
				"client_ids", r.ids, "removed_at", r.at, "waiting", len(pending)-i, "err", err)
			return pending[i:]
		}
	}
	return nil
}

// missingFrom returns the ids of s's clients that next lacks, sorted.
// Change is one client's change between two registries, as its
// client_registry_change audit record says it: What is "added", "removed"
// or "changed: " and the changed settings' names (redirect_uris, secret,
// …) — never a secret or its hash.
type Change struct {
	ClientID string
	What     string
}

// changesTo lists the clients next adds, removes or changes, by client id.
func (s *Static) changesTo(next *Static) []Change {
	now, after := *s.byID.Load(), *next.byID.Load()
	nowListed, afterListed := *s.listed.Load(), *next.listed.Load()
	var out []Change
	for id, c := range after {
		old, ok := now[id]
		if !ok {
			out = append(out, Change{id, "added"})
			continue
		}
		if what := changedSettings(old, c, nowListed[id], afterListed[id]); len(what) > 0 {
			out = append(out, Change{id, "changed: " + strings.Join(what, ", ")})
		}
	}
	for id := range now {
		if _, ok := after[id]; !ok {
			out = append(out, Change{id, "removed"})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

// changedSettings names the settings of a client that differ between a and
// b, as the file says them: the scopes as aScopes and bScopes list them
// (or not), not the AllowedScope derived from them — for a client that
// lists none, that is the scopes supported when it was loaded, which a
// backend's new scope changes though the file did not, while a file that
// comes to list exactly those scopes changes the setting (the client no
// longer gets the scopes added later) without changing AllowedScope.
func changedSettings(a, b *Client, aScopes, bScopes scopeListing) []string {
	var out []string
	add := func(differ bool, name string) {
		if differ {
			out = append(out, name)
		}
	}
	add(!bytes.Equal(a.SecretHash, b.SecretHash), "secret")
	add(!slices.Equal(a.RedirectURIs, b.RedirectURIs), "redirect_uris")
	add(!slices.Equal(a.Grants, b.Grants), "grant_types")
	add(!aScopes.same(bScopes), "scope")
	add(!slices.Equal(a.Resources, b.Resources), "resources")
	add(a.AuthMethod != b.AuthMethod, "token_endpoint_auth_method")
	add(a.RequirePKCE != b.RequirePKCE, "require_pkce")
	add(a.SkipConsent != b.SkipConsent, "skip_consent")
	add(a.JWKSURI != b.JWKSURI || !reflect.DeepEqual(a.JWKS, b.JWKS), "jwks")
	add(a.Name != b.Name || a.ClientURI != b.ClientURI, "client_name/client_uri")
	add(a.ResourceServer != b.ResourceServer || a.Kind != b.Kind, "kind")
	return out
}

func (s *Static) missingFrom(next *Static) []string {
	now, after := *s.byID.Load(), *next.byID.Load()
	var gone []string
	for id := range now {
		if _, ok := after[id]; !ok {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	return gone
}

// refusedWarnEvery is how often, at most, Watch logs a WARN for a
// refused change of the registry file while it stays refused.
const refusedWarnEvery = time.Minute

// settleDelay is how long after seeing a change Watch reads the file
// again, to take it only once it reads the same.
const settleDelay = 100 * time.Millisecond
