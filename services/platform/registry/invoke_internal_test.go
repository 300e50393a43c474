package registry

import (
	"errors"
	"testing"
)

// TestCleanProtoErr: protobuf-go writes "proto:" followed by either a space
// or a non-breaking space, chosen per binary (internal/detrand) so that
// callers do not match its messages. The message a caller sees loses the
// prefix whichever one its binary got.
func TestCleanProtoErr(t *testing.T) {
	for _, in := range []string{
		"proto: (line 1:9): unknown field \"x\"",
		"proto:\u00a0(line 1:9): unknown field \"x\"",
		"(line 1:9): unknown field \"x\"",
	} {
		if got, want := cleanProtoErr(errors.New(in)), `(line 1:9): unknown field "x"`; got != want {
			t.Errorf("cleanProtoErr(%q) = %q, want %q", in, got, want)
		}
	}
}
