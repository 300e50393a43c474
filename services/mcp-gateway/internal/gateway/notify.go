package gateway

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// legacyStreamKey carries, in the context of a /messages request handed to
// mcp-go (serveLegacyMessage), the legacy stream its notifications go on.
type legacyStreamKey struct{}

// legacyStream is a legacy (2024-11-05 HTTP+SSE) session's stream on this
// replica: mcp-go's SSE server and the session's id there.
type legacyStream struct {
	sse     *server.SSEServer
	session string
}

// notifyClient sends the client of the request in ctx the notification
// method with params (a notifications/progress, a notifications/message),
// as mcp-go's SendNotificationToClient does, with its errors
// (server.ErrNotificationNotInitialized for a session not initialized; no
// server in ctx sends nothing and returns nil).
//
// On the legacy stream the notification is queued where the request's
// answer will be, in the order sent (SSEServer.SendEventToSession), so
// that every notification a handler sent is written before its answer.
// mcp-go's SendNotificationToClient queued it on the session's
// notification channel, whence a goroutine of its own moved it to the
// stream's queue, while the answer went to that queue directly: a
// notifications/progress could follow its call's answer, which MCP
// (basic/utilities/progress: a notification references only a request in
// progress) does not allow (TestProgressPrecedesItsAnswer). A full queue
// (100 events waiting for the stream) drops the notification with an
// error, as a full notification channel did. Over Streamable HTTP mcp-go
// writes the request's notifications before its answer itself: it drains
// the notification channel first.
func notifyClient(ctx context.Context, method string, params map[string]any) error {
	ls, ok := ctx.Value(legacyStreamKey{}).(legacyStream)
	if !ok {
		if srv := server.ServerFromContext(ctx); srv != nil {
			return srv.SendNotificationToClient(ctx, method, params)
		}
		return nil
	}
	if cs := server.ClientSessionFromContext(ctx); cs == nil || !cs.Initialized() {
		return server.ErrNotificationNotInitialized
	}
	return ls.sse.SendEventToSession(ls.session, mcp.JSONRPCNotification{
		JSONRPC:      mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{Method: method, Params: mcp.NotificationParams{AdditionalFields: params}},
	})
}
