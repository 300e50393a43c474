package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// Events is mcp-go's EventStore kept in Redis: each SSE stream of a session
// is a Redis stream, so a client whose connection to one replica broke can
// resume with Last-Event-ID on any other.
//
// An event id is "<stream id>_<redis entry id>". Keys are derived from the
// hashed session id, so an event id of one session is unknown in another.
//
// Each event recorded renews its stream's TTL, and the index's, to the
// session's idle TTL. A stream that stays open and quiet for longer (a
// GET /mcp stream: its priming event, then nothing) is renewed by its
// holder while it is open (Renew, every RenewEvery), so that the client
// can resume from its last event id after the connection breaks; once
// closed, its events expire one idle TTL after their last renewal. The
// work is bounded by the streams open now (STREAM_LIMIT_PER_SESSION per
// session and replica), not by how many a session ever opened.
type Events struct {
	rdb      *redisx.Client
	sessions *Store
	maxLen   int64
}

var _ server.EventStore = (*Events)(nil)

// NewEvents returns an event store that keeps at most maxLen events per
// stream (for how long: Events).
func NewEvents(rdb *redisx.Client, sessions *Store, maxLen int) *Events {
	return &Events{rdb: rdb, sessions: sessions, maxLen: int64(maxLen)}
}

// streamKey, indexKey and sizesKey share the session's hash tag {<hash>}:
// StoreEvent's script and PurgeSession's DEL touch several of them at once,
// which a Redis Cluster allows within one hash slot only.
func (e *Events) streamKey(sessionID, streamID string) string {
	return e.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sessionID)), streamID)
}

func (e *Events) indexKey(sessionID string) string {
	return e.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sessionID)))
}

// SessionEventBytes and SessionStreams bound what one session's streams
// hold in Redis: at most SessionEventBytes of recorded messages, over at
// most SessionStreams streams. A stream is recorded for resumption
// (Streamable HTTP, "Resumability and Redelivery"), which the spec leaves
// to the server ("MAY"); without these bounds a client that asked for
// progress on every tools/call made a new stream per call, each kept for
// the session's idle TTL. Recording a new stream past SessionStreams
// forgets the session's oldest (events and all); an event past
// SessionEventBytes drops the events of the session's oldest other streams
// until it fits, and when it cannot (it alone is over, or no other stream
// holds any), its own stream's. A dropped stream's events are deleted and
// none of its later events is recorded: they are sent live without an
// event id (StoreEvent's error; mcp-go and the GET /mcp stream both do so),
// and resuming from an id it gave earlier is an unknown event id — never a
// replay that silently skips events.
var (
	SessionEventBytes = 256 << 10
	SessionStreams    = 32
)

// ErrStreamDropped is StoreEvent's error for an event not recorded because
// its stream is over the session's bounds (SessionEventBytes).
var ErrStreamDropped = errors.New("stream not recorded: over the session's event bounds")

// sizesKey is the session's hash of its recorded streams: per stream "<seq>
// <bytes>" (seq its order of recording, bytes -1 once dropped), "n" the
// last seq, "t" the bytes recorded in all.
func (e *Events) sizesKey(sessionID string) string {
	return e.rdb.Key("mcp", "eventsizes", redisx.Tag(redisx.Hash(sessionID)))
}

// StoreEvent appends message to the stream and returns its event id, within
// the session's bounds (SessionEventBytes): an error wrapping
// ErrStreamDropped when the stream's events are no longer recorded.
func (e *Events) StoreEvent(ctx context.Context, sessionID, streamID string, message json.RawMessage) (string, error) {
	if strings.Contains(streamID, "_") {
		return "", fmt.Errorf("stream id %q contains '_'", streamID)
	}
	key := e.streamKey(sessionID, streamID)
	ttl := e.sessions.IdleTTL()
	id, err := storeScript.Run(ctx, e.rdb, []string{key, e.indexKey(sessionID), e.sizesKey(sessionID)},
		streamID, []byte(message), ttl.Milliseconds(), e.maxLen, SessionEventBytes, SessionStreams, e.streamKey(sessionID, "")).Text()
	if err != nil {
		if strings.Contains(err.Error(), "DROPPED") {
			return "", fmt.Errorf("store event: %w", ErrStreamDropped)
		}
		return "", fmt.Errorf("store event: %w", err)
	}
	return streamID + "_" + id, nil
}

// storeScript records one event (Events.StoreEvent). KEYS: the stream, the
// session's index of streams (a set, which PurgeSession reads), its sizes
// hash (sizesKey). ARGV: stream id, message, TTL in ms, events kept per
// stream, SessionEventBytes, SessionStreams, the prefix of the session's
// stream keys (the other streams it drops share the session's hash tag).
// Replies the entry id, or the error DROPPED. A full stream's oldest entry
// is trimmed here (exact MAXLEN) so that its bytes leave the count.
var storeScript = redis.NewScript(`
local h, sid, msg = KEYS[3], ARGV[1], ARGV[2]
local maxlen, budget, maxstreams, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local total = tonumber(redis.call('HGET', h, 't') or '0')
local function parse(v)
  local s, b = string.match(v, '^(%d+) (%-?%d+)$')
  return tonumber(s), tonumber(b)
end
local function oldest(liveOnly)
  local all = redis.call('HGETALL', h)
  local best, bs, bb
  for i = 1, #all, 2 do
    local f = all[i]
    if f ~= 't' and f ~= 'n' and f ~= sid then
      local s, b = parse(all[i + 1])
      if s and (not liveOnly or b > 0) and (not bs or s < bs) then best, bs, bb = f, s, b end
    end
  end
  return best, bs, bb
end
local function drop(f, b)
  redis.call('DEL', prefix .. f)
  redis.call('SREM', KEYS[2], f)
  if b > 0 then total = total - b end
end
local function finish()
  redis.call('HSET', h, 't', total)
  redis.call('PEXPIRE', h, ARGV[3])
end
local seq, used
local cur = redis.call('HGET', h, sid)
if cur then
  seq, used = parse(cur)
else
  local count = 0
  for _, f in ipairs(redis.call('HKEYS', h)) do
    if f ~= 't' and f ~= 'n' then count = count + 1 end
  end
  while count >= maxstreams do
    local f, _, b = oldest(false)
    if not f then break end
    drop(f, b)
    redis.call('HDEL', h, f)
    count = count - 1
  end
  seq, used = redis.call('HINCRBY', h, 'n', 1), 0
end
if used < 0 then
  finish()
  return redis.error_reply('DROPPED')
end
local trimmed = 0
if used > 0 and redis.call('XLEN', KEYS[1]) >= maxlen then
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if first then trimmed = #first[2][2] end
end
local n = #msg
if used - trimmed + n > budget then
  drop(sid, used)
  redis.call('HSET', h, sid, seq .. ' -1')
  finish()
  return redis.error_reply('DROPPED')
end
while total - trimmed + n > budget do
  local f, s, b = oldest(true)
  if not f then
    drop(sid, used)
    redis.call('HSET', h, sid, seq .. ' -1')
    finish()
    return redis.error_reply('DROPPED')
  end
  drop(f, b)
  redis.call('HSET', h, f, s .. ' -1')
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', 'm', msg)
total = total - trimmed + n
redis.call('HSET', h, sid, seq .. ' ' .. (used - trimmed + n))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], sid)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
finish()
return id`)

// RenewEvery is how often a stream's holder renews it (Renew): the
// session's own renewal interval, a minute or half the idle TTL if
// shorter, so the stream's events outlive it by at least half a TTL.
func (e *Events) RenewEvery() time.Duration { return e.sessions.renewEvery }

// Renew renews the idle TTL of one stream's events and of the session's
// index of its streams (one round trip, two PEXPIREs of keys in the
// session's hash slot); it does nothing to keys that are gone. The caller
// holds the stream open: a GET /mcp stream of the gateway's own, renewed
// every RenewEvery while it is open.
func (e *Events) Renew(ctx context.Context, sessionID, streamID string) error {
	ttl := e.sessions.IdleTTL()
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.PExpire(ctx, e.streamKey(sessionID, streamID), ttl)
		p.PExpire(ctx, e.indexKey(sessionID), ttl)
		p.PExpire(ctx, e.sizesKey(sessionID), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew events: %w", err)
	}
	return nil
}

// ReplayEventsAfter sends every event of lastEventID's stream recorded after
// it, in order, and returns the stream id.
func (e *Events) ReplayEventsAfter(ctx context.Context, sessionID, lastEventID string, send func(eventID string, message json.RawMessage) error) (string, error) {
	streamID, entry, err := e.find(ctx, sessionID, lastEventID)
	if err != nil {
		return "", err
	}
	key := e.streamKey(sessionID, streamID)
	after, err := e.rdb.XRange(ctx, key, "("+entry, "+").Result()
	if err != nil {
		return "", fmt.Errorf("replay events: %w", err)
	}
	for _, m := range after {
		raw, _ := m.Values["m"].(string)
		if err := send(streamID+"_"+m.ID, json.RawMessage(raw)); err != nil {
			return "", err
		}
	}
	return streamID, nil
}

// Known reports whether lastEventID is an event recorded on one of the
// session's streams (one Redis command): nil if it is, an error wrapping
// server.ErrUnknownEventID if it is not (malformed, never recorded,
// trimmed, expired, or another session's), another error if Redis could
// not tell.
func (e *Events) Known(ctx context.Context, sessionID, lastEventID string) error {
	_, _, err := e.find(ctx, sessionID, lastEventID)
	return err
}

// find splits lastEventID into its stream id and Redis entry id, checking
// that the entry is recorded in the session's stream.
func (e *Events) find(ctx context.Context, sessionID, lastEventID string) (streamID, entry string, err error) {
	streamID, entry, ok := strings.Cut(lastEventID, "_")
	if !ok || streamID == "" || entry == "" {
		return "", "", fmt.Errorf("%w: %s", server.ErrUnknownEventID, lastEventID)
	}
	found, err := e.rdb.XRangeN(ctx, e.streamKey(sessionID, streamID), entry, entry, 1).Result()
	if err != nil {
		if isBadID(err) {
			return "", "", fmt.Errorf("%w: %s", server.ErrUnknownEventID, lastEventID)
		}
		return "", "", fmt.Errorf("replay events: %w", err)
	}
	if len(found) == 0 {
		return "", "", fmt.Errorf("%w: %s", server.ErrUnknownEventID, lastEventID)
	}
	return streamID, entry, nil
}

// PurgeSession drops the session's events once the session has ended. mcp-go
// also calls it when a replica merely forgets a session (idle sweep,
// shutdown) while the session lives on elsewhere; then the events stay, to
// expire with the session.
func (e *Events) PurgeSession(ctx context.Context, sessionID string) error {
	live, err := e.sessions.Exists(ctx, sessionID)
	if err != nil || live {
		return err
	}
	streams, err := e.rdb.SMembers(ctx, e.indexKey(sessionID)).Result()
	if err != nil {
		return fmt.Errorf("purge events: %w", err)
	}
	keys := []string{e.indexKey(sessionID), e.sizesKey(sessionID)}
	for _, s := range streams {
		keys = append(keys, e.streamKey(sessionID, s))
	}
	return e.rdb.Del(ctx, keys...).Err()
}

func isBadID(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "Invalid stream ID")
}
