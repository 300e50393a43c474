package registry

import (
	"math"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
// DefaultRetryAfter. The
// actions-api sends it as Retry-After, the mcp-gateway says it in the
// tool error's text.
func RetryAfter(err error) time.Duration {
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
