package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"google.golang.org/grpc/codes"

	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/ratelimit"
)

// Error is the one JSON error shape of the API: every failure it answers,
// including unknown paths, wrong methods and panics, answers with it. A
// request net/http refuses while reading it never reaches it: net/http
// answers in plain text before any handler runs — for example 400 for a
// bad percent-escape in the path or a malformed header, 431 for headers
// over 1 MiB, 501, 417, 505 (TestUnparsableRequestIsNetHTTPsPlainText) —
// as the document's Error schema says (openapi.errorSchema).
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
	// accept is the header naming what a 415 would have accepted (RFC
	// 9110 section 15.5.16): {"Accept", "application/json"} or
	// {"Accept-Encoding", "identity"}; zero for none.
	accept [2]string
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

// errBodyTooLarge is the 413 of a POST body over MAX_BODY_BYTES.
func errBodyTooLarge() *apiError {
	return newError(http.StatusRequestEntityTooLarge, "request_too_large", "request body too large")
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

// fromCore words fault.Classify's answer to a capability backend call's
// error as the API's JSON error; the mcp-gateway words the same answer
// as a tool result (docs/reference/actions.md, "Errors"). A caller error
// (fault.ClassCaller) passes the backend's message on (fault.Failure.Message,
// cut to fault.MaxMessageBytes) in the body, and for Unauthenticated and
// PermissionDenied in a Bearer challenge too, naming metadata (the
// resource metadata URL) like the API's own: the backend verifies the
// token again. A rate limit (fault.ClassRateLimited) is a 429 with the
// backend's message and Retry-After: fault.Failure.RetryAfter in whole
// seconds. A message over a gRPC size limit (fault.ClassTooLarge) is a
// 500 saying that no retry gets past it (descTooLarge); a timed-out
// write that is not registry.Action.RetrySafe (safe false;
// fault.ClassMaybeApplied) a 503 saying the change may have been made
// (descMaybeApplied) rather than "retry later", which had a GPT repeat a
// write that was made. Server faults get a fixed text, their details
// logged.
func fromCore(err error, metadata string, scopes []string, safe bool) *apiError {
	f := fault.Classify(err, safe)
	e := &apiError{status: f.HTTPStatus, code: f.Error}
	switch f.Class {
	case fault.ClassCaller:
		e.desc = f.Message
		if f.Code == codes.Unauthenticated || f.Code == codes.PermissionDenied {
			e.challenge = challenge(metadata, f.Error, f.Message, scopes)
		}
	case fault.ClassRateLimited:
		// A 429 says when to retry, as the document promises.
		e.desc, e.retryAfter = f.Message, ratelimit.RetryAfterSeconds(f.RetryAfter)
	case fault.ClassTooLarge:
		e.desc, e.cause = descTooLarge, err
	case fault.ClassMaybeApplied:
		e.desc, e.cause = descMaybeApplied, err
	case fault.ClassUnavailable:
		e.desc, e.cause = descUnavailable, err
	default:
		e.desc, e.cause = "unexpected error", err
	}
	return e
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
	if ae.accept[0] != "" {
		h.Set(ae.accept[0], ae.accept[1])
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
		return errBodyTooLarge()
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
