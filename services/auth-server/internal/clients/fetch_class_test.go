package clients

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

// TestFetchFailureClassesPinned: one classifier (ClassifyFetchFailure)
// reads a failed fetch's error; each class has one set of words
// (FetchFailure) and one verdict — no answer about the document
// (ErrFetchUnavailable: the client not judged, a 503 for the caller) or a
// definitive failure (the client unknown) — as the table of
// docs/reference/oauth.md#cimd-fetch-failure-classes says. The errors are
// shaped as http.Client.Do returns them (a *url.Error around the
// transport's). Before, fetchUnanswered and FetchFailure each switched on
// the same error types, free to drift apart.
func TestFetchFailureClassesPinned(t *testing.T) {
	do := func(err error) error { return &url.Error{Op: "Get", URL: "https://app.example/client.json", Err: err} }
	dial := func(err error) error { return do(&net.OpError{Op: "dial", Net: "tcp", Err: err}) }
	read := func(err error) error {
		return do(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)})
	}
	for _, tc := range []struct {
		err        error
		class      FetchFailureClass
		words      string
		unanswered bool
	}{
		{do(&fetchBusyError{limit: 16}), FetchBusy, "this server has too many fetches in flight (at most 16 at once); retry later", false},
		{do(&fetchBusyError{limit: 4, address: true}), FetchBusyAddress, "this server has too many fetches in flight for this client address (at most 4 at once); retry later", false},
		{do(errors.New("net/http: server response headers exceeded 16384 bytes; aborted")), FetchHeadersTooLarge, "the response headers are larger than 16384 bytes", false},
		{dial(&dialRefused{msg: "10.0.0.1 is not a public address"}), FetchNotPublic, "the host's address is not a public address", false},
		{dial(&net.DNSError{Err: "no such host", Name: "app.example", IsNotFound: true}), FetchNoSuchHost, "could not resolve the host", false},
		{dial(&net.DNSError{Err: "i/o timeout", Name: "app.example", IsTimeout: true}), FetchDNSTimeout, "timed out resolving the host", true},
		{dial(&net.DNSError{Err: "server misbehaving", Name: "app.example"}), FetchDNSFailed, "could not resolve the host", true},
		{do(context.DeadlineExceeded), FetchTimedOut, "timed out", true},
		{do(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), FetchTLSFailed, "TLS failed", false},
		{do(&tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}), FetchTLSFailed, "TLS failed", false},
		{dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), FetchConnectFailed, "could not connect", true},
		{read(syscall.ECONNRESET), FetchBrokenOff, "the request failed", true},
		{do(io.EOF), FetchBrokenOff, "the request failed", true},
		{do(io.ErrUnexpectedEOF), FetchBrokenOff, "the request failed", true},
		{do(errors.New("unsupported protocol scheme")), FetchFailedOther, "the request failed", false},
	} {
		t.Run(tc.class.String()+": "+tc.err.Error(), func(t *testing.T) {
			class := ClassifyFetchFailure(tc.err)
			if class != tc.class || class.Unanswered() != tc.unanswered {
				t.Errorf("class %v (unanswered %v), want %v (unanswered %v)", class, class.Unanswered(), tc.class, tc.unanswered)
			}
			if got := FetchFailure(tc.err); got != tc.words {
				t.Errorf("FetchFailure = %q, want %q", got, tc.words)
			}
		})
	}
	// Every class has a name, and only the "no answer" ones are
	// unanswered (the docs' table).
	for c := FetchFailedOther; c <= FetchBrokenOff; c++ {
		if s := c.String(); s == "" || s == fmt.Sprintf("FetchFailureClass(%d)", int(c)) {
			t.Errorf("class %d has no name", int(c))
		}
	}
}
