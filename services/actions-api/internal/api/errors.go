package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// Error is the one JSON error shape of the API: every failure, including
// unknown paths, wrong methods and panics, answers with it.
type Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// apiError is a failure a handler returns; the error handler renders it.
type apiError struct {
	status int
	code   string
	desc   string
	// challenge is the WWW-Authenticate value (401, 403 and bearer 400s).
	challenge string
	// retryAfter is the Retry-After value (429; 503 defaults to retryAfterUnavailable).
	retryAfter string
	// cause is logged, never returned.
	cause error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.desc + ": " + e.cause.Error()
	}
	return e.code + ": " + e.desc
}

func (e *apiError) Unwrap() error { return e.cause }

func newError(status int, code, desc string) *apiError {
	return &apiError{status: status, code: code, desc: desc}
}

// retryAfterUnavailable is the Retry-After of a 503, in seconds: the
// fleet's dependencies fail fast and recover within about a second.
const retryAfterUnavailable = "5"

// unavailable is a 503 whose cause is logged.
func unavailable(desc string, cause error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: desc, cause: cause}
}

// Descriptions of a transient failure (503): the call can be repeated, or
// it ran out of time with a write whose outcome is unknown.
const (
	descUnavailable  = "the capability service is unavailable; retry later"
	descMaybeApplied = "the capability service did not answer in time; the change may have been made: check before repeating it"
	// descTooLarge is a 500's: the same call fails the same way.
	descTooLarge = "the capability service's request or reply is over the gRPC message size limit; repeating the call will not help"
)

// fromCore maps an error of a capability backend's call with
// fault.AnswerFor, the mapping the mcp-gateway shares. Messages of caller
// errors (InvalidArgument, OutOfRange, FailedPrecondition,
// Unauthenticated, PermissionDenied, NotFound, AlreadyExists,
// ResourceExhausted) are written by the backend for callers and passed on,
// cut to fault.MaxMessageBytes (fault.CallerMessage) in the body and the
// challenge alike;
// anything else gets a generic text and its details are logged. The
// backend verifies the token again, so its refusals carry a Bearer
// challenge too, naming metadata (the resource metadata URL) like the
// API's own. A DeadlineExceeded call of a write that is not
// registry.Action.RetrySafe (safe false) reached the backend, which may have done it: its 503 says
// so (descMaybeApplied) rather than "retry later", which had a GPT
// repeat a write that was made. A ResourceExhausted answers 429 with
// Retry-After: the backend's google.rpc.RetryInfo delay rounded up to
// whole seconds, else registry.DefaultRetryAfter (registry.RetryAfter) —
// except gRPC's own ResourceExhausted for a message over a size limit
// (registry.MessageTooLarge: the backend's reply over the client's 4 MiB
// receive limit, typically), which no retry gets past: a 500 saying so
// (descTooLarge), its details logged.
func fromCore(err error, metadata string, scopes []string, safe bool) *apiError {
	st := status.Convert(err)
	a := fault.AnswerFor(st.Code())
	switch {
	case st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied:
		msg := fault.CallerMessage(st.Message())
		return &apiError{status: a.HTTPStatus, code: a.Error, desc: msg, challenge: challenge(metadata, a.Error, msg, scopes)}
	case registry.MessageTooLarge(err):
		return &apiError{status: http.StatusInternalServerError, code: "server_error", desc: descTooLarge, cause: err}
	case st.Code() == codes.ResourceExhausted:
		// A 429 says when to retry, as the document promises: the
		// backend's RetryInfo, else registry.DefaultRetryAfter.
		return &apiError{status: a.HTTPStatus, code: a.Error, desc: fault.CallerMessage(st.Message()),
			retryAfter: ratelimit.RetryAfterSeconds(registry.RetryAfter(err))}
	case a.CallerError:
		return &apiError{status: a.HTTPStatus, code: a.Error, desc: fault.CallerMessage(st.Message())}
	case a.Transient() && st.Code() == codes.DeadlineExceeded && !safe:
		return &apiError{status: a.HTTPStatus, code: a.Error, desc: descMaybeApplied, cause: err}
	case a.Transient():
		return &apiError{status: a.HTTPStatus, code: a.Error, desc: descUnavailable, cause: err}
	}
	return &apiError{status: a.HTTPStatus, code: a.Error, desc: "unexpected error", cause: err}
}

// errorHandler renders every error as Error: ours (apiError), echo's own
// (unknown route, wrong method, body too large) and anything else (500,
// logged with its cause).
func (s *server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = fromEcho(he)
	default:
		ae = &apiError{status: http.StatusInternalServerError, code: "server_error", desc: "unexpected error", cause: err}
	}
	r := c.Request()
	if ae.status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"status", ae.status, "err", err)
	}
	h := c.Response().Header()
	if ae.challenge != "" {
		h.Set("WWW-Authenticate", ae.challenge)
	}
	if ae.retryAfter == "" && ae.status == http.StatusServiceUnavailable {
		// Every 503 says when to retry (RFC 9110 section 10.2.3), like the
		// gateway's and the auth-server's.
		ae.retryAfter = retryAfterUnavailable
	}
	if ae.retryAfter != "" {
		h.Set("Retry-After", ae.retryAfter)
	}
	h.Set("Cache-Control", "no-store")
	var werr error
	if r.Method == http.MethodHead {
		werr = c.NoContent(ae.status)
	} else {
		werr = c.JSON(ae.status, Error{Error: ae.code, Description: ae.desc})
	}
	if werr != nil {
		s.log.WarnContext(r.Context(), "writing error response", "err", werr)
	}
}

func fromEcho(he *echo.HTTPError) *apiError {
	switch he.Code {
	case http.StatusNotFound:
		return newError(http.StatusNotFound, "not_found", "no such endpoint")
	case http.StatusMethodNotAllowed:
		return newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	case http.StatusRequestEntityTooLarge:
		return newError(http.StatusRequestEntityTooLarge, "request_too_large", "request body too large")
	case http.StatusUnauthorized:
		return newError(http.StatusUnauthorized, "invalid_token", "authentication required")
	case http.StatusForbidden:
		return newError(http.StatusForbidden, "insufficient_scope", "forbidden")
	case http.StatusTooManyRequests:
		return newError(http.StatusTooManyRequests, "rate_limited", "too many requests")
	case http.StatusServiceUnavailable:
		return newError(http.StatusServiceUnavailable, "temporarily_unavailable", "service unavailable")
	}
	if he.Code >= 400 && he.Code < 500 {
		return newError(he.Code, "invalid_request", strings.ToLower(http.StatusText(he.Code)))
	}
	return &apiError{status: http.StatusInternalServerError, code: "server_error", desc: "unexpected error", cause: he}
}
