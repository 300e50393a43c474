// Package session keeps MCP sessions in Redis so that every gateway replica
// accepts every live session: the session record (who owns it, what was
// negotiated) and the event log that lets a client resume a broken SSE
// stream with Last-Event-ID on any replica.
//
// Session ids never appear in Redis in the clear: keys are SHA-256 hashes of
// the id, so a dump of Redis does not hand out usable sessions.
package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// ErrNotFound means no live session has the id (never created, expired or
// terminated).
var ErrNotFound = errors.New("session not found")

// Transports a session can belong to.
const (
	Streamable = "streamable-http"
	LegacySSE  = "sse"
)

// Record is what the fleet knows about one session.
type Record struct {
	// Subject is the token subject that created the session; only it may use the session.
	Subject string
	// ClientID is the OAuth client the creating token was issued to.
	ClientID string
	// Transport is Streamable or LegacySSE.
	Transport string
	// ProtocolVersion is the version negotiated at initialize ("" until then).
	ProtocolVersion string
	// ClientInfo and Capabilities are the client's initialize parameters, as JSON.
	ClientInfo   string
	Capabilities string
	// Replica holds the SSE stream of a legacy session (where /messages go).
	Replica string
	Created time.Time
}

func (r Record) fields() map[string]any {
	return map[string]any{
		"sub": r.Subject, "client_id": r.ClientID, "transport": r.Transport,
		"version": r.ProtocolVersion, "client_info": r.ClientInfo, "capabilities": r.Capabilities,
		"replica": r.Replica, "created": strconv.FormatInt(r.Created.Unix(), 10),
	}
}

func recordOf(m map[string]string) Record {
	created, _ := strconv.ParseInt(m["created"], 10, 64)
	return Record{
		Subject: m["sub"], ClientID: m["client_id"], Transport: m["transport"],
		ProtocolVersion: m["version"], ClientInfo: m["client_info"], Capabilities: m["capabilities"],
		Replica: m["replica"], Created: time.Unix(created, 0),
	}
}

// NewID returns a fresh session id: 256 random bits, base64url. The
// alphabet is visible ASCII, as the Streamable HTTP transport requires.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Store keeps session records in Redis with an idle TTL, and remembers the
// records it has seen (Admit).
type Store struct {
	rdb        *redisx.Client
	ttl        time.Duration
	renewEvery time.Duration
	cache      *lru.Cache[string, *cached]
	onLookup   func(hit bool)
}

// NewStore returns a store whose sessions expire after ttl without use.
func NewStore(rdb *redisx.Client, ttl time.Duration) *Store {
	return &Store{rdb: rdb, ttl: ttl, renewEvery: min(maxRenewEvery, ttl/2), cache: newCache()}
}

// IdleTTL is the idle lifetime of a session.
func (s *Store) IdleTTL() time.Duration { return s.ttl }

// Key names of this package, made here only.
func (s *Store) key(id string) string     { return s.keyOf(redisx.Hash(id)) }
func (s *Store) keyOf(hash string) string { return s.rdb.Key("mcp", "session", hash) }

// Create stores a new session. Creating an id that exists is an error.
func (s *Store) Create(ctx context.Context, id string, r Record) error {
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	args := append([]any{s.ttl.Milliseconds()}, flatten(r.fields())...)
	ok, err := createScript.Run(ctx, s.rdb, []string{s.key(id)}, args...).Int()
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if ok == 0 {
		return errors.New("create session: id already in use")
	}
	return nil
}

// Get returns the session and renews its idle TTL.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	if id == "" {
		return Record{}, ErrNotFound
	}
	var get *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, s.key(id))
		p.PExpire(ctx, s.key(id), s.ttl)
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("read session: %w", err)
	}
	m := get.Val()
	if len(m) == 0 {
		return Record{}, ErrNotFound
	}
	return recordOf(m), nil
}

// Negotiated records what initialize settled. It does nothing when the
// session is gone.
func (s *Store) Negotiated(ctx context.Context, id, version, clientInfo, capabilities string) error {
	_, err := updateScript.Run(ctx, s.rdb, []string{s.key(id)}, s.ttl.Milliseconds(),
		"version", version, "client_info", clientInfo, "capabilities", capabilities).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// Delete ends the session; it reports whether the session existed.
func (s *Store) Delete(ctx context.Context, id string) (bool, error) {
	s.cache.Remove(redisx.Hash(id))
	n, err := s.rdb.Del(ctx, s.key(id)).Result()
	if err != nil {
		return false, fmt.Errorf("delete session: %w", err)
	}
	return n > 0, nil
}

// Exists reports whether the session is live, without renewing it.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.key(id)).Result()
	if err != nil {
		return false, fmt.Errorf("read session: %w", err)
	}
	return n > 0, nil
}

func flatten(m map[string]any) []any {
	out := make([]any, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// createScript sets the hash only if the key is new, with its TTL, atomically.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// updateScript updates fields of a live session and renews its TTL; a
// missing session stays missing.
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)
