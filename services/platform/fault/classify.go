package fault

import (
	"math"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class is what a failed call of a capability backend means to the
// caller, whatever the connector: the part of the answer that is not
// wording. Classify decides it; each connector words it (the actions-api
// as its JSON error, docs/reference/actions.md "Errors"; the mcp-gateway
// as a tool result with isError, MCP 2025-06-18 "Tools", section "Error
// Handling", docs/reference/mcp.md "Tool call failures").
type Class int

const (
	// ClassServer: a server fault the caller cannot act on (Internal,
	// Unknown, Unimplemented, Aborted, DataLoss, a broken backend's OK).
	// A fixed text is shown; the details are logged.
	ClassServer Class = iota
	// ClassCaller: a caller error (AnswerFor's CallerError) other than a
	// rate limit. Failure.Message, written by the backend for callers,
	// is shown.
	ClassCaller
	// ClassRateLimited: the backend's own ResourceExhausted. Failure.Message
	// is shown, and Failure.RetryAfter says when to try again.
	ClassRateLimited
	// ClassTooLarge: gRPC's own ResourceExhausted for a message over a
	// size limit (see Classify). A server fault, answered as ClassServer
	// is (500 server_error, result "error"), whose text says that
	// repeating the call will not help: the same call fails the same way.
	ClassTooLarge
	// ClassUnavailable: the backend is down, slow or the call was
	// cancelled (Unavailable, DeadlineExceeded, Canceled); a retry later
	// may succeed (Answer.Transient).
	ClassUnavailable
	// ClassMaybeApplied: DeadlineExceeded of a call that is not safe to
	// repeat (a write; Classify's retrySafe false). The call reached the
	// backend, which may have done it: the text says to check before
	// repeating it, not "try again". Answered as ClassUnavailable is
	// (503, Answer.Transient).
	ClassMaybeApplied
)

// DefaultRetryAfter is Failure.RetryAfter of a backend's ResourceExhausted
// that carries no usable google.rpc.RetryInfo.
const DefaultRetryAfter = 5 * time.Second

// MaxRetryAfter bounds the backend's RetryInfo delay as passed on.
const MaxRetryAfter = time.Hour

// Failure is Classify's answer to a failed call of a capability backend.
type Failure struct {
	// Answer is the per-code answer of AnswerFor: HTTP status and
	// "error" of the actions-api, result label of the gateway's metric.
	// For ClassTooLarge it is the server fault's (500, "server_error",
	// "error"), not ResourceExhausted's 429.
	Answer
	// Class is what the failure means to the caller.
	Class Class
	// Code is the call's gRPC status code (status.Convert: Unknown for
	// an error that carries no status).
	Code codes.Code
	// Message is the backend's status message cut by CallerMessage (at
	// most MaxMessageBytes of UTF-8), for ClassCaller and
	// ClassRateLimited; "" for the others, whose details are the
	// service's, logged and not shown.
	Message string
	// RetryAfter is, for ClassRateLimited only, how long the caller
	// should wait before repeating the call: the backend's
	// google.rpc.RetryInfo retry_delay (google/rpc/error_details.proto)
	// rounded up to whole seconds, 1 s to MaxRetryAfter, else
	// DefaultRetryAfter. The actions-api sends it in whole seconds as
	// Retry-After (RFC 9110 section 10.2.3, delay-seconds), the gateway
	// says it in the tool error's text. 0 for every other class.
	RetryAfter time.Duration
}

// Classify is the one classification of a capability backend call's
// error err that both connectors word: the per-code table (AnswerFor)
// and the three cases a code alone does not decide (gRPC status codes,
// grpc/grpc doc/statuscodes.md):
//
//   - ResourceExhausted is the backend's rate limit (ClassRateLimited,
//     with RetryAfter) unless it is gRPC's own refusal of a message over
//     a size limit (ClassTooLarge): a reply over the client's receive
//     limit (grpc.MaxCallRecvMsgSize, 4 MiB by default; "grpc: received
//     message larger than max (N vs. M)", or after decompression), a
//     request over its send limit ("trying to send message larger than
//     max"), or the backend's own receive limit refusing the request
//     (the same text, sent back). grpc-go makes these with status.Errorf
//     and no detail, so the message is the only mark.
//   - DeadlineExceeded of a call that is not retrySafe (a write that is
//     neither read-only nor idempotency_level IDEMPOTENT/NO_SIDE_EFFECTS:
//     registry.Tool.RetrySafe, registry.Action.RetrySafe) is
//     ClassMaybeApplied; of a retry-safe call, ClassUnavailable.
//   - Any other code is ClassCaller, ClassUnavailable or ClassServer as
//     AnswerFor says (CallerError, Transient, neither).
//
// err is the error of the call; one without a gRPC status is Unknown, a
// server fault.
func Classify(err error, retrySafe bool) Failure {
	st := status.Convert(err)
	c := st.Code()
	f := Failure{Answer: AnswerFor(c), Code: c}
	switch {
	case c == codes.ResourceExhausted && messageTooLarge(st.Message()):
		f.Answer, f.Class = serverFault, ClassTooLarge
	case c == codes.ResourceExhausted:
		f.Class, f.Message, f.RetryAfter = ClassRateLimited, CallerMessage(st.Message()), retryDelay(st)
	case f.CallerError:
		f.Class, f.Message = ClassCaller, CallerMessage(st.Message())
	case f.Transient() && c == codes.DeadlineExceeded && !retrySafe:
		f.Class = ClassMaybeApplied
	case f.Transient():
		f.Class = ClassUnavailable
	default:
		f.Class = ClassServer
	}
	return f
}

// tooLargePrefixes start grpc-go's messages of a message over a size
// limit (rpc_util.go and stream.go).
var tooLargePrefixes = [...]string{
	"grpc: received message larger than max",
	"grpc: received message after decompression larger than max",
	"grpc: message after decompression larger than max",
	"trying to send message larger than max",
}

// messageTooLarge reports whether a ResourceExhausted's message msg is
// gRPC's own for a message over a size limit.
func messageTooLarge(msg string) bool {
	for _, p := range tooLargePrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// retryDelay is Failure.RetryAfter of a rate limit's status st.
func retryDelay(st *status.Status) time.Duration {
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
