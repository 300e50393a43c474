package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Reasons a stream is ended by the gateway because the access token it
// was opened with is no longer accepted (tollgate_mcp_streams_ended_total).
const (
	// endRevoked: the token's grant was revoked (grant_id claim,
	// services/platform/revocation).
	endRevoked = "revoked"
	// endClientRemoved: the token's client was removed from the
	// auth-server's clients file after the token was issued
	// (services/platform/revocation, removed clients).
	endClientRemoved = "client_removed"
	// endExpired: the token's exp, plus the verifier's clock leeway, has
	// passed.
	endExpired = "expired"
	// endKeyRemoved: the key that signed the token left the key set (an
	// emergency rotation, docs/operations/key-rotation.md) or the issuer
	// changed.
	endKeyRemoved = "key_removed"
)

// expiryRecheck is how often a stream whose token's exp has passed asks
// the verifier again while the verifier still accepts the token (its
// clock leeway): the stream ends within this long of the first refusal.
const expiryRecheck = time.Second

// errStreamAuthorization is the cause of a stream's context ended by
// authorize.
var errStreamAuthorization = errors.New("the stream's access token is no longer accepted")

// streamsBy are the open streams of this replica by one attribute of the
// token each was opened with (its grant, its client, the kid of its
// signing key), for revocations, client removals and key removals as they
// arrive.
type streamsBy struct {
	mu sync.Mutex
	m  map[string]map[*streamGrant]struct{}
}

// streamGrant is one open stream's authorization: end closes the stream
// (once, and only while it is open).
type streamGrant struct {
	claims *tokens.Claims
	end    func(reason string)
}

func (sb *streamsBy) add(k string, s *streamGrant) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.m == nil {
		sb.m = map[string]map[*streamGrant]struct{}{}
	}
	if sb.m[k] == nil {
		sb.m[k] = map[*streamGrant]struct{}{}
	}
	sb.m[k][s] = struct{}{}
}

func (sb *streamsBy) remove(k string, s *streamGrant) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if m := sb.m[k]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(sb.m, k)
		}
	}
}

// of are the streams under k now.
func (sb *streamsBy) of(k string) []*streamGrant {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	streams := make([]*streamGrant, 0, len(sb.m[k]))
	for s := range sb.m[k] {
		streams = append(streams, s)
	}
	return streams
}

// len is the number of keys with an open stream here (tests).
func (sb *streamsBy) len() int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return len(sb.m)
}

// grantRevoked ends every stream of grant on this replica. It runs on the
// revocation Set's goroutine (revocation.Set.OnRevoke) and does not block:
// ending a stream cancels its context; its handler returns on its own.
func (g *Gateway) grantRevoked(grant string) {
	for _, s := range g.grantStreams.of(grant) {
		s.end(endRevoked)
	}
}

// clientRemoved ends every stream on this replica of a token of client
// issued at or before the client's removal; a stream of a token issued
// after it (the client added back) stays. Like grantRevoked it runs on
// the revocation Set's goroutine (revocation.Set.OnClientRemoved) and does
// not block.
func (g *Gateway) clientRemoved(client string) {
	for _, s := range g.clientStreams.of(client) {
		if g.revocations.ClientRemoved(client, s.claims.IssuedAt) {
			s.end(endClientRemoved)
		}
	}
}

// keysRemoved ends every stream on this replica whose token was signed by
// a key that left the verifier's key set. It runs on a goroutine the
// verifier's key fetch starts once the new set is in use
// (tokens.Verifier.OnKeysRemoved), and does not block. A stream under a
// removed kid is ended only if the verifier no longer publishes the very
// key its token was checked with: a kid that now names a new key keeps
// the streams of that new key's tokens.
func (g *Gateway) keysRemoved(kids []string) {
	for _, kid := range kids {
		for _, s := range g.keyStreams.of(kid) {
			if !g.verifier.Publishes(s.claims) {
				s.end(endKeyRemoved)
			}
		}
	}
}

// authorize ties a server-to-client stream (GET /sse, GET /mcp) to the
// access token it was opened with: the returned context ends when the
// token stops being accepted, and stop must be called when the stream
// closes (it releases the timer and the stream's index entries).
//
//   - Revocation: the stream is registered under the token's grant_id and
//     ended when the revocation Set learns the grant is revoked
//     (revocation.Set.OnRevoke: within about a millisecond of the
//     announcement, or at the reconcile or resubscription that finds it).
//     Revoked is asked once after registering, for a revocation that
//     arrived between the token's verification and the registration. A
//     token without a grant_id cannot be revoked by grant (as on requests).
//   - Client removal: the stream is also registered under the token's
//     client_id and ended when the Set learns the client was removed from
//     the auth-server's clients file at or after the token's iat
//     (revocation.Set.OnClientRemoved, with the same timing as a
//     revocation); ClientRemoved is asked once after registering.
//   - Key removal: the stream is registered under the kid of the key that
//     signed its token and ended when a key-set fetch of the verifier no
//     longer holds that key, or names another issuer
//     (tokens.Verifier.OnKeysRemoved: at the fetch that brings the new
//     set, the routine refresh or an unknown kid's refetch; nothing is
//     polled). Publishes is asked once after registering, for a set that
//     replaced the key between the token's verification and the
//     registration.
//   - Expiry: a timer fires at the token's exp and asks the verifier
//     again (tokens.Verifier.Recheck: from memory, not counted as a
//     request's verification); while the verifier still accepts the token
//     (its clock leeway, the same that admits requests) it asks every
//     expiryRecheck, and the first refusal ends the stream.
//
// Ending the stream cancels the context: the handler returns, the HTTP
// response ends cleanly (the last chunk is written), and the client that
// reconnects with the same token gets the ordinary 401 with its
// WWW-Authenticate challenge. No message announces the end: MCP
// Streamable HTTP (2025-11-25, "Listening for Messages from the Server")
// lets the server close a GET stream at any time, and a legacy HTTP+SSE
// session simply ends with its stream. Each end is counted and logged
// once, before the stream ends.
func (g *Gateway) authorize(ctx context.Context, transport string, claims *tokens.Claims) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var once sync.Once
	sg := &streamGrant{claims: claims}
	sg.end = func(reason string) {
		once.Do(func() {
			if ctx.Err() != nil {
				return // the stream has ended already
			}
			// Counted and logged before the stream ends: whoever sees the
			// end (the client, a test reading the metric right after)
			// finds it counted. Cancelled first, the handler could return
			// and the response end while this goroutine had yet to count.
			g.metrics.streamEnded(transport, reason)
			g.log.InfoContext(ctx, "stream ended: the access token it was opened with is no longer accepted; the client reconnects with a new token",
				"transport", transport, "reason", reason, "client_id", claims.ClientID, "grant_id", claims.GrantID)
			cancel(errStreamAuthorization)
		})
	}
	// The indexes the stream is registered in, each with the check that
	// ends it, asked once after registering and again when its token is
	// refused (check): one list, so that registering, checking and
	// removing cannot drift apart.
	var regs []streamRegistration
	if claims.GrantID != "" && g.revocations != nil {
		regs = append(regs, streamRegistration{&g.grantStreams, claims.GrantID, endRevoked,
			func() bool { return g.revocations.Revoked(claims.GrantID) }})
	}
	if claims.ClientID != "" && g.revocations != nil {
		regs = append(regs, streamRegistration{&g.clientStreams, claims.ClientID, endClientRemoved,
			func() bool { return g.revocations.ClientRemoved(claims.ClientID, claims.IssuedAt) }})
	}
	if claims.KeyID != "" {
		regs = append(regs, streamRegistration{&g.keyStreams, claims.KeyID, endKeyRemoved,
			func() bool { return !g.verifier.Publishes(claims) }})
	}
	for _, r := range regs {
		r.by.add(r.key, sg)
		if r.ended() {
			sg.end(r.reason)
		}
	}
	var (
		mu      sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	var check func()
	check = func() {
		err := g.verifier.Recheck(claims)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			mu.Lock()
			if !stopped {
				timer = time.AfterFunc(expiryRecheck, check)
			}
			mu.Unlock()
		default:
			sg.end(endedReason(regs))
		}
	}
	mu.Lock()
	timer = time.AfterFunc(time.Until(claims.Expiry), check)
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		for _, r := range regs {
			r.by.remove(r.key, sg)
		}
		cancel(nil)
	}
}

// streamRegistration is one index a stream is registered in by authorize
// (its grant, client or signing key), under key: ended reports whether
// what it follows now refuses the stream's token, reason the stream's end
// then.
type streamRegistration struct {
	by     *streamsBy
	key    string
	reason string
	ended  func() bool
}

// endedReason is why a stream whose token the verifier refuses ends: the
// first of its registrations that refuses it (a revoked grant, a removed
// client, a removed key), else its expiry.
func endedReason(regs []streamRegistration) string {
	for _, r := range regs {
		if r.ended() {
			return r.reason
		}
	}
	return endExpired
}
