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
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
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
	// ClientName is ClientInfo's name member, read from it (not stored on
	// its own). Unlike ClientInfo it is in every record Admit answers,
	// from memory too, when it is at most maxValue (64) bytes; a longer
	// name reads as "" there.
	ClientName string
	// Replica holds the SSE stream of a legacy session (where /messages go).
	Replica string
	// LogLevel is the level the client set with logging/setLevel ("" until
	// then: mcp-go's default, error). Read it with LogLevel: a record
	// remembered by a replica (Admit) may predate it.
	LogLevel string
}

// fields are the hash fields of r; empty ones are left out (they read
// back as ""), which keeps an idle session small in Redis. So are
// capabilities "{}" (none declared: restoring them or not is the same).
// The previous version also wrote "created" (Unix seconds), which nothing
// read; it is ignored where present.
func (r Record) fields() map[string]any {
	m := map[string]any{}
	for k, v := range map[string]string{
		"sub": r.Subject, "client_id": r.ClientID, "transport": r.Transport,
		"version": r.ProtocolVersion, "replica": r.Replica, "log_level": r.LogLevel,
	} {
		if v != "" {
			m[k] = v
		}
	}
	for _, kv := range negotiatedFields(r.ClientInfo, r.Capabilities) {
		m[kv[0]] = kv[1]
	}
	return m
}

// maxValue is the longest hash value Redis keeps in its compact listpack
// encoding by default (hash-max-listpack-value): one longer value turns the
// whole session hash into a hashtable, about twice its size
// (docs/operations/redis.md, "Sizing"). The client's initialize parameters
// often pass it — a 2025-11-25 client declaring elicitation's form and url
// modes writes 79 bytes of capabilities — so they are stored in pieces of
// at most maxValue bytes: field name, name:1, name:2, … (split reads them
// back). A replica of the previous version reads the first piece alone,
// which is not valid JSON, and restores no client info or capabilities
// from it, as for a session that never negotiated; nothing in the gateway
// or mcp-go reads them back from a session.
const maxValue = 64

// negotiatedFields are the hash fields holding a client's initialize
// parameters, as pairs.
func negotiatedFields(clientInfo, capabilities string) [][2]string {
	if capabilities == "{}" {
		capabilities = ""
	}
	var out [][2]string
	for _, f := range [][2]string{{"client_info", clientInfo}, {"capabilities", capabilities}} {
		for i := 0; len(f[1]) > 0; i++ {
			name := f[0]
			if i > 0 {
				name += ":" + strconv.Itoa(i)
			}
			n := min(len(f[1]), maxValue)
			out = append(out, [2]string{name, f[1][:n]})
			f[1] = f[1][n:]
		}
	}
	return out
}

// joined reads back a value negotiatedFields split: the field and its
// numbered pieces, in order.
func joined(m map[string]string, name string) string {
	v := m[name]
	for i := 1; ; i++ {
		piece, ok := m[name+":"+strconv.Itoa(i)]
		if !ok {
			return v
		}
		v += piece
	}
}

func recordOf(m map[string]string) Record {
	r := Record{
		Subject: m["sub"], ClientID: m["client_id"], Transport: m["transport"],
		ProtocolVersion: m["version"], ClientInfo: joined(m, "client_info"), Capabilities: joined(m, "capabilities"),
		Replica: m["replica"], LogLevel: m["log_level"],
	}
	if r.ClientInfo != "" {
		var ci struct {
			Name string `json:"name"`
		}
		if json.Unmarshal([]byte(r.ClientInfo), &ci) == nil {
			r.ClientName = ci.Name
		}
	}
	return r
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
	perSubject int           // live sessions one (subject, client) may hold (0: no limit)
	evictAfter time.Duration // EvictIdleAfter (0: never evict)
	onEvict    func(context.Context, Evicted)
	cache      *lru.Cache[string, *cached]
	onLookup   func(Lookup)
	// following: terminations are being received (Follow); gen counts
	// Follow calls; forgets counts Forget calls (cache.go).
	following atomic.Bool
	gen       atomic.Uint64
	forgets   atomic.Uint64
}

// NewStore returns a store whose sessions expire after ttl without use.
func NewStore(rdb *redisx.Client, ttl time.Duration) *Store {
	s := &Store{rdb: rdb, ttl: ttl, renewEvery: min(maxRenewEvery, ttl/2), cache: newCache()}
	s.gen.Store(1) // an entry's gen 0 is never current
	return s
}

// LimitPerSubject caps the live sessions one subject holds through one
// OAuth client at n (n < 1: no cap); Create refuses more with a
// *LimitError. The cap is keyed on the verified token's (sub, client_id)
// pair — Record.Subject and Record.ClientID, both taken from the access
// token — so one app that leaks sessions blocks only itself, never the
// same user's other apps. Set it before use.
//
// Each (subject, client) pair has a sorted set of its sessions (hashed
// ids, shortened: member) scored by when each would expire; the score
// follows the idle TTL's renewals (Admit updates it with each renewal,
// so at most a minute late), DELETE removes the entry, and entries whose time has passed are dropped
// before counting. Counting and adding are one atomic script on that set,
// so concurrent initializes on any replicas never exceed the cap. Beyond
// the cap the pair's least recently used session is ended to make room
// when it has been idle long enough (EvictIdleAfter); otherwise the new
// session is refused until one of the pair's sessions ends, expires or
// becomes evictable.
func (s *Store) LimitPerSubject(n int) { s.perSubject = max(n, 0) }

// EvictIdleAfter lets Create end the least recently used session of a
// (subject, client) pair at its cap, in the same atomic script that counts
// and adds, when that session has been idle for at least d (d <= 0: never;
// a pair at its cap is refused, as before). Set it before use, with
// OnEvict.
//
// Idleness is read from the pair's sorted set, whose score is the
// session's expiry as of its last renewal (last renewal + IdleTTL), and a
// replica renews at most every renewEvery (a minute, or half the TTL if
// shorter): a session's last use may be up to renewEvery later than its
// score says. The script therefore asks for d + renewEvery of idleness by
// the score, so that a session used within d is never taken. Each use
// that reads the record from Redis (Admit's first sight on a replica,
// Get) moves the score as a renewal does, so that holds on every path.
//
// The session to end is named by its entry: the set's members are then
// whole hashed ids (64 hex digits, 48 bytes more per session in Redis
// than the 16-digit members kept without eviction). An entry of the
// short form (written while eviction was off, or by a version before it)
// names no record and is never chosen: it counts until it expires or its
// session is deleted. The chosen session's record is deleted first (as
// Delete does; another key, and in Redis Cluster another slot) and only
// then is its entry taken out, by the script that adds the new one, so a
// session keeps counting against the cap for as long as its record
// lives: when the delete fails, Create fails and the session stays,
// counted; when the gateway stops between the two, the entry of the
// deleted record is chosen again by the pair's next Create (it is the
// least recently used, and evictable) and taken out then. The caller
// (OnEvict) announces the session's end to every replica.
func (s *Store) EvictIdleAfter(d time.Duration) { s.evictAfter = max(d, 0) }

// Evicted is a session Create ended to make room for a new one of the
// same (subject, client) pair (EvictIdleAfter).
type Evicted struct {
	// Hash is the session id's SHA-256 (hex), what the fleet's
	// terminations name.
	Hash string
	// Transport is the ended session's transport ("" when not Ended).
	Transport string
	// Ended reports that this call deleted the record (false: it was
	// already gone — a concurrent Create or DELETE ended it, it expired,
	// or a gateway stopped after deleting it and before taking its entry
	// out).
	Ended bool
	// Err is a failure to delete the record: the session may still live,
	// keeps its entry (it still counts against the pair's cap), and
	// Create fails with this error.
	Err error
}

// OnEvict has f called, inside Create, for every session Create chose to
// end to make room (EvictIdleAfter), after its record was deleted (or the
// delete failed: Evicted.Err) and before its entry is taken out and the
// new session stored. Set it before use.
func (s *Store) OnEvict(f func(context.Context, Evicted)) { s.onEvict = f }

// LimitError refuses a session beyond the per-subject cap.
type LimitError struct {
	Limit int
	// RetryAfter is when the pair's least recently used session expires
	// if unused or, with EvictIdleAfter, becomes evictable, whichever is
	// first.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("the subject already holds %d live sessions through this client (the limit)", e.Limit)
}

// IdleTTL is the idle lifetime of a session.
func (s *Store) IdleTTL() time.Duration { return s.ttl }

// Key names of this package, made here only. A session's key is
// mcp:session:{<hash>}: its events (events.go) share the Redis Cluster hash
// tag, so a session and its events live in one slot.
func (s *Store) key(id string) string     { return s.keyOf(redisx.Hash(id)) }
func (s *Store) keyOf(hash string) string { return s.rdb.Key("mcp", "session", redisx.Tag(hash)) }

// subjectKey is the sorted set of the live sessions one subject holds
// through one client. The pair is length-prefixed before hashing so that no
// two pairs share a key.
func (s *Store) subjectKey(subject, clientID string) string {
	pair := strconv.Itoa(len(subject)) + ":" + subject + clientID
	return s.rdb.Key("mcp", "client-sessions", redisx.Hash(pair))
}

// member is a session's entry in its (subject, client) set without
// eviction (EvictIdleAfter, which needs the whole hashed id): the first 16
// hex digits (64 bits) of its hashed id. The set holds at most the cap's
// sessions of one pair, whose ids are random: two sharing 64 bits has a
// chance below n²/2⁶⁵ (3·10⁻¹² for 10,000), and would only make the pair
// count one session less. The previous version's entries are the whole
// hash (64 digits): Delete and the renewal in Admit name both forms, so
// they keep working on sessions it created. During a rolling upgrade a
// replica of the previous version neither removes nor renews an entry of
// the short form: a session deleted there still counts against its pair's
// cap until its idle TTL would have ended, and one renewed only there may
// stop counting a TTL after creation.
func member(h string) string { return h[:16] }

// Create stores a new session. Creating an id that exists is an error; a
// (subject, client) pair at its cap (LimitPerSubject) gets a *LimitError.
func (s *Store) Create(ctx context.Context, id string, r Record) error {
	h := redisx.Hash(id)
	m := member(h)
	if s.evictAfter > 0 {
		m = h // an evicted entry must name its session's record
	}
	if s.perSubject > 0 {
		if err := s.admit(ctx, r, m); err != nil {
			return err
		}
	}
	args := append([]any{s.ttl.Milliseconds()}, flatten(r.fields())...)
	ok, err := createScript.Run(ctx, s.rdb, []string{s.keyOf(h)}, args...).Int()
	if err == nil && ok == 0 {
		err = errors.New("id already in use")
	}
	if err != nil {
		if s.perSubject > 0 {
			_ = s.rdb.ZRem(context.WithoutCancel(ctx), s.subjectKey(r.Subject, r.ClientID), m).Err()
		}
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// maxEvictRounds bounds admit's rounds of ending sessions: each ends at
// least one, so more than one round needs concurrent Creates of the same
// pair taking the places made.
const maxEvictRounds = 4

// admit adds the entry m of a new session of r's (subject, client) pair
// to the pair's set under the cap (admitScript), first ending as many of
// the pair's evictable sessions as must go (EvictIdleAfter): their
// records are deleted, then the script is run again, which takes their
// entries out, counts again and adds m.
func (s *Store) admit(ctx context.Context, r Record, m string) error {
	var idle int64 // idleness by the score that makes an entry evictable (0: none is)
	if s.evictAfter > 0 {
		idle = (s.evictAfter + s.renewEvery).Milliseconds()
	}
	var ended []any // members whose records are deleted, to take out
	for round := 0; ; round++ {
		args := append([]any{s.perSubject, s.ttl.Milliseconds(), m, idle}, ended...)
		v, err := admitScript.Run(ctx, s.rdb, []string{s.subjectKey(r.Subject, r.ClientID)}, args...).Slice()
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		code, _ := v[0].(int64)
		switch {
		case code == 1:
			return nil
		case code == 0 && len(v) == 2:
			ms, _ := v[1].(int64)
			return &LimitError{Limit: s.perSubject, RetryAfter: time.Duration(max(ms, 1)) * time.Millisecond}
		case code != 2 || len(v) < 2:
			return fmt.Errorf("create session: admission answered %v", v)
		case round == maxEvictRounds:
			// Others took every place made; the sessions chosen last are
			// chosen again by the pair's next Create.
			return &LimitError{Limit: s.perSubject, RetryAfter: time.Second}
		}
		ended = ended[:0]
		for _, e := range v[1:] {
			hash, _ := e.(string)
			if err := s.evict(ctx, hash); err != nil {
				return err
			}
			ended = append(ended, hash)
		}
	}
}

// evict deletes the record of a session the admission script chose to end
// (hash: its entry in the pair's set, still there) and reports it
// (OnEvict). An error means the record may still be there: the entry
// stays.
func (s *Store) evict(ctx context.Context, hash string) error {
	e := Evicted{Hash: hash}
	s.Forget(hash)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	var transport *redis.StringCmd
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(dctx, func(p redis.Pipeliner) error {
		transport = p.HGet(dctx, s.keyOf(hash), "transport")
		del = p.Del(dctx, s.keyOf(hash))
		return nil
	})
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		e.Err = fmt.Errorf("end idle session: %w", err)
	} else {
		e.Ended, e.Transport = del.Val() > 0, transport.Val()
	}
	if s.onEvict != nil {
		s.onEvict(ctx, e)
	}
	if e.Err != nil {
		return fmt.Errorf("create session: %w", e.Err)
	}
	return nil
}

// touch moves a session's entry in its pair's set to its renewed expiry,
// as Admit's renewal does, when eviction reads idleness from it.
func (s *Store) touch(ctx context.Context, h string, r Record, now time.Time) {
	if s.perSubject <= 0 || s.evictAfter <= 0 || r.Subject == "" {
		return
	}
	sk := s.subjectKey(r.Subject, r.ClientID)
	until := float64(now.Add(s.ttl).UnixMilli())
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddXX(ctx, sk, redis.Z{Score: until, Member: h})
		p.PExpire(ctx, sk, s.ttl)
		return nil
	})
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
	r := recordOf(m)
	s.touch(ctx, redisx.Hash(id), r, time.Now())
	return r, nil
}

// InitializeClaimTTL is how long a legacy session's initialize claim
// (ClaimInitialize) holds while no version is recorded: past it, the claim
// is free again. It bounds how long a session stays unable to initialize
// when the claim's owner cannot give the claim back (a lost reply to the
// claim, a relayed initialize whose delivery Redis could settle neither
// way: ReleaseUnconfirmed and ConfirmInitialize both failed); a session whose
// negotiated version cannot be recorded is ended instead (the gateway's
// afterInitialize). A variable so that tests can shorten it.
var InitializeClaimTTL = 30 * time.Second

// ClaimInitialize takes the one initialize of a legacy HTTP+SSE session,
// atomically on every replica, before it is handed to mcp-go: the field
// "initialize" of the session's hash, "<token> <expiry in Unix ms>", set
// only when no version was negotiated (a session initialized by a
// previous version has none) and no unexpired claim is held (Redis' own
// clock: TIME in the script). It returns the claim's random token ("" if
// not taken) and, when not taken, the negotiated version ("" while the
// initialize that took it is not answered yet); ErrNotFound when the
// session is gone. When the script's reply is lost (an error), the claim
// it may have taken is given back (its token is known, so only it).
func (s *Store) ClaimInitialize(ctx context.Context, id string) (token, version string, err error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	tok := hex.EncodeToString(b)
	v, err := claimScript.Run(ctx, s.rdb, []string{s.key(id)}, tok, InitializeClaimTTL.Milliseconds()).Slice()
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		_ = s.ReleaseInitialize(rctx, id, tok)
		return "", "", fmt.Errorf("update session: %w", err)
	}
	if len(v) != 2 {
		return "", "", fmt.Errorf("update session: claim answered %v", v)
	}
	version, _ = v[1].(string)
	switch code, _ := v[0].(int64); code {
	case 0:
		return "", "", ErrNotFound
	case 1:
		return tok, "", nil
	}
	return "", version, nil
}

// ReleaseInitialize gives back the claim of ClaimInitialize whose token is
// token after the initialize that took it failed (it could not be handed
// over), so that the session can be initialized again; a session that
// negotiated meanwhile keeps it, and a claim taken by another (after this
// one expired) is left alone.
func (s *Store) ReleaseInitialize(ctx context.Context, id, token string) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.key(id)}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// ConfirmInitialize takes over, for the replica that holds a legacy
// session's stream, the claim of ClaimInitialize whose token is token,
// before it hands a relayed initialize to mcp-go: the claim becomes
// "confirmed:<token> <expiry>", which ReleaseUnconfirmed leaves alone. It
// reports false — the initialize must not go on — when the claim is no
// longer that token's unconfirmed, unexpired claim: its sender gave it
// back (the PUBLISH failed, ReleaseUnconfirmed ran first), it expired, or
// the session negotiated or is gone. Confirm and release are each one
// script on the claim, so exactly one of them wins.
func (s *Store) ConfirmInitialize(ctx context.Context, id, token string) (bool, error) {
	n, err := confirmScript.Run(ctx, s.rdb, []string{s.key(id)}, token).Int()
	if err != nil {
		return false, fmt.Errorf("update session: %w", err)
	}
	return n == 1, nil
}

// Release is what ReleaseUnconfirmed found.
type Release int

// Releases.
const (
	// Released: the claim was given back; the initialize goes no further.
	Released Release = iota
	// Confirmed: the stream's replica confirmed the claim (or the session
	// negotiated): the initialize was delivered and is being answered.
	Confirmed
	// NotHeld: the token holds no claim (it expired, or the session is
	// gone).
	NotHeld
)

// ReleaseUnconfirmed gives back the claim of ClaimInitialize whose token is
// token unless the stream's replica confirmed it (ConfirmInitialize): what
// the replica that relayed an initialize does when the relay failed and
// its delivery is unknown. Released means the initialize will not be
// handled (a late delivery finds the claim gone and drops it); Confirmed
// that it was delivered and is being handled.
func (s *Store) ReleaseUnconfirmed(ctx context.Context, id, token string) (Release, error) {
	n, err := releaseUnconfirmedScript.Run(ctx, s.rdb, []string{s.key(id)}, token).Int()
	if err != nil {
		return NotHeld, fmt.Errorf("update session: %w", err)
	}
	switch n {
	case 1:
		return Released, nil
	case 2:
		return Confirmed, nil
	}
	return NotHeld, nil
}

// Negotiated records what initialize settled, once per session (a
// session has one initialize). It does nothing when the session is gone.
func (s *Store) Negotiated(ctx context.Context, id, version, clientInfo, capabilities string) error {
	args := []any{s.ttl.Milliseconds(), "version", version}
	for _, kv := range negotiatedFields(clientInfo, capabilities) {
		args = append(args, kv[0], kv[1])
	}
	_, err := updateScript.Run(ctx, s.rdb, []string{s.key(id)}, args...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// SetLogLevel records the session's logging level (logging/setLevel),
// for every replica; ErrNotFound when the session is gone.
func (s *Store) SetLogLevel(ctx context.Context, id, level string) error {
	n, err := updateScript.Run(ctx, s.rdb, []string{s.key(id)}, s.ttl.Milliseconds(), "log_level", level).Int()
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// LogLevel is the session's logging level as last set on any replica (""
// if never set or the session is gone).
func (s *Store) LogLevel(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.key(id), "log_level").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read session: %w", err)
	}
	return v, nil
}

// Resource subscriptions (resources/subscribe) are fields of the session's
// hash, "resource:<uri>", so that they live, expire and end with it.
const (
	subscriptionPrefix = "resource:"
	// MaxSubscriptions bounds the resources one session may subscribe to.
	MaxSubscriptions = 64
	// MaxSubscriptionURI bounds the length of a subscribed URI in bytes.
	MaxSubscriptionURI = 2048
)

// ErrTooManySubscriptions refuses a subscription beyond MaxSubscriptions
// or a URI longer than MaxSubscriptionURI.
var ErrTooManySubscriptions = fmt.Errorf("at most %d resource subscriptions per session, of URIs up to %d bytes", MaxSubscriptions, MaxSubscriptionURI)

// Subscribe records that the session follows the resource at uri (again
// is a no-op), for every replica; ErrNotFound when the session is gone.
func (s *Store) Subscribe(ctx context.Context, id, uri string) error {
	if len(uri) > MaxSubscriptionURI {
		return ErrTooManySubscriptions
	}
	n, err := subscribeScript.Run(ctx, s.rdb, []string{s.key(id)}, s.ttl.Milliseconds(), subscriptionPrefix+uri, MaxSubscriptions).Int()
	switch {
	case err != nil:
		return fmt.Errorf("update session: %w", err)
	case n == 0:
		return ErrNotFound
	case n < 0:
		return ErrTooManySubscriptions
	}
	return nil
}

// Unsubscribe drops the session's subscription to uri (none is a no-op).
func (s *Store) Unsubscribe(ctx context.Context, id, uri string) error {
	if err := s.rdb.HDel(ctx, s.key(id), subscriptionPrefix+uri).Err(); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// Subscriptions lists the URIs the session is subscribed to.
func (s *Store) Subscriptions(ctx context.Context, id string) ([]string, error) {
	keys, err := s.rdb.HKeys(ctx, s.key(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	var out []string
	for _, k := range keys {
		if uri, ok := strings.CutPrefix(k, subscriptionPrefix); ok {
			out = append(out, uri)
		}
	}
	return out, nil
}

// Delete ends the session; it reports whether the session existed.
func (s *Store) Delete(ctx context.Context, id string) (bool, error) {
	h := redisx.Hash(id)
	s.Forget(h)
	var owner *redis.SliceCmd
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		owner = p.HMGet(ctx, s.keyOf(h), "sub", "client_id")
		del = p.Del(ctx, s.keyOf(h))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("delete session: %w", err)
	}
	if del.Val() > 0 && s.perSubject > 0 {
		v := owner.Val()
		sub, _ := v[0].(string)
		client, _ := v[1].(string)
		if err := s.rdb.ZRem(ctx, s.subjectKey(sub, client), member(h), h).Err(); err != nil {
			return true, fmt.Errorf("delete session: %w", err)
		}
	}
	return del.Val() > 0, nil
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

// claimScript takes a legacy session's initialize (Store.ClaimInitialize).
// KEYS[1]: the session; ARGV: the claim's token, its lifetime in ms.
// Replies {1, ""} (taken), {2, version} (held by an unexpired claim, or
// negotiated: version, "" while unanswered) or {0, ""} (no session). A
// claim whose value has no expiry (a previous version's "1") is free.
// HDEL and HSETNX, not HSET, so that it needs no more than before.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local v = redis.call('HGET', KEYS[1], 'version')
if v then return {2, v} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = redis.call('HGET', KEYS[1], 'initialize')
if c then
  local exp = tonumber(string.match(c, ' (%d+)$'))
  if exp and now < exp then return {2, ''} end
  redis.call('HDEL', KEYS[1], 'initialize')
end
redis.call('HSETNX', KEYS[1], 'initialize', ARGV[1] .. ' ' .. string.format('%d', now + tonumber(ARGV[2])))
return {1, ''}`)

// releaseScript gives a legacy session's initialize back unless it
// negotiated, if the claim is still the one of the token ARGV[1]
// (Store.ReleaseInitialize). KEYS[1]: the session.
var releaseScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'version') == 1 then return 0 end
local c = redis.call('HGET', KEYS[1], 'initialize')
if c and string.sub(c, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('HDEL', KEYS[1], 'initialize')
end
return 0`)

// confirmScript confirms a legacy session's unexpired, unconfirmed
// initialize claim of the token ARGV[1] (Store.ConfirmInitialize),
// keeping its expiry. KEYS[1]: the session. Replies 1 (confirmed) or 0.
var confirmScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'version') == 1 then return 0 end
local c = redis.call('HGET', KEYS[1], 'initialize')
if not c or string.sub(c, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end
local exp = tonumber(string.match(c, ' (%d+)$'))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not exp or now >= exp then return 0 end
redis.call('HSET', KEYS[1], 'initialize', 'confirmed:' .. c)
return 1`)

// releaseUnconfirmedScript gives back a legacy session's initialize claim
// of the token ARGV[1] unless it was confirmed
// (Store.ReleaseUnconfirmed). KEYS[1]: the session. Replies 1 (given
// back), 2 (confirmed, or the session negotiated) or 0 (not held).
var releaseUnconfirmedScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'version') == 1 then return 2 end
local c = redis.call('HGET', KEYS[1], 'initialize')
if not c then return 0 end
if string.sub(c, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('HDEL', KEYS[1], 'initialize')
  return 1
end
if string.sub(c, 1, #ARGV[1] + 11) == 'confirmed:' .. ARGV[1] .. ' ' then return 2 end
return 0`)

// updateScript updates fields of a live session and renews its TTL; a
// missing session stays missing.
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// subscribeScript adds a subscription field to a live session under the
// cap. KEYS[1]: the session; ARGV: idle TTL (ms), field, cap. Replies 1
// (subscribed), 0 (no session) or -1 (at the cap).
var subscribeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  local n = 0
  for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(k, 1, 9) == 'resource:' then n = n + 1 end
  end
  if n >= tonumber(ARGV[3]) then return -1 end
  redis.call('HSET', KEYS[1], ARGV[2], '1')
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`)

// admitScript counts a (subject, client) pair's live sessions and adds one
// if under the cap. At the cap it adds nothing and names the least
// recently used entries (lowest scores) that must go, among those that
// name their record (64 hex digits), when the newest of them has been
// idle, by its score, for at least ARGV[4] ms (0: never); the caller
// deletes their records and runs it again with their members from
// ARGV[5] on, which it takes out first. KEYS[1]: the pair's sorted set;
// ARGV: cap, idle TTL (ms), the new session's member, evictable idleness
// (ms), members whose records are deleted…. Replies {1} (added), {2,
// member…} (end those first) or {0, ms until enough entries expire or
// become evictable}.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 5, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1]) + 1
if over > 0 then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local wait = tonumber(all[2 * over]) - now
  local idle = tonumber(ARGV[4])
  if idle <= 0 then return {0, wait} end
  local out, last = {2}, nil
  for i = 1, #all, 2 do
    if #out > over then break end
    if #all[i] == 64 then
      out[#out + 1] = all[i]
      last = tonumber(all[i + 1])
    end
  end
  if #out <= over then return {0, wait} end
  local evictable = last - tonumber(ARGV[2]) + idle
  if now < evictable then return {0, math.min(wait, evictable - now)} end
  return out
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1}`)
