package tokens_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestRefusalReason: the verifier's reason without ErrInvalidToken's
// prefix, cut at MaxReasonBytes on a character boundary and marked "...";
// a short one whole.
func TestRefusalReason(t *testing.T) {
	refused := func(reason string) error { return fmt.Errorf("%w: %s", tokens.ErrInvalidToken, reason) }
	long := `unknown kid "` + strings.Repeat("k", 200) + `"`
	if got, want := tokens.RefusalReason(refused(long)), long[:tokens.MaxReasonBytes]+"..."; got != want {
		t.Errorf("ASCII: %q, want %q", got, want)
	}
	// é is two bytes; byte MaxReasonBytes falls inside one.
	mb := strings.Repeat("k", tokens.MaxReasonBytes-1) + strings.Repeat("é", 10)
	got := tokens.RefusalReason(refused(mb))
	if want := strings.Repeat("k", tokens.MaxReasonBytes-1) + "..."; got != want || !utf8.ValidString(got) {
		t.Errorf("multi-byte: %q, want %q", got, want)
	}
	if got := tokens.RefusalReason(refused("token expired")); got != "token expired" {
		t.Errorf("short: %q", got)
	}
	if got := tokens.RefusalReason(errors.New("other")); got != "other" {
		t.Errorf("without the prefix: %q", got)
	}
}
