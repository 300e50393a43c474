package clients

import "testing"

// TestHostRules: the three host rules answer their own question each —
// RFC 8252's loopback redirect host (a loopback literal, or "localhost"
// tolerated, no *.localhost), the browser's secure context (W3C Secure
// Contexts §3.1: localhost names per RFC 6761 §6.3 in any case, with a
// trailing dot, and loopback addresses) and the user's own machine (that,
// and the unspecified addresses).
func TestHostRules(t *testing.T) {
	for _, tc := range []struct {
		host                      string
		redirect, secure, machine bool
	}{
		{"127.0.0.1", true, true, true},
		{"127.5.6.7", true, true, true},
		{"::1", true, true, true},
		{"localhost", true, true, true},
		{"LocalHost", true, true, true},
		{"localhost.", false, true, true},
		{"app.localhost", false, true, true},
		{"App.LOCALHOST.", false, true, true},
		{"::ffff:127.0.0.1", true, true, true},
		{"0.0.0.0", false, false, true},
		{"::", false, false, true},
		{"127.0.0.1.", false, false, true},
		{"app.example", false, false, false},
		{"localhost.example", false, false, false},
		{"notlocalhost", false, false, false},
		{"192.0.2.1", false, false, false},
	} {
		if got := LoopbackRedirectHost(tc.host); got != tc.redirect {
			t.Errorf("LoopbackRedirectHost(%q) = %v, want %v", tc.host, got, tc.redirect)
		}
		if got := SecureContextHost(tc.host); got != tc.secure {
			t.Errorf("SecureContextHost(%q) = %v, want %v", tc.host, got, tc.secure)
		}
		if got := ownMachine(tc.host); got != tc.machine {
			t.Errorf("ownMachine(%q) = %v, want %v", tc.host, got, tc.machine)
		}
	}
}
