package fault_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/services/platform/fault"
)

// backend answers Check for a service name in statuses with that status,
// for "hold" not before the call's deadline, else SERVING.
type backend struct {
	healthpb.UnimplementedHealthServer
	statuses map[string]*status.Status
}

func (b backend) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if r.GetService() == "hold" {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if st, ok := b.statuses[r.GetService()]; ok {
		return nil, st.Err()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// retrying is a ResourceExhausted status with details, as a backend that
// says when to come back sends it.
func retrying(t *testing.T, msg string, details ...*durationpb.Duration) *status.Status {
	t.Helper()
	st := status.New(codes.ResourceExhausted, msg)
	var err error
	// Another detail first: Classify looks for the RetryInfo among them.
	if st, err = st.WithDetails(&errdetails.ErrorInfo{Reason: "RATE_LIMIT_EXCEEDED", Domain: "notes.example"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range details {
		if st, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: d}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestClassify drives each kind of failure through a real gRPC call over
// TCP — the backend's status with its details as sent on the wire, the
// client's and the server's own size limits, a real deadline, an
// unreachable backend — and checks the one classification both
// connectors word (docs/reference/actions.md "Errors",
// docs/reference/mcp.md "Tool call failures").
func TestClassify(t *testing.T) {
	const limitMsg = "the notes store takes 10 writes a minute"
	long := strings.Repeat("€", 35000) // 105,000 bytes
	statuses := map[string]*status.Status{
		"invalid":       status.New(codes.InvalidArgument, "limit must be 0 to 100"),
		"invalid-long":  status.New(codes.InvalidArgument, long),
		"unauth":        status.New(codes.Unauthenticated, "token revoked"),
		"denied":        status.New(codes.PermissionDenied, "the token lacks notes.admin"),
		"exists":        status.New(codes.AlreadyExists, "a note with this text exists"),
		"limited":       status.New(codes.ResourceExhausted, limitMsg),
		"retry-2.1s":    retrying(t, limitMsg, durationpb.New(2100*time.Millisecond)),
		"retry-250ms":   retrying(t, limitMsg, durationpb.New(250*time.Millisecond)),
		"retry-0":       retrying(t, limitMsg, durationpb.New(0)),
		"retry-30d":     retrying(t, limitMsg, durationpb.New(30*24*time.Hour)),
		"retry-invalid": retrying(t, limitMsg, &durationpb.Duration{Seconds: 1, Nanos: -1}, durationpb.New(7*time.Second)),
		"retry-none":    retrying(t, limitMsg),
		"limiter-text":  status.New(codes.ResourceExhausted, "grpc-ish: received message larger than max, says the backend's own limiter"),
		"decompressed":  status.New(codes.ResourceExhausted, "grpc: received message after decompression larger than max 4194304"),
		"unavailable":   status.New(codes.Unavailable, "database down at 10.0.0.7"),
		"deadline":      status.New(codes.DeadlineExceeded, "query took too long"),
		"canceled":      status.New(codes.Canceled, "the backend gave up"),
		"internal":      status.New(codes.Internal, "nil pointer in handler"),
		"dataloss":      status.New(codes.DataLoss, "page 7 of notes.db is corrupt"),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(1024)) // the backend's own receive limit
	healthpb.RegisterHealthServer(srv, backend{statuses: statuses})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	call := func(service string, opts ...grpc.CallOption) error {
		// Generous: a loaded machine once took over 5 s for one call.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if service == "hold" {
			ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
		}
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service}, opts...)
		return err
	}
	// Nobody listens on a port just closed.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	down, err := grpc.NewClient(closed.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	_, unreachable := healthpb.NewHealthClient(down).Check(context.Background(), &healthpb.HealthCheckRequest{})

	var (
		caller = func(c codes.Code, http int, e, result, msg string) fault.Failure {
			return fault.Failure{Answer: fault.Answer{HTTPStatus: http, Error: e, Result: result, CallerError: true}, Class: fault.ClassCaller, Code: c, Message: msg}
		}
		limited = func(d time.Duration) fault.Failure {
			return fault.Failure{Answer: fault.Answer{HTTPStatus: 429, Error: "rate_limited", Result: "rate_limited", CallerError: true},
				Class: fault.ClassRateLimited, Code: codes.ResourceExhausted, Message: limitMsg, RetryAfter: d}
		}
		server      = fault.Answer{HTTPStatus: 500, Error: "server_error", Result: "error"}
		tooLarge    = fault.Failure{Answer: server, Class: fault.ClassTooLarge, Code: codes.ResourceExhausted}
		transient   = fault.Answer{HTTPStatus: 503, Error: "temporarily_unavailable", Result: "unavailable"}
		unavailable = func(c codes.Code) fault.Failure {
			return fault.Failure{Answer: transient, Class: fault.ClassUnavailable, Code: c}
		}
		maybeApplied = fault.Failure{Answer: transient, Class: fault.ClassMaybeApplied, Code: codes.DeadlineExceeded}
	)
	for _, c := range []struct {
		name      string
		err       error
		retrySafe bool
		want      fault.Failure
	}{
		{"a caller error", call("invalid"), false, caller(codes.InvalidArgument, 400, "invalid_request", "invalid_arguments", "limit must be 0 to 100")},
		{"a 105,000-byte message is cut", call("invalid-long"), true, caller(codes.InvalidArgument, 400, "invalid_request", "invalid_arguments", strings.Repeat("€", 336)+fault.TruncationMarker)},
		{"Unauthenticated", call("unauth"), true, caller(codes.Unauthenticated, 401, "invalid_token", "unauthenticated", "token revoked")},
		{"PermissionDenied", call("denied"), false, caller(codes.PermissionDenied, 403, "insufficient_scope", "forbidden", "the token lacks notes.admin")},
		{"AlreadyExists", call("exists"), false, caller(codes.AlreadyExists, 409, "conflict", "conflict", "a note with this text exists")},

		{"a rate limit without RetryInfo", call("limited"), false, limited(fault.DefaultRetryAfter)},
		{"RetryInfo 2.1 s rounds up", call("retry-2.1s"), false, limited(3 * time.Second)},
		{"RetryInfo 250 ms is 1 s", call("retry-250ms"), true, limited(time.Second)},
		{"RetryInfo 0 is 1 s", call("retry-0"), true, limited(time.Second)},
		{"RetryInfo 30 days is capped", call("retry-30d"), true, limited(fault.MaxRetryAfter)},
		{"an invalid RetryInfo is skipped", call("retry-invalid"), true, limited(7 * time.Second)},
		{"no RetryInfo among other details", call("retry-none"), true, limited(5 * time.Second)},
		{"a limiter's text that only looks like gRPC's", call("limiter-text"), true, fault.Failure{
			Answer: fault.AnswerFor(codes.ResourceExhausted), Class: fault.ClassRateLimited, Code: codes.ResourceExhausted,
			Message: "grpc-ish: received message larger than max, says the backend's own limiter", RetryAfter: 5 * time.Second}},

		{"a reply over the client's receive limit", call("", grpc.MaxCallRecvMsgSize(1)), true, tooLarge},
		{"a request over the client's send limit", call(strings.Repeat("x", 100), grpc.MaxCallSendMsgSize(64)), true, tooLarge},
		{"a request over the backend's receive limit", call(strings.Repeat("x", 2000)), true, tooLarge},
		{"gRPC's decompression limit, sent back", call("decompressed"), true, tooLarge},

		{"Unavailable", call("unavailable"), false, unavailable(codes.Unavailable)},
		{"an unreachable backend", unreachable, false, unavailable(codes.Unavailable)},
		{"Canceled of a write", call("canceled"), false, unavailable(codes.Canceled)},
		{"the backend's DeadlineExceeded, retry-safe", call("deadline"), true, unavailable(codes.DeadlineExceeded)},
		{"the backend's DeadlineExceeded, a write", call("deadline"), false, maybeApplied},
		{"the call's deadline, retry-safe", call("hold"), true, unavailable(codes.DeadlineExceeded)},
		{"the call's deadline, a write", call("hold"), false, maybeApplied},

		{"Internal", call("internal"), true, fault.Failure{Answer: server, Class: fault.ClassServer, Code: codes.Internal}},
		{"DataLoss", call("dataloss"), true, fault.Failure{Answer: server, Class: fault.ClassServer, Code: codes.DataLoss}},
		{"an error without a status", errors.New("decode reply: bad wire type"), false, fault.Failure{Answer: server, Class: fault.ClassServer, Code: codes.Unknown}},
	} {
		if got := fault.Classify(c.err, c.retrySafe); got != c.want {
			t.Errorf("%s: Classify(%v, %v)\n = %+v\nwant %+v", c.name, c.err, c.retrySafe, got, c.want)
		}
	}
}
