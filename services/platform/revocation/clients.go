package revocation

// Removed clients. When the operator removes a client from the
// auth-server's clients file, its access tokens must stop at every
// verifier, not only at the auth-server (which looks the client up):
// they carry no grant the operator could revoke one by one. A removal is
// a record beside the grants' records, with the same guarantees:
//
//  1. recorded in the sorted set {prefix}revocation:clients, member
//     "<removal ms> <client id>", score the Unix time in milliseconds at
//     which the record may be forgotten (removal + the longest
//     access-token lifetime + the clock leeway, as for a grant);
//  2. announced on the same channel {prefix}revocation, payload
//     "client <removal ms> <expiry ms> <client id>". A verifier older than
//     client records reads the payload as the grant "client" followed by
//     an expiry that is not a number, and ignores it as malformed (it logs
//     a warning); it never mistakes it for a grant id. The channel is the
//     one the backends' Redis ACL user may subscribe to
//     (charts/tollgate/files/redis-backend-acl.txt), and the key is under
//     its readable revocation:* pattern, so backends need no new rule.
//
// A record refuses the client's tokens issued (iat) at or before the
// removal; a token issued after the client is added back is accepted. The
// iat claim has whole seconds, so a token issued in the second the removal
// was recorded is refused too. Records of one client from several removals
// or several auth-server replicas (each replica that notices the removal
// records it) are merged: the latest removal time counts, which also cuts
// the tokens a replica issued before it noticed the removal itself.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// MaxClientIDLength bounds a removed client's id in records and
// announcements (the clients file's ids are short names; the longest ids
// the auth-server knows are Client ID Metadata Document URLs).
const MaxClientIDLength = 2048

// ErrInvalidClientID is returned by RemoveClients for an empty, overlong
// or non-UTF-8 client id.
var ErrInvalidClientID = errors.New("revocation: invalid client id")

// clientAnnouncementPrefix starts a removed client's announcement.
const clientAnnouncementPrefix = "client "

func clientsKey(rdb *redisx.Client) string { return rdb.Key("revocation", "clients") }

// ValidClientID reports whether RemoveClients accepts id: non-empty, at
// most MaxClientIDLength bytes, UTF-8.
func ValidClientID(id string) bool { return validClientID(id) }

func validClientID(id string) bool {
	return id != "" && len(id) <= MaxClientIDLength && utf8.ValidString(id)
}

// clientRecord is what a Set holds for one removed client: the latest
// removal and the latest record expiry it heard of, Unix ms.
type clientRecord struct {
	removed, exp int64
}

func (r clientRecord) expiry() int64 { return r.exp }

// merge: the latest removal counts (it cuts more tokens), kept until the
// latest expiry.
func (r clientRecord) merge(rec clientRecord) (clientRecord, bool) {
	next := clientRecord{removed: max(r.removed, rec.removed), exp: max(r.exp, rec.exp)}
	return next, next.removed > r.removed
}

// RemoveClients records that the clients clientIDs were removed at
// removedAt and announces it: from then on every Set refuses their
// tokens issued at or before removedAt (Set.ClientRemoved). Recording a
// removal again (another replica, a retry) is harmless: the latest
// removal time counts. A removal older than the records' lifetime is not
// recorded (its tokens have expired). It returns ErrInvalidClientID for a
// bad id (nothing is recorded then) or a Redis error unwrapped; the
// caller retries a failed call with the same removedAt.
func (r *Revoker) RemoveClients(ctx context.Context, removedAt time.Time, clientIDs ...string) error {
	for _, id := range clientIDs {
		if !validClientID(id) {
			return fmt.Errorf("%w (%d bytes)", ErrInvalidClientID, len(id))
		}
	}
	now := r.now().UnixMilli()
	rec := clientRecord{removed: removedAt.UnixMilli(), exp: removedAt.Add(r.retain).UnixMilli()}
	if len(clientIDs) == 0 || rec.exp <= now {
		return nil
	}
	key := clientsKey(r.rdb)
	// The key outlives its latest record by a minute, as the grants' key.
	ttl := max(time.Duration(rec.exp-now)*time.Millisecond, r.retain) + time.Minute
	pipe := r.rdb.TxPipeline()
	for _, id := range clientIDs {
		pipe.ZAddGT(ctx, key, redis.Z{Score: float64(rec.exp), Member: strconv.FormatInt(rec.removed, 10) + " " + id})
	}
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now, 10))
	redisx.ExpireAtLeast(ctx, pipe, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if r.local != nil {
		for _, id := range clientIDs {
			r.local.addClient(id, rec)
		}
	}
	// Announced only once recorded, as a grant (Revoke); a lost
	// announcement is caught by the reconcile.
	var errs []error
	for _, id := range clientIDs {
		p := clientAnnouncementPrefix + strconv.FormatInt(rec.removed, 10) + " " + strconv.FormatInt(rec.exp, 10) + " " + id
		if err := r.rdb.Publish(ctx, channel(r.rdb), p).Err(); err != nil {
			errs = append(errs, err)
			break // Redis is not answering: the reconcile tells the rest
		}
	}
	return errors.Join(errs...)
}

// ClientRemoved reports whether a token of clientID issued at issuedAt
// is refused because the client was removed at or after issuedAt (see
// RemoveClients). Like Revoked, it answers from memory. An empty id is
// never removed.
func (s *Set) ClientRemoved(clientID string, issuedAt time.Time) bool {
	if clientID == "" {
		return false
	}
	s.mu.RLock()
	rec, ok := s.clients[clientID]
	s.mu.RUnlock()
	return ok && s.o.Now().UnixMilli() < rec.exp && issuedAt.UnixMilli() <= rec.removed
}

// RemovedClients is the number of removed clients held (expired records
// included until the next reload prunes them).
func (s *Set) RemovedClients() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.clients)
}

// OnClientRemoved registers f to be called with the id of each client the
// Set learns was removed from now on, or removed again later than it knew
// (a later removal cuts more tokens): from an announcement, the local
// Revoker or a reload, with the same guarantees and timing as OnRevoke. f
// is called after ClientRemoved answers with the new removal; a holder
// asks ClientRemoved for each token it holds of the client (a token issued
// after the removal — the client was added back — is not refused). The
// same removal recorded by several auth-server replicas may be told more
// than once. remove unregisters f.
func (s *Set) OnClientRemoved(f func(clientID string)) (remove func()) {
	return s.clientHooks.add(f)
}

func (s *Set) learnedClients(ids ...string) { s.clientHooks.tell(ids) }

func (s *Set) addClient(id string, rec clientRecord) {
	now := s.o.Now().UnixMilli()
	s.mu.Lock()
	learned := mergeRecord(s.clients, id, rec, now)
	s.mu.Unlock()
	if learned {
		s.learnedClients(id)
	}
}

// reloadClients is Reload's merge of the removed clients, under reloadMu;
// it returns the clients whose removal it learned.
func (s *Set) reloadClients(ctx context.Context) ([]string, error) {
	now := s.o.Now().UnixMilli()
	zs, err := s.o.Redis.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: clientsKey(s.o.Redis), ByScore: true, Start: "(" + strconv.FormatInt(now, 10), Stop: "+inf",
	}).Result()
	if err != nil {
		s.metrics.reloadFailed()
		return nil, fmt.Errorf("revocation: load removed clients: %w", err)
	}
	var learned []string
	s.mu.Lock()
	pruneRecords(s.clients, now)
	for _, z := range zs {
		member, _ := z.Member.(string)
		removedText, id, ok := strings.Cut(member, " ")
		removed, err := strconv.ParseInt(removedText, 10, 64)
		if !ok || err != nil || removed <= 0 || !validClientID(id) {
			continue
		}
		if mergeRecord(s.clients, id, clientRecord{removed: removed, exp: int64(z.Score)}, now) {
			learned = append(learned, id)
		}
	}
	s.mu.Unlock()
	return learned, nil
}

type clientAnnouncement struct {
	id  string
	rec clientRecord
}

// parseClientAnnouncement reads "client <removal ms> <expiry ms> <client
// id>"; the id is the rest of the payload.
func parseClientAnnouncement(p string) (clientAnnouncement, bool) {
	rest, ok := strings.CutPrefix(p, clientAnnouncementPrefix)
	if !ok {
		return clientAnnouncement{}, false
	}
	removedText, rest, ok1 := strings.Cut(rest, " ")
	expText, id, ok2 := strings.Cut(rest, " ")
	removed, err1 := strconv.ParseInt(removedText, 10, 64)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || removed <= 0 || exp <= 0 || !validClientID(id) {
		return clientAnnouncement{}, false
	}
	return clientAnnouncement{id: id, rec: clientRecord{removed: removed, exp: exp}}, true
}
