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
	// endExpired: the token's exp, plus the verifier's clock leeway, has
	// passed.
	endExpired = "expired"
)

// expiryRecheck is how often a stream whose token's exp has passed asks
// the verifier again while the verifier still accepts the token (its
// clock leeway): the stream ends within this long of the first refusal.
const expiryRecheck = time.Second

// errStreamAuthorization is the cause of a stream's context ended by
// authorize.
var errStreamAuthorization = errors.New("the stream's access token is no longer accepted")

// grantStreams are the open streams of this replica by the grant of the
// token each was opened with, for revocations as they arrive.
type grantStreams struct {
	mu      sync.Mutex
	byGrant map[string]map[*streamGrant]struct{}
}

// streamGrant is one open stream's authorization: end closes the stream
// (once, and only while it is open).
type streamGrant struct {
	end func(reason string)
}

func (gs *grantStreams) add(grant string, s *streamGrant) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.byGrant == nil {
		gs.byGrant = map[string]map[*streamGrant]struct{}{}
	}
	if gs.byGrant[grant] == nil {
		gs.byGrant[grant] = map[*streamGrant]struct{}{}
	}
	gs.byGrant[grant][s] = struct{}{}
}

func (gs *grantStreams) remove(grant string, s *streamGrant) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if m := gs.byGrant[grant]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(gs.byGrant, grant)
		}
	}
}

// len is the number of grants with an open stream here (tests).
func (gs *grantStreams) len() int {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return len(gs.byGrant)
}

// revoked ends every stream of grant on this replica. It runs on the
// revocation Set's goroutine (revocation.Set.OnRevoke) and does not block:
// ending a stream cancels its context; its handler returns on its own.
func (gs *grantStreams) revoked(grant string) {
	gs.mu.Lock()
	streams := make([]*streamGrant, 0, len(gs.byGrant[grant]))
	for s := range gs.byGrant[grant] {
		streams = append(streams, s)
	}
	gs.mu.Unlock()
	for _, s := range streams {
		s.end(endRevoked)
	}
}

// authorize ties a server-to-client stream (GET /sse, GET /mcp) to the
// access token it was opened with: the returned context ends when the
// token stops being accepted, and stop must be called when the stream
// closes (it releases the timer and the grant's entry).
//
//   - Revocation: the stream is registered under the token's grant_id and
//     ended when the revocation Set learns the grant is revoked
//     (revocation.Set.OnRevoke: within about a millisecond of the
//     announcement, or at the reconcile or resubscription that finds it).
//     Revoked is asked once after registering, for a revocation that
//     arrived between the token's verification and the registration. A
//     token without a grant_id cannot be revoked by grant (as on requests).
//   - Expiry: a timer fires at the token's exp and asks the verifier
//     again; while the verifier still accepts the token (its clock leeway,
//     the same that admits requests) it asks every expiryRecheck, and the
//     first refusal ends the stream. A verifier that cannot tell (signing
//     keys unavailable) is asked again later: the stream is not ended for
//     an outage.
//
// Ending the stream cancels the context: the handler returns, the HTTP
// response ends cleanly (the last chunk is written), and the client that
// reconnects with the same token gets the ordinary 401 with its
// WWW-Authenticate challenge. No message announces the end: MCP
// Streamable HTTP (2025-11-25, "Listening for Messages from the Server")
// lets the server close a GET stream at any time, and a legacy HTTP+SSE
// session simply ends with its stream. Each end is counted and logged once.
func (g *Gateway) authorize(ctx context.Context, transport string, claims *tokens.Claims) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var once sync.Once
	sg := &streamGrant{}
	sg.end = func(reason string) {
		once.Do(func() {
			if ctx.Err() != nil {
				return // the stream has ended already
			}
			cancel(errStreamAuthorization)
			g.metrics.streamEnded(transport, reason)
			g.log.InfoContext(ctx, "stream ended: the access token it was opened with is no longer accepted; the client reconnects with a new token",
				"transport", transport, "reason", reason, "client_id", claims.ClientID, "grant_id", claims.GrantID)
		})
	}
	grant := claims.GrantID
	// followed: the stream's grant can be revoked (a grant_id, a Set).
	followed := grant != "" && g.revocations != nil
	if followed {
		g.grantStreams.add(grant, sg)
		if g.revocations.Revoked(grant) {
			sg.end(endRevoked)
		}
	}
	var (
		mu      sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	var check func()
	check = func() {
		_, err := g.verifier.Verify(ctx, claims.Raw)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil, errors.Is(err, tokens.ErrKeysUnavailable):
			mu.Lock()
			if !stopped {
				timer = time.AfterFunc(expiryRecheck, check)
			}
			mu.Unlock()
		case followed && g.revocations.Revoked(grant):
			sg.end(endRevoked)
		default:
			sg.end(endExpired)
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
		if followed {
			g.grantStreams.remove(grant, sg)
		}
		cancel(nil)
	}
}
