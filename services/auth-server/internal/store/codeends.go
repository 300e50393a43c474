package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// A user's disconnect of an app (oauth.Server.Disconnect) ends the app's
// grants of the user, and also the codes issued to the app for the user
// and not redeemed yet: a code issued moments before the disconnect would
// otherwise redeem for up to AUTH_CODE_TTL into a new grant.
//
// The codes a subject has outstanding are indexed in one sorted set,
// as:subject-codes:<sha256(subject)>: member "<code handle> <client id>"
// (CodeHandle's "<grant id>.<mac>", which holds no space), score the code's
// expiry (Unix ms, the store's clock). The code's creation writes it in
// the pipeline that writes the code (putCodeField: no round trip more),
// drops the members expired more than AUTH_CODE_TTL ago (indexCode), and
// makes the set live at least as long as the code (redisx.ExpireAtLeast),
// so the set holds the codes of the last 2×AUTH_CODE_TTL or so and
// expires with the last of them. A code whose
// index entry cannot be written is not issued (the authorization answers
// 503): no code exists that a disconnect could miss.
//
// EndCodes marks each of them that is not redeemed yet "ended", in a
// script on the code's own key (endCodeScript); the redemption script
// (redeemScript), which reads the code's hash anyway, refuses an ended
// code, atomically: a code is either redeemed before the mark — EndCodes
// then returns its grant's id, which the disconnect revokes by id with the
// grants listed under the subject (on a Cluster the listing may not have
// landed yet: EndCodes) — or refused after it. The mark is on the code, in the code's hash slot, so
// a Redis Cluster runs each script on one node; a per-(subject, client)
// mark that the redemption script read would be a second hash slot in
// one script (CROSSSLOT). The mark lives as long as the code.

// ErrCodeEnded is the answer for a code whose user disconnected its app
// after the code was issued and before it was redeemed (EndCodes): the
// code no longer redeems (the oauth package answers 400 invalid_grant).
var ErrCodeEnded = errors.New("authorization code ended: the user disconnected its app after it was issued")

// subjectCodesKey is the set of sub's outstanding codes.
func (s *Store) subjectCodesKey(sub string) string {
	return s.k("subject-codes", redisx.Hash(sub))
}

// indexCode queues on pipe the index entry of the new code sig of request
// r (its subject and client), expiring with the code (ttl). It drops the
// entries whose code expired more than AUTH_CODE_TTL ago by this
// process's clock: the scores are the issuing replicas' clocks, so an
// entry of a live code stays as long as the replicas' clocks differ by
// less than AUTH_CODE_TTL plus the minute ttl holds over the code's
// expiry (ttlFor) — docs/operations/redis.md.
func (s *Store) indexCode(ctx context.Context, pipe redis.Pipeliner, sig string, r fosite.Requester, ttl time.Duration) {
	sub := subjectOf(r)
	if sub == "" || r.GetClient() == nil {
		return
	}
	key := s.subjectCodesKey(sub)
	now := s.now()
	pipe.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.Add(-s.ttl.Code).UnixMilli(), 10))
	pipe.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(ttl).UnixMilli()), Member: sig + " " + r.GetClient().GetID()})
	redisx.ExpireAtLeast(ctx, pipe, key, ttl)
}

// endCodeScript ends a code that is not redeemed: it marks it "ended" (the
// time, Unix ms) unless it was redeemed or is gone.
//
//	KEYS[1] the code's hash, KEYS[2] and KEYS[3] its grant's record in
//	either format (grantKey, oldGrantKey: the code's hash slot, the grant
//	id's tag); ARGV[1] the time (Unix ms)
//
// Returns 1 ended (now, or before), 0 redeemed already and its grant's
// record is there, 2 redeemed already and its grant is gone (revoked or
// expired), -1 gone (expired).
var endCodeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'used') == 1 then
  if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 0 end
  return 2
end
redis.call('HSET', KEYS[1], 'ended', ARGV[1])
return 1
`)

// EndCodes ends every code issued to clientID for sub that has not been
// redeemed and has not expired: each is refused from now on (ErrCodeEnded
// at its read and at its redemption, atomically in the redemption
// script). A code redeemed already is left as it is, and its grant's id
// is returned in redeemed when the grant's record is still there: the
// caller revokes those grants by id (RevokeGrant) as well as the grants
// it lists under sub (Grants). The listing alone may miss one: on a Redis
// Cluster the redemption's script (the code's node) and its listing of
// the grant under sub (another node) are sent in parallel, so a code can
// be redeemed here before its grant is listed there
// (TestClusterRedemptionInFlightSurvivesDisconnect). It returns how many
// codes it ended (a code ended before counts again), or ErrUnavailable —
// then some may be ended and others not, and a retry ends the rest.
//
// Every entry of sub's index is looked at, whatever its score: the
// script skips an expired code, and the scores are other replicas'
// clocks (indexCode). One round trip to read the index and one for the
// codes (a pipeline of endCodeScript calls, one per code: each touches
// its code's hash slot only); none when sub has no code of clientID.
func (s *Store) EndCodes(ctx context.Context, sub, clientID string) (ended int, redeemed []string, err error) {
	if sub == "" || clientID == "" {
		return 0, nil, nil
	}
	now := s.now().UnixMilli()
	members, err := s.rdb.ZRange(ctx, s.subjectCodesKey(sub), 0, -1).Result()
	if err != nil {
		return 0, nil, unavailable(err)
	}
	pipe := s.rdb.Pipeline()
	var ends []*redis.Cmd
	var ids []string
	for _, m := range members {
		sig, client, ok := strings.Cut(m, " ")
		if !ok || client != clientID {
			continue
		}
		id, _, err := splitHandle(sig)
		if err != nil {
			continue
		}
		if key := s.codeKey(sig); key != "" {
			ends = append(ends, endCodeScript.Eval(ctx, pipe, []string{key, s.grantKey(id), s.oldGrantKey(id)}, now))
			ids = append(ids, id)
		}
	}
	if len(ends) == 0 {
		return 0, nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, nil, unavailable(err)
	}
	for i, c := range ends {
		switch v, _ := c.Int64(); v {
		case 1:
			ended++
		case 0:
			if !slices.Contains(redeemed, ids[i]) {
				redeemed = append(redeemed, ids[i])
			}
		}
	}
	return ended, redeemed, nil
}
