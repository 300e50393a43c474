package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestMessageOverSizeLimitIsNotRetryable: gRPC's ResourceExhausted for a
// message over a size limit — a real backend's reply over the client's
// receive limit (grpc.MaxCallRecvMsgSize), a request over its send limit
// — is MessageTooLarge and has no RetryAfter (it had
// DefaultRetryAfter: a retry gets the same answer); a backend's own
// ResourceExhausted is a rate limit as before.
func TestMessageOverSizeLimitIsNotRetryable(t *testing.T) {
	b := registrytest.Start(t, "notes", []registrytest.Service{notes("notes")})
	h := discover(t, b)
	reg := h.d.Refresh(context.Background())
	list, ok := reg.Tool("notes.list")
	if !ok {
		t.Fatal("notes.list not discovered")
	}
	call := func(text string, opts ...grpc.CallOption) error {
		conn, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(opts...))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		in, err := list.Capability.DecodeJSON([]byte(`{"text":"` + text + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = list.Capability.Invoke(context.Background(), conn, in)
		return err
	}
	for name, err := range map[string]error{
		"reply over the receive limit": call(registrytest.BigReplyText(100), grpc.MaxCallRecvMsgSize(64)),
		"request over the send limit":  call(strings.Repeat("x", 100), grpc.MaxCallSendMsgSize(64)),
	} {
		if status.Code(err) != codes.ResourceExhausted || !registry.MessageTooLarge(err) || registry.RetryAfter(err) != 0 {
			t.Errorf("%s: %v: MessageTooLarge %v, RetryAfter %v; want true, 0", name, err, registry.MessageTooLarge(err), registry.RetryAfter(err))
		}
	}
	if err := call(registrytest.BigReplyText(100), grpc.MaxCallRecvMsgSize(1024)); err != nil {
		t.Errorf("a reply within the limit: %v", err)
	}
	err := call(registrytest.FailText(codes.ResourceExhausted, "grpc-ish: received message larger than max, says the backend's own limiter"))
	if registry.MessageTooLarge(err) || registry.RetryAfter(err) != 5*time.Second {
		t.Errorf("a backend's rate limit: MessageTooLarge %v, RetryAfter %v; want false, 5s", registry.MessageTooLarge(err), registry.RetryAfter(err))
	}
}
