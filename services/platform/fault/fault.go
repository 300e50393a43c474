// Package fault is the fleet's one vocabulary of domain errors and the one
// place that maps them to gRPC codes. Caller mistakes never become Internal;
// unexpected errors become Internal with their details logged, not returned.
package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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

// HTTPStatus maps a gRPC code from capability-core to the HTTP status a
// REST connector answers, and the error code of its JSON body.
func HTTPStatus(c codes.Code) (int, string) {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return 400, "invalid_request"
	case codes.Unauthenticated:
		return 401, "invalid_token"
	case codes.PermissionDenied:
		return 403, "insufficient_scope"
	case codes.NotFound:
		return 404, "not_found"
	case codes.ResourceExhausted:
		return 429, "rate_limited"
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return 503, "temporarily_unavailable"
	}
	return 500, "server_error"
}
