package fault_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate/tollgate/services/platform/fault"
)

// A caller error's message passes as it is up to MaxMessageBytes; a longer
// one is cut on a rune boundary and ends with the marker, within the cap.
func TestCallerMessageIsCappedOnARuneBoundary(t *testing.T) {
	exact := strings.Repeat("a", fault.MaxMessageBytes)
	for _, msg := range []string{"", "no note \"n1\"", exact} {
		if got := fault.CallerMessage(msg); got != msg {
			t.Errorf("a message of %d bytes was changed to %d bytes", len(msg), len(got))
		}
	}
	keep := fault.MaxMessageBytes - len(fault.TruncationMarker)
	for name, c := range map[string]struct {
		msg  string
		kept string
	}{
		"one byte over":     {exact + "b", exact[:keep]},
		"100 KiB of ASCII":  {strings.Repeat("x", 100<<10), strings.Repeat("x", keep)},
		"a rune at the cut": {strings.Repeat("a", keep-1) + "é" + strings.Repeat("a", 2000), strings.Repeat("a", keep-1)},
		"4-byte runes":      {strings.Repeat("😀", 30000), strings.Repeat("😀", keep/4)},
		"3-byte runes":      {strings.Repeat("€", 40000), strings.Repeat("€", keep/3)},
	} {
		got := fault.CallerMessage(c.msg)
		if got != c.kept+fault.TruncationMarker {
			t.Errorf("%s: %d bytes ending %q, want the first %d bytes and the marker", name, len(got), got[max(0, len(got)-24):], len(c.kept))
		}
		if len(got) > fault.MaxMessageBytes || !utf8.ValidString(got) {
			t.Errorf("%s: %d bytes, valid UTF-8 %v", name, len(got), utf8.ValidString(got))
		}
	}
}
