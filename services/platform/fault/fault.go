// Package fault is the fleet's one vocabulary of domain errors and the one
// place that maps them to gRPC codes. Caller mistakes never become Internal;
// unexpected errors become Internal with their details logged, not returned.
package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kind classifies a domain error.
type Kind int

const (
	KindInvalidArgument Kind = iota + 1
	KindUnauthenticated
	KindPermissionDenied
	KindNotFound
	KindUnavailable
	KindResourceExhausted
)

// Error is a domain error whose message is safe to show the caller.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // optional cause, logged but never returned to the caller
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// InvalidArgument is a malformed or out-of-range argument.
func InvalidArgument(format string, args ...any) error {
	return newf(KindInvalidArgument, format, args...)
}

// Unauthenticated means no verified principal.
func Unauthenticated(format string, args ...any) error {
	return newf(KindUnauthenticated, format, args...)
}

// PermissionDenied means the principal lacks a scope or right.
func PermissionDenied(format string, args ...any) error {
	return newf(KindPermissionDenied, format, args...)
}

// NotFound means the named thing does not exist.
func NotFound(format string, args ...any) error { return newf(KindNotFound, format, args...) }

// Unavailable means a dependency is down; retrying later may work.
func Unavailable(cause error, format string, args ...any) error {
	e := newf(KindUnavailable, format, args...)
	e.Err = cause
	return e
}

// ResourceExhausted means a rate limit was hit.
func ResourceExhausted(format string, args ...any) error {
	return newf(KindResourceExhausted, format, args...)
}

var grpcCodes = map[Kind]codes.Code{
	KindInvalidArgument:   codes.InvalidArgument,
	KindUnauthenticated:   codes.Unauthenticated,
	KindPermissionDenied:  codes.PermissionDenied,
	KindNotFound:          codes.NotFound,
	KindUnavailable:       codes.Unavailable,
	KindResourceExhausted: codes.ResourceExhausted,
}

// ToStatus maps err to a gRPC status error. Errors that already carry a
// status pass through; context errors map to Canceled/DeadlineExceeded;
// anything unknown becomes Internal with a generic message.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return status.Error(grpcCodes[fe.Kind], fe.Msg)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	}
	return status.Error(codes.Internal, "internal error")
}

// UnaryServerInterceptor maps handler errors with ToStatus and logs the
// details of Internal ones.
func UnaryServerInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := ToStatus(err)
		if status.Code(st) == codes.Internal || status.Code(st) == codes.Unavailable {
			log.ErrorContext(ctx, "rpc failed", "method", info.FullMethod, "err", err)
		}
		return nil, st
	}
}

// Answer is how both connectors answer one gRPC code of a capability
// backend (capability-core or one in CAPABILITY_BACKENDS): the mcp-gateway
// as a tool result with isError, the actions-api as an HTTP error. It is
// the one table of docs/reference/mcp.md ("Tool call failures") and
// docs/reference/actions.md ("Errors").
type Answer struct {
	// HTTPStatus and Error are the actions-api's status and the "error"
	// of its JSON body.
	HTTPStatus int
	Error      string
	// Result is the result label of the gateway's
	// tollgate_mcp_tool_calls_total.
	Result string
	// CallerError: the caller can act on the failure, and the backend's
	// status message (written for callers) is shown, cut to
	// MaxMessageBytes by CallerMessage. Otherwise
	// the failure is the service's: a fixed text is shown and the details
	// are logged.
	CallerError bool
}

// answers is the mapping; a code not in it is a server fault (Internal,
// Unknown, Unimplemented, DataLoss, Aborted, OK from a broken backend).
var answers = map[codes.Code]Answer{
	codes.InvalidArgument:    {400, "invalid_request", "invalid_arguments", true},
	codes.OutOfRange:         {400, "invalid_request", "invalid_arguments", true},
	codes.FailedPrecondition: {400, "invalid_request", "failed_precondition", true},
	codes.Unauthenticated:    {401, "invalid_token", "unauthenticated", true},
	codes.PermissionDenied:   {403, "insufficient_scope", "forbidden", true},
	codes.NotFound:           {404, "not_found", "not_found", true},
	codes.AlreadyExists:      {409, "conflict", "conflict", true},
	codes.ResourceExhausted:  {429, "rate_limited", "rate_limited", true},
	codes.Unavailable:        {503, "temporarily_unavailable", "unavailable", false},
	codes.DeadlineExceeded:   {503, "temporarily_unavailable", "unavailable", false},
	codes.Canceled:           {503, "temporarily_unavailable", "unavailable", false},
}

// serverFault is the answer to any code not in answers.
var serverFault = Answer{500, "server_error", "error", false}

// AnswerFor returns how the connectors answer code c.
func AnswerFor(c codes.Code) Answer {
	if a, ok := answers[c]; ok {
		return a
	}
	return serverFault
}

// Transient reports whether a retry later may succeed without the caller
// changing anything (the backend is down, slow or the call was cancelled).
func (a Answer) Transient() bool { return a.HTTPStatus == 503 }

// MaxMessageBytes bounds the backend's status message that a connector
// passes on for a caller error (CallerMessage): 1 KiB of UTF-8, the marker
// included. A status message travels in the grpc-message trailer, which
// gRPC bounds only by the header list size (16 MiB in grpc-go's client),
// and a connector would otherwise copy it whole into a tool result (and
// its _meta), a JSON error body and a WWW-Authenticate header.
const MaxMessageBytes = 1024

// TruncationMarker ends a message that CallerMessage cut.
const TruncationMarker = "... (truncated)"

// CallerMessage is the text both connectors show for a caller error: the
// backend's status message (written for callers), cut to at most
// MaxMessageBytes bytes. A longer one keeps its first bytes up to a rune
// boundary, so that no UTF-8 sequence is split, followed by
// TruncationMarker. Bytes that are not UTF-8 are left to the encoders
// (encoding/json writes U+FFFD).
func CallerMessage(msg string) string {
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	cut := MaxMessageBytes - len(TruncationMarker)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + TruncationMarker
}
