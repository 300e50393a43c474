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

// streamKey and indexKey share the session's hash tag {<hash>}: StoreEvent's
// transaction and PurgeSession's DEL touch several of them at once, which a
// Redis Cluster allows within one hash slot only.
func (e *Events) streamKey(sessionID, streamID string) string {
	return e.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sessionID)), streamID)
}

func (e *Events) indexKey(sessionID string) string {
	return e.rdb.Key("mcp", "events", redisx.Tag(redisx.Hash(sessionID)))
}

// StoreEvent appends message to the stream and returns its event id.
func (e *Events) StoreEvent(ctx context.Context, sessionID, streamID string, message json.RawMessage) (string, error) {
	if strings.Contains(streamID, "_") {
		return "", fmt.Errorf("stream id %q contains '_'", streamID)
	}
	key := e.streamKey(sessionID, streamID)
	ttl := e.sessions.IdleTTL()
	var add *redis.StringCmd
	_, err := e.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		add = p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: e.maxLen, Approx: true, Values: []any{"m", []byte(message)}})
		p.PExpire(ctx, key, ttl)
		p.SAdd(ctx, e.indexKey(sessionID), streamID)
		p.PExpire(ctx, e.indexKey(sessionID), ttl)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store event: %w", err)
	}
	return streamID + "_" + add.Val(), nil
}

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
	keys := []string{e.indexKey(sessionID)}
	for _, s := range streams {
		keys = append(keys, e.streamKey(sessionID, s))
	}
	return e.rdb.Del(ctx, keys...).Err()
}

func isBadID(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "Invalid stream ID")
}
