package clients

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// loopbackDNS is a DNS server on a loopback UDP port: NXDOMAIN for every
// name but those in a, which get their IPv4 address (and no AAAA). The
// resolver it returns sends every query there, whatever server
// /etc/resolv.conf names, so nothing leaves loopback.
func loopbackDNS(t *testing.T, a map[string][4]byte) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			ip, known := a[strings.ToLower(q.Name.String())]
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
			if !known {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if known && q.Type == dnsmessage.TypeA {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// addressLike matches an IPv4 address or a host:port, what a fetch error
// must not show its caller.
var addressLike = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|:\d{2,5}\b|\[[0-9a-fA-F:]+\]`)

// TestFetchFailureSaysWhatInFixedWords: a metadata document fetch that
// fails says what failed — could not resolve the host, the host's address
// is not a public address, could not connect, timed out, TLS failed — and
// nothing of the resolver's address, the address dialled or the TLS
// peer's answer: anyone may send the client id (an anonymous authorization
// request), and the error is the description they get. Before, the
// resolver's address reached them ("fetch failed: dial tcp: lookup
// example.com on 10.255.255.53:53: no such host"). The detail is logged.
// Every case stays on loopback: the names resolve through loopbackDNS
// (a .invalid name, RFC 6761 §6.4, answered NXDOMAIN), the dialled ports
// are loopback ones.
func TestFetchFailureSaysWhatInFixedWords(t *testing.T) {
	res := loopbackDNS(t, map[string][4]byte{"private.example.": {10, 0, 0, 7}})

	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := refused.Addr().String()
	refused.Close() // nothing listens there now: connection refused

	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held <- c // kept open, unanswered, until the test ends
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-held:
				_ = c.Close()
			default:
				return
			}
		}
	})

	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(untrusted.Close)

	for _, tc := range []struct {
		name, id     string
		allowPrivate bool
		want         string
	}{
		{"name that does not resolve", "https://nothing.invalid/c.json", false, "fetch failed: could not resolve the host"},
		{"name of a private address", "https://private.example/c.json", false, "fetch failed: the host's address is not a public address"},
		{"port that refuses", "http://" + closedPort + "/c.json", true, "fetch failed: could not connect"},
		{"server that never answers", "http://" + silent.Addr().String() + "/c.json", true, "fetch failed: timed out"},
		{"certificate of an unknown authority", untrusted.URL + "/c.json", true, "fetch failed: TLS failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			// Only the silent server is meant to run into the timeout; the
			// others get one a loaded machine cannot reach (a TLS handshake
			// took over 500 ms at load ~20: "timed out", not "TLS failed").
			timeout := 10 * time.Second
			if tc.want == "fetch failed: timed out" {
				timeout = 500 * time.Millisecond
			}
			f := NewMetadataFetcher(FetchOptions{AllowPrivate: tc.allowPrivate, Resolver: res, Timeout: timeout,
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			_, _, err := f.Fetch(context.Background(), tc.id)
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("%v, want a MetadataError", err)
			}
			if me.Reason != tc.want {
				t.Errorf("reason %q, want %q", me.Reason, tc.want)
			}
			if m := addressLike.FindString(err.Error()); m != "" {
				t.Errorf("error %q shows the address %q", err, m)
			}
			if !strings.Contains(logs.String(), "client metadata document fetch failed") || !strings.Contains(logs.String(), "err=") {
				t.Errorf("no log of the detail: %q", logs.String())
			}
		})
	}
}
