package registry

import (
	"math"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultRetryAfter is how long both connectors tell a caller to wait
// after a backend's ResourceExhausted that carries no google.rpc.RetryInfo.
const DefaultRetryAfter = 5 * time.Second

// MaxRetryAfter bounds a backend's RetryInfo delay as passed on.
const MaxRetryAfter = time.Hour

// RetryAfter is how long a caller should wait before repeating a call
// that failed with err (a backend's ResourceExhausted): the backend's
// google.rpc.RetryInfo retry_delay when its status carries one, rounded
// up to whole seconds, at least one and at most MaxRetryAfter, else
// DefaultRetryAfter; 0 for a message over a gRPC size limit
// (MessageTooLarge), which a retry cannot get past. The
// actions-api sends it as Retry-After, the mcp-gateway says it in the
// tool error's text; both answer a 0 as a failure not to retry.
func RetryAfter(err error) time.Duration {
	if MessageTooLarge(err) {
		return 0
	}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		ri, ok := d.(*errdetails.RetryInfo)
		if !ok || ri.GetRetryDelay() == nil || ri.GetRetryDelay().CheckValid() != nil {
			continue
		}
		secs := math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())
		return time.Duration(min(max(1, secs), MaxRetryAfter.Seconds())) * time.Second
	}
	return DefaultRetryAfter
}

// MessageTooLarge reports whether err is gRPC's ResourceExhausted for a
// message over a size limit rather than a backend's rate limit: a reply
// over the client's receive limit (grpc.MaxCallRecvMsgSize, 4 MiB by
// default; "grpc: received message larger than max (N vs. M)", or after
// decompression), a request over its send limit ("trying to send message
// larger than max"), or a backend's own receive limit refusing the
// request (the same text, sent back). grpc-go makes these with
// status.Errorf and no detail, so the message is the only mark. The same
// call gets the same answer: it is not to be retried.
func MessageTooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return false
	}
	m := st.Message()
	for _, p := range []string{"grpc: received message larger than max", "grpc: received message after decompression larger than max",
		"grpc: message after decompression larger than max", "trying to send message larger than max"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}
