package clients

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
)

// MetadataError explains why a Client ID Metadata Document was refused:
// Reason in fixed words, shown to the caller; Err, when set, the fetch's
// own error, for errors.Is and errors.As only (its text may name the
// resolver's or the dialled address: never shown, FetchFailure).
// Unavailable marks a fetch that got no answer about the document
// (ErrFetchUnavailable, FetchFailureClass.Unanswered), as opposed to a document its
// server answered and that is refused.
type MetadataError struct {
	Reason      string
	Err         error
	Unavailable bool
}

func (e *MetadataError) Error() string { return "client metadata document: " + e.Reason }
func (e *MetadataError) Unwrap() error { return e.Err }

// Is makes a MetadataError marked Unavailable an ErrFetchUnavailable.
func (e *MetadataError) Is(target error) bool { return e.Unavailable && target == ErrFetchUnavailable }

// ErrFetchUnavailable is the failure of a metadata document's fetch that
// got no answer about the document — its server could not be reached
// (connection refused or reset, a DNS failure that is not "no such
// host"), did not answer within the fetch timeout, answered 408, 429 or
// a 5xx status (RFC 9110 §15.5.9, RFC 6585 §4, §15.6), or broke off the
// body — as opposed to a definitive answer: 404, 410 or any other status,
// a redirect, a document too large or that does not validate, a client_id
// that is not its URL, a host that is not a public address, no such host,
// TLS that fails, headers over MaxResponseHeaderBytes. A caller takes the
// client as not judged (retry later), never as unknown. ErrFetchBusy (the
// fetch bound's refusal, nothing sent) is apart.
var ErrFetchUnavailable = errors.New("the client metadata document's server did not answer")

// FetchFailureClass is what a failed round trip of a guarded fetch
// (http.Client.Do's error) was, as ClassifyFetchFailure reads it: the one
// reading of the error types, from which both the words a caller is shown
// (FetchFailure) and whether the document's server gave no answer about
// the document (Unanswered: ErrFetchUnavailable, a 503 for the caller)
// follow, so that they cannot disagree (docs/reference/oauth.md, "CIMD
// fetch failure classes").
type FetchFailureClass int

const (
	// FetchFailedOther is any other failure: definitive, "the request
	// failed".
	FetchFailedOther FetchFailureClass = iota
	// FetchBusy: the fetch bound (or FetchBusyAddress: one client
	// address's share of it) stayed full; nothing was sent. Neither
	// answered nor unanswered: ErrFetchBusy, apart.
	FetchBusy
	FetchBusyAddress
	// FetchHeadersTooLarge: response headers over MaxResponseHeaderBytes
	// (definitive).
	FetchHeadersTooLarge
	// FetchNotPublic: the host's address is not a public one (definitive).
	FetchNotPublic
	// FetchNoSuchHost: DNS says the name does not exist (definitive).
	FetchNoSuchHost
	// FetchDNSTimeout and FetchDNSFailed: the resolver timed out or failed
	// otherwise (no answer).
	FetchDNSTimeout
	FetchDNSFailed
	// FetchTimedOut: no answer within the fetch timeout (no answer).
	FetchTimedOut
	// FetchTLSFailed: the TLS handshake or certificate failed (definitive).
	FetchTLSFailed
	// FetchConnectFailed: the connection could not be made (no answer).
	FetchConnectFailed
	// FetchBrokenOff: the connection was refused, reset or closed before
	// an answer once made (no answer), "the request failed".
	FetchBrokenOff
)

var fetchFailureClassNames = [...]string{
	FetchFailedOther: "other", FetchBusy: "busy", FetchBusyAddress: "busy-address",
	FetchHeadersTooLarge: "headers-too-large", FetchNotPublic: "not-public", FetchNoSuchHost: "no-such-host",
	FetchDNSTimeout: "dns-timeout", FetchDNSFailed: "dns-failed", FetchTimedOut: "timed-out",
	FetchTLSFailed: "tls-failed", FetchConnectFailed: "connect-failed", FetchBrokenOff: "broken-off",
}

func (c FetchFailureClass) String() string {
	if int(c) < len(fetchFailureClassNames) {
		return fetchFailureClassNames[c]
	}
	return fmt.Sprintf("FetchFailureClass(%d)", int(c))
}

// Unanswered reports whether a failure of class c got no answer from the
// document's server about the document (ErrFetchUnavailable's classes:
// the client is not judged, the caller answers 503); false for the fetch
// bound's refusal and for a definitive failure.
func (c FetchFailureClass) Unanswered() bool {
	switch c {
	case FetchDNSTimeout, FetchDNSFailed, FetchTimedOut, FetchConnectFailed, FetchBrokenOff:
		return true
	}
	return false
}

// ClassifyFetchFailure is the class of err, a failed round trip of a
// guarded fetch (http.Client.Do's error; the checks in this order).
func ClassifyFetchFailure(err error) FetchFailureClass {
	var (
		busy     *fetchBusyError
		dns      *net.DNSError
		refused  *dialRefused
		op       *net.OpError
		netErr   net.Error
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &busy) && busy.address:
		return FetchBusyAddress
	case errors.As(err, &busy):
		return FetchBusy
	case headersRefused(err) != "":
		return FetchHeadersTooLarge
	case errors.As(err, &refused):
		return FetchNotPublic
	case errors.As(err, &dns) && dns.IsNotFound:
		return FetchNoSuchHost
	case errors.As(err, &dns) && dns.IsTimeout:
		return FetchDNSTimeout
	case errors.As(err, &dns):
		return FetchDNSFailed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FetchTimedOut
	case errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return FetchTLSFailed
	case errors.As(err, &op) && op.Op == "dial":
		return FetchConnectFailed
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FetchBrokenOff
	}
	return FetchFailedOther
}

// statusUnanswered reports whether a document's server answering status
// said nothing about the document: 408 Request Timeout, 429 Too Many
// Requests (RFC 6585 §4) and the 5xx server errors (RFC 9110 §15.6) ask
// for a retry; another status (404, 410, 403, a redirect) is its answer.
func statusUnanswered(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 && status <= 599
}

// statusRefused is the reason of a document fetch its server answered
// with status, neither 200 nor a "no answer" status (statusUnanswered):
// the status as answered ("fetch answered 404"), and for a 3xx that the
// redirect was not followed (an SSRF guard: the document is at its
// client_id's URL, docs/reference/oauth.md#client-id-metadata-documents).
// It said "(redirects are not followed)" after every status, a 404 too.
func statusRefused(status int) string {
	if status >= 300 && status <= 399 {
		return fmt.Sprintf("fetch answered %d, a redirect (redirects are not followed)", status)
	}
	return fmt.Sprintf("fetch answered %d", status)
}

func metaErr(format string, args ...any) error {
	return &MetadataError{Reason: fmt.Sprintf(format, args...)}
}

// FetchOptions configure the SSRF-guarded fetcher.
type FetchOptions struct {
	// AllowPrivate permits http and private/loopback addresses (tests and
	// local development only; refused by configuration in production).
	AllowPrivate bool
	Production   bool
	// MaxBytes bounds a document (default 16 KiB); Timeout a fetch
	// (default DefaultFetchTimeout).
	MaxBytes int64
	Timeout  time.Duration
	// MaxInFlight bounds the fetches in flight at once of Fetch,
	// FetchDocument and RetryableClient — what anonymous callers make
	// the server fetch: metadata documents and self-registered clients'
	// jwks_uri sets together (default DefaultMaxFetches).
	// OperatorMaxInFlight bounds, apart from them, those of
	// OperatorRetryableClient: the operator's own clients' jwks_uri sets
	// (default DefaultMaxOperatorFetches). A fetch that finds every slot
	// of its bound taken waits at most QueueWait (default
	// DefaultFetchQueueWait) for one, within its context, then fails
	// with ErrFetchBusy.
	MaxInFlight         int
	OperatorMaxInFlight int
	QueueWait           time.Duration
	// MaxInFlightPerAddress bounds the anonymous fetches (MaxInFlight's)
	// of one client address (WithFetchAddress) in flight at once
	// (default DefaultMaxFetchesPerAddress), so that one address cannot
	// hold every slot; a fetch of a request without an address is
	// bounded by MaxInFlight only.
	MaxInFlightPerAddress int
	// Resolver answers the fetcher's DNS lookups (nil: the system's).
	Resolver *net.Resolver
	// Log receives the detail of a failed fetch (the resolver's and the
	// dialled addresses, the TLS error), which the MetadataError a
	// caller sees leaves out (nil: not logged).
	Log *slog.Logger
}

// MaxResponseHeaderBytes bounds the response headers of a fetch (HTTP/1
// and HTTP/2 alike: http.Transport.MaxResponseHeaderBytes, which sets
// HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 §6.5.2). Anyone may
// name a client id or a jwks_uri, and Go's default is 10 MiB a
// response: 8 anonymous authorization requests naming a document whose
// server answered huge headers took the auth-server from 37 to 343 MiB
// (the chart's limit is 256 MiB). A metadata document or a JWK set needs a
// few hundred bytes of headers.
const MaxResponseHeaderBytes = 16 << 10

// MaxJWKSBytes bounds a JWK set fetched from a jwks_uri (a set of a few
// RSA keys is a few KiB); FetchOptions.MaxBytes bounds a metadata
// document. The fetcher reads at most the larger of the two, plus one
// byte, of any answer, and of a document's its bound plus one byte.
const MaxJWKSBytes = 64 << 10

// DefaultMaxFetches bounds the fetches in flight in one process that
// anonymous callers start (metadata documents and self-registered
// clients' jwks_uri sets together), DefaultMaxOperatorFetches apart from
// them the fetches of the operator's clients' jwks_uri sets (CLIENTS_FILE:
// one shared fetch per jwks_uri at a time, jwksFetcher in package oauth,
// so the operator's number of jwks_uris bounds them already; this is the
// backstop), and DefaultFetchQueueWait how long a fetch waits for a slot
// before it is refused (ErrFetchBusy). Each fetch holds at most
// MaxResponseHeaderBytes of headers and its body bound (16 KiB for a
// document, 64 KiB for a JWK set) besides the connection's buffers: 24 of
// them stay within a few MiB.
//
// The operator's bound is apart so that anonymous callers cannot deny the
// operator's private_key_jwt clients: one address holding every anonymous
// slot (a slot is held up to the 5 s timeout, twice for a jwks_uri, so a
// few requests a second keep 16 taken, well within the per-address rate
// limits) refused their jwks_uri fetches "too many fetches in flight"
// (brk47).
//
// DefaultMaxFetchesPerAddress bounds the anonymous fetches of one client
// address (its trusted address, an IPv6 /64 as one): 4 of the 16, so that
// filling the anonymous bound takes at least 4 addresses, and one address
// naming slow servers slows its own requests only.
//
// DefaultFetchTimeout bounds a fetch's round trip and the read of its
// body: how long it holds its slot at most (a jwks_uri fetch retried,
// RetryableClient, holds one for each attempt).
const (
	DefaultFetchTimeout         = 5 * time.Second
	DefaultMaxFetches           = 16
	DefaultMaxFetchesPerAddress = 4
	DefaultMaxOperatorFetches   = 8
	DefaultFetchQueueWait       = time.Second
)

// ErrFetchBusy is the failure of a fetch that found every slot of the
// fetcher taken (FetchOptions.MaxInFlight) for as long as it could wait:
// nothing was sent. FetchFailure says so in fixed words.
var ErrFetchBusy = errors.New("too many fetches in flight")

// fetchBusyError is ErrFetchBusy with the bound that refused the fetch:
// the process's, or with address its client address's.
type fetchBusyError struct {
	limit   int
	address bool
}

func (e *fetchBusyError) Error() string {
	if e.address {
		return fmt.Sprintf("%v for this client address (at most %d at once)", ErrFetchBusy, e.limit)
	}
	return fmt.Sprintf("%v (at most %d at once)", ErrFetchBusy, e.limit)
}
func (e *fetchBusyError) Is(target error) bool { return target == ErrFetchBusy }

// AddressBusy reports whether err is an ErrFetchBusy refused by the bound
// of one client address (FetchOptions.MaxInFlightPerAddress, the address
// of the fetch's context: WithFetchAddress), not by the process's bound.
// A fetch shared by the requests of several addresses (package oauth's
// jwksFetcher) runs with its starter's address: such a refusal is that
// address's answer only.
func AddressBusy(err error) bool {
	var busy *fetchBusyError
	return errors.As(err, &busy) && busy.address
}

// MetadataFetcher fetches client metadata documents and JWK sets from the
// internet without letting a client id reach internal addresses: https
// only, every resolved address checked at dial time (so DNS rebinding
// cannot slip through), no redirects, bounded size, headers
// (MaxResponseHeaderBytes), time and concurrency (FetchOptions.MaxInFlight:
// every fetch of the fetcher's client, RetryableClient's too, takes a
// slot for its round trip and the read of its body; OperatorRetryableClient's take
// a slot of FetchOptions.OperatorMaxInFlight instead).
type MetadataFetcher struct {
	o      FetchOptions
	client *http.Client
	gate   *fetchGate
	// operator is client with the operator's own bound (opGate).
	operator *http.Client
	opGate   *fetchGate
}

// NewMetadataFetcher returns a fetcher.
func NewMetadataFetcher(o FetchOptions) *MetadataFetcher {
	if o.MaxBytes == 0 {
		o.MaxBytes = 16 << 10
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultFetchTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxFetches
	}
	if o.MaxInFlightPerAddress <= 0 {
		o.MaxInFlightPerAddress = DefaultMaxFetchesPerAddress
	}
	if o.OperatorMaxInFlight <= 0 {
		o.OperatorMaxInFlight = DefaultMaxOperatorFetches
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultFetchQueueWait
	}
	dialer := &net.Dialer{Timeout: o.Timeout, Resolver: o.Resolver, Control: func(_, address string, _ syscall.RawConn) error {
		if o.AllowPrivate {
			return nil
		}
		return dialGuard(address)
	}}
	// No connection outlives its fetch (DisableKeepAlives, which HTTP/2
	// honours too): anyone chooses the hosts fetched, and the pool kept
	// an HTTP/2 connection per host for IdleConnTimeout with no bound
	// on their number (MaxIdleConns does not count HTTP/2's) — 200
	// fetches from 200 hosts left 200 TLS connections with their
	// goroutines and buffers, outside the fetch bound. A document or
	// set is cached, so one host is rarely fetched twice in a row.
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
	}
	f := &MetadataFetcher{o: o}
	maxBody := max(o.MaxBytes, MaxJWKSBytes)
	f.gate = &fetchGate{next: transport, slots: make(chan struct{}, o.MaxInFlight), wait: o.QueueWait, maxBody: maxBody,
		perAddress: o.MaxInFlightPerAddress, log: &refusalLog{log: o.Log, bound: "anonymous", now: time.Now}}
	f.opGate = &fetchGate{next: transport, slots: make(chan struct{}, o.OperatorMaxInFlight), wait: o.QueueWait, maxBody: maxBody,
		log: &refusalLog{log: o.Log, bound: "operator", now: time.Now}}
	f.client, f.operator = guardedClient(f.gate, o.Timeout), guardedClient(f.opGate, o.Timeout)
	return f
}

// guardedClient is an http.Client over gate that follows no redirect.
func guardedClient(gate *fetchGate, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: gate, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// FetchStats are a fetcher's concurrency counters (metrics): of the
// anonymous callers' fetches, and Operator's of OperatorRetryableClient's.
type FetchStats struct {
	Limit    int   // the bound (FetchOptions.MaxInFlight)
	InFlight int64 // fetches holding a slot now
	Refused  int64 // fetches refused with ErrFetchBusy
	// PerAddressLimit is FetchOptions.MaxInFlightPerAddress, and
	// RefusedPerAddress counts the fetches it refused (not in Refused).
	PerAddressLimit   int
	RefusedPerAddress int64
	// Operator are the same of the operator's clients' jwks_uri fetches
	// (FetchOptions.OperatorMaxInFlight).
	Operator GateStats
}

// GateStats are the counters of one bound of fetches in flight.
type GateStats struct {
	Limit    int
	InFlight int64
	Refused  int64
}

// FetchStats reads the fetcher's concurrency counters.
func (f *MetadataFetcher) FetchStats() FetchStats {
	return FetchStats{Limit: cap(f.gate.slots), InFlight: int64(len(f.gate.slots)), Refused: f.gate.refused.Load(),
		PerAddressLimit: f.gate.perAddress, RefusedPerAddress: f.gate.refusedAddress.Load(), Operator: f.opGate.stats()}
}

func (g *fetchGate) stats() GateStats {
	return GateStats{Limit: cap(g.slots), InFlight: int64(len(g.slots)), Refused: g.refused.Load()}
}

// fetchGate is the fetcher's transport: at most cap(slots) requests in
// flight, and with perAddress > 0 at most perAddress of them for one
// client address (the request context's FetchAddress; a request without
// one takes no address slot). A request holds its slots for its round
// trip and the read of its body — at most maxBody+1 bytes (a request's
// own bound+1 when its context has a lower one, bodyLimitKey), read by
// RoundTrip itself (readBody), the connection closed — and gives them back
// when RoundTrip returns, whatever its caller then does with the answer:
// before (cimd47), a slot came back only when the caller closed the body,
// so a caller that forgot to held it for good. A request that
// finds every slot it needs taken waits at most wait in all, and no
// longer than its context, then fails with ErrFetchBusy without reaching
// next, logged through log (bounded: refusalLog). The address slot is
// taken first: an address at its bound waits without holding a slot of
// the others.
type fetchGate struct {
	next    http.RoundTripper
	slots   chan struct{}
	wait    time.Duration
	maxBody int64
	refused atomic.Int64
	log     *refusalLog

	perAddress     int
	refusedAddress atomic.Int64
	mu             sync.Mutex
	// addresses are the address slots in use or awaited, by address;
	// an entry is dropped when no request holds or awaits it.
	addresses map[string]*addressSlots
}

// addressSlots are one client address's slots (cap perAddress) and the
// number of requests holding or awaiting one.
type addressSlots struct {
	slots chan struct{}
	users int
}

func (g *fetchGate) RoundTrip(req *http.Request) (*http.Response, error) {
	deadline := time.Now().Add(g.wait)
	releaseAddress := func() {}
	if addr, ok := FetchAddress(req.Context()); ok && g.perAddress > 0 {
		a := g.addressSlots(addr)
		if !take(req.Context(), a.slots, deadline) {
			g.dropAddress(addr, a)
			g.refusedAddress.Add(1)
			return nil, g.refuse(req.Context(), &fetchBusyError{limit: g.perAddress, address: true})
		}
		releaseAddress = func() { <-a.slots; g.dropAddress(addr, a) }
	}
	if !take(req.Context(), g.slots, deadline) {
		releaseAddress()
		g.refused.Add(1)
		return nil, g.refuse(req.Context(), &fetchBusyError{limit: cap(g.slots)})
	}
	defer func() { <-g.slots; releaseAddress() }()
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	limit := g.maxBody
	if n, ok := req.Context().Value(bodyLimitKey{}).(int64); ok && n < limit {
		limit = n
	}
	resp.Body, resp.ContentLength = readBody(resp.Body, limit)
	return resp, nil
}

// bodyLimitKey is the context key of a request's own body bound (bytes,
// below the gate's maxBody: a metadata document's FetchOptions.MaxBytes).
type bodyLimitKey struct{}

// readBody reads at most max+1 bytes of body and closes it, answering
// what it read as a body to read again (no Close needed) and its length,
// or -1 when there is more or the read failed: then reading the answered
// body ends with the read's error, if any. A caller's own bound (max or
// less) sees a longer body as longer than it.
func readBody(body io.ReadCloser, max int64) (io.ReadCloser, int64) {
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	_ = body.Close()
	switch {
	case err != nil:
		return io.NopCloser(io.MultiReader(bytes.NewReader(b), failedRead{err})), -1
	case int64(len(b)) > max:
		return io.NopCloser(bytes.NewReader(b)), -1
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b))
}

// failedRead is a reader whose every read fails with err.
type failedRead struct{ err error }

func (r failedRead) Read([]byte) (int, error) { return 0, r.err }

// refuse logs err, the gate's refusal of a fetch, through g.log, and
// answers it.
func (g *fetchGate) refuse(ctx context.Context, err *fetchBusyError) error {
	g.log.refused(ctx, err)
	return err
}

// refusalLog writes a gate's refusals to the service log, bounded: the
// first at once, then at most one line per refusalLogEvery, each with the
// number of fetches refused since the line before it (the metrics count
// every one: tollgate_auth_client_fetches_refused_total). Anyone may make
// the auth-server fetch; a line per refusal let them fill the log at the
// rate limits' pace.
type refusalLog struct {
	log   *slog.Logger // nil: nothing is logged
	bound string       // which bound: "anonymous" or "operator"
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time // when the last line was written (zero: none yet)
	count int64     // refusals since then, not yet in a line
}

// refusalLogEvery is how often, at most, a gate logs its refusals after
// the first.
const refusalLogEvery = time.Minute

func (l *refusalLog) refused(ctx context.Context, err *fetchBusyError) {
	if l == nil || l.log == nil {
		return
	}
	l.mu.Lock()
	l.count++
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogEvery {
		l.mu.Unlock()
		return
	}
	n := l.count
	l.last, l.count = now, 0
	l.mu.Unlock()
	l.log.WarnContext(ctx, "client fetches refused: too many in flight (at most one line a minute)", "bound", l.bound, "refused", n, "last_refusal", err.Error())
}

// take takes a slot of slots, waiting until deadline at most and no
// longer than ctx; it reports whether it got one.
func take(ctx context.Context, slots chan struct{}, deadline time.Time) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// addressSlots is addr's entry, counting the caller among its users.
func (g *fetchGate) addressSlots(addr string) *addressSlots {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.addresses[addr]
	if a == nil {
		if g.addresses == nil {
			g.addresses = map[string]*addressSlots{}
		}
		a = &addressSlots{slots: make(chan struct{}, g.perAddress)}
		g.addresses[addr] = a
	}
	a.users++
	return a
}

// dropAddress uncounts a user of addr's entry a, dropping the entry when
// it was the last.
func (g *fetchGate) dropAddress(addr string, a *addressSlots) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a.users--; a.users == 0 {
		delete(g.addresses, addr)
	}
}

// fetchAddressKey is the context key of WithFetchAddress.
type fetchAddressKey struct{}

// WithFetchAddress is ctx for a request of the client address addr: the
// fetches made for it (Fetch, FetchDocument, RetryableClient's) hold at
// most FetchOptions.MaxInFlightPerAddress slots of the anonymous bound
// at once. addr must be a verified fact of the request — its trusted
// client address (platform/clientip), never a value the request claims —
// and one string for all the addresses one caller controls (an IPv6 /64:
// clientip.Resolver.Subject).
func WithFetchAddress(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, fetchAddressKey{}, addr)
}

// FetchAddress is the client address WithFetchAddress gave ctx.
func FetchAddress(ctx context.Context) (string, bool) {
	addr, ok := ctx.Value(fetchAddressKey{}).(string)
	return addr, ok
}

// RetryableClient is the guarded client in the form fosite's JWKS fetcher
// takes, for the jwks_uri sets of clients anyone may register (Client ID
// Metadata Documents, dynamic registrations): its fetches share
// FetchOptions.MaxInFlight with the metadata documents.
func (f *MetadataFetcher) RetryableClient() *retryablehttp.Client { return retryable(f.client) }

// OperatorRetryableClient is RetryableClient for the jwks_uri sets of the
// operator's own clients (CLIENTS_FILE), guarded alike (https, public
// addresses, the same size, header and time bounds) but bounded apart
// (FetchOptions.OperatorMaxInFlight): what anonymous callers make the
// server fetch cannot take its slots.
func (f *MetadataFetcher) OperatorRetryableClient() *retryablehttp.Client {
	return retryable(f.operator)
}

func retryable(c *http.Client) *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.HTTPClient = c
	rc.RetryMax = 1
	rc.Logger = nil
	// One retry after at most a second: the wait is part of a token
	// request, and retryablehttp's default obeys a 429's or 503's
	// Retry-After however long the client's server asks.
	rc.RetryWaitMin, rc.RetryWaitMax = 100*time.Millisecond, time.Second
	// Neither a refusal of the fetcher's bound (ErrFetchBusy: it waited
	// for a slot already) nor headers over MaxResponseHeaderBytes (the
	// same answer again) is retried.
	rc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if errors.Is(err, ErrFetchBusy) || headersRefused(err) != "" {
			return false, err
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	rc.Backoff = func(least, most time.Duration, n int, resp *http.Response) time.Duration {
		return min(retryablehttp.DefaultBackoff(least, most, n, resp), most)
	}
	return rc
}

// dialGuard runs for every connection attempt with the resolved address,
// after DNS and before connecting. Its refusal is a *dialRefused.
func dialGuard(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &dialRefused{fmt.Sprintf("refusing to dial %q: %v", address, err)}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &dialRefused{fmt.Sprintf("refusing to dial %q: not an IP address", host)}
	}
	if !PublicAddr(ip) {
		return &dialRefused{fmt.Sprintf("refusing to dial %s: not a public address", ip)}
	}
	return nil
}

// dialRefused is dialGuard's refusal; its text names the address, for the
// log only (fetchFailure).
type dialRefused struct{ msg string }

func (e *dialRefused) Error() string { return e.msg }

// guardian holds the special-use address ranges no fetch may reach: for
// IPv4 the IANA IPv4 Special-Purpose Address Registry (RFC 6890) plus
// multicast and the reserved 240.0.0.0/4; for IPv6 everything outside the
// global unicast range 2000::/3 (loopback, unspecified, IPv4-compatible
// ::/96, IPv4-mapped and translated forms, site-local fec0::/10, unique
// local fc00::/7, link-local, multicast, NAT64 64:ff9b::/96, 5f00::/16 …)
// and the registry's special-purpose ranges inside it (documentation
// 2001:db8::/32 and 3fff::/20, 6to4, IETF protocol assignments). The list
// is code.dny.dev/ssrf's, generated from the IANA registries; ports and
// networks are not its business here (any port: a metadata URL may name
// one).
var guardian = ssrf.New(ssrf.WithAnyPort(), ssrf.WithAnyNetwork())

// PublicAddr reports whether ip is a globally routable unicast address:
// not private, loopback, link-local, multicast, documentation or other
// special-use ranges (guardian). IPv4-mapped IPv6 addresses are checked as
// the IPv4 address they carry; an address with a zone is never public.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	return guardian.SafeAddr(ip) == nil
}

// CheckClientIDURL validates the form of a metadata-document client id.
func (f *MetadataFetcher) CheckClientIDURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, metaErr("client_id is not an absolute URL")
	}
	if u.Scheme != "https" && !(f.o.AllowPrivate && u.Scheme == "http") {
		return nil, metaErr("client_id must be an https URL")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, metaErr("client_id must not contain credentials or a fragment")
	}
	if u.Path == "" || u.Path == "/" {
		return nil, metaErr("client_id must have a path")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, metaErr("client_id must not contain dot segments")
		}
	}
	if !f.o.AllowPrivate {
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !PublicAddr(ip) {
			return nil, metaErr("client_id host is not a public address")
		}
		if ownMachine(u.Hostname()) {
			return nil, metaErr("client_id host is not a public address")
		}
	}
	return u, nil
}

// Metadata is a client metadata document (the fields we use).
type Metadata struct {
	ClientID     string                `json:"client_id"`
	ClientName   string                `json:"client_name,omitempty"`
	ClientURI    string                `json:"client_uri,omitempty"`
	LogoURI      string                `json:"logo_uri,omitempty"`
	RedirectURIs []string              `json:"redirect_uris"`
	GrantTypes   []string              `json:"grant_types,omitempty"`
	Response     []string              `json:"response_types,omitempty"`
	AuthMethod   string                `json:"token_endpoint_auth_method,omitempty"`
	Scope        string                `json:"scope,omitempty"`
	JWKS         *josev3.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI      string                `json:"jwks_uri,omitempty"`
}

// metadataMembers maps each member name a metadata document may carry to
// its field, by exactly that name.
var metadataMembers = map[string]func(*Metadata) any{
	"client_id":                  func(m *Metadata) any { return &m.ClientID },
	"client_name":                func(m *Metadata) any { return &m.ClientName },
	"client_uri":                 func(m *Metadata) any { return &m.ClientURI },
	"logo_uri":                   func(m *Metadata) any { return &m.LogoURI },
	"redirect_uris":              func(m *Metadata) any { return &m.RedirectURIs },
	"grant_types":                func(m *Metadata) any { return &m.GrantTypes },
	"response_types":             func(m *Metadata) any { return &m.Response },
	"token_endpoint_auth_method": func(m *Metadata) any { return &m.AuthMethod },
	"scope":                      func(m *Metadata) any { return &m.Scope },
	"jwks":                       func(m *Metadata) any { return &jwksMember{&m.JWKS} },
	"jwks_uri":                   func(m *Metadata) any { return &m.JWKSURI },
}

// decodeMetadata reads a document (one JSON object, no member repeated)
// into md, each member by exactly its name (DecodeMembers).
func decodeMetadata(raw []byte, md *Metadata) error {
	err := DecodeMembers(raw, md, metadataMembers)
	var bad *MemberError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &bad):
		return metaErr("not a JSON object")
	}
	switch bad.Name {
	case "redirect_uris", "grant_types", "response_types":
		return metaErr("%s must be an array of strings", bad.Name)
	case "jwks":
		return metaErr("jwks %v", bad.Err)
	}
	return metaErr("%s must be a string", bad.Name)
}

// Fetch downloads and checks the document at id. It returns the document
// and how long it may be cached (Cache-Control max-age, else 0).
func (f *MetadataFetcher) Fetch(ctx context.Context, id string) (*Metadata, time.Duration, error) {
	md, _, ttl, err := f.FetchDocument(ctx, id)
	return md, ttl, err
}

// FetchDocument is Fetch, with the document as served (at most MaxBytes):
// what a cache keeps, to decode again with DecodeDocument.
func (f *MetadataFetcher) FetchDocument(ctx context.Context, id string) (*Metadata, []byte, time.Duration, error) {
	u, err := f.CheckClientIDURL(id)
	if err != nil {
		return nil, nil, 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, bodyLimitKey{}, f.o.MaxBytes), f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, 0, metaErr("bad URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		class := ClassifyFetchFailure(err)
		reason := fetchFailure(err)
		// A refusal of the bound is the gate's to log (refusalLog: a
		// line per refusal let anyone fill the log).
		if f.o.Log != nil && !errors.Is(err, ErrFetchBusy) {
			f.o.Log.InfoContext(ctx, "client metadata document fetch failed", "client_id", id, "reason", reason, "err", err)
		}
		return nil, nil, 0, &MetadataError{Reason: "fetch failed: " + reason, Err: err, Unavailable: class.Unanswered()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if statusUnanswered(resp.StatusCode) {
			return nil, nil, 0, &MetadataError{Reason: fmt.Sprintf("fetch answered %d", resp.StatusCode), Unavailable: true}
		}
		return nil, nil, 0, metaErr("%s", statusRefused(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.o.MaxBytes+1))
	if err != nil {
		// The body broke off (the connection reset or timed out): no
		// answer about the document.
		return nil, nil, 0, &MetadataError{Reason: "read failed", Err: err, Unavailable: true}
	}
	if int64(len(body)) > f.o.MaxBytes {
		return nil, nil, 0, metaErr("document is larger than %d bytes", f.o.MaxBytes)
	}
	md, err := DecodeDocument(body, id)
	if err != nil {
		return nil, nil, 0, err
	}
	return md, body, maxAge(resp.Header.Get("Cache-Control")), nil
}

// DecodeDocument reads raw, the metadata document of client id: one JSON
// object, no member repeated, each member by exactly its name, whose
// client_id is id.
func DecodeDocument(raw []byte, id string) (*Metadata, error) {
	if name, err := DuplicateMember(raw); err != nil {
		return nil, metaErr("not a JSON object")
	} else if name != "" {
		return nil, metaErr("member %q appears more than once (RFC 8259 section 4: names must be unique)", Truncate(name, QuoteLimit))
	}
	var md Metadata
	if err := decodeMetadata(raw, &md); err != nil {
		return nil, err
	}
	if md.ClientID != id {
		return nil, metaErr("client_id in the document does not match its URL")
	}
	return &md, nil
}

// ToClient checks a document and turns it into a client. Metadata-document
// clients are public (none) or private_key_jwt: a document is public, so it
// cannot carry a shared secret.
func (md *Metadata) ToClient(rules Rules, kind Kind) (*Client, error) {
	c := &Client{
		ID: md.ClientID, Name: md.ClientName, RedirectURIs: md.RedirectURIs, Grants: md.GrantTypes,
		Resources: rules.Resources, AuthMethod: md.AuthMethod, RequirePKCE: true, Kind: kind,
		JWKSURI: md.JWKSURI, ClientURI: md.ClientURI,
	}
	c.setJWKS(md.JWKS)
	if c.AuthMethod == "" {
		c.AuthMethod = AuthNone
	}
	if c.AuthMethod != AuthNone && c.AuthMethod != AuthPrivateKeyJWT {
		return nil, metaErr("token_endpoint_auth_method must be none or private_key_jwt")
	}
	if c.Grants == nil {
		c.Grants = []string{"authorization_code", "refresh_token"}
	}
	if len(md.Response) > 0 && !slices.Equal(md.Response, []string{"code"}) {
		return nil, metaErr("response_types must be [code]")
	}
	supported := rules.SupportedScopes()
	c.AllowedScope = slices.Clone(supported)
	c.AnyScope = rules.ScopeSource
	if md.Scope != "" {
		c.AllowedScope, c.AnyScope = nil, nil
		for _, sc := range strings.Fields(md.Scope) {
			if slices.Contains(supported, sc) {
				c.AllowedScope = append(c.AllowedScope, sc)
			}
		}
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if problems := rules.Check(c); len(problems) > 0 {
		return nil, metaErr("%s", strings.TrimPrefix(problems[0], fmt.Sprintf("client %q: ", c.ID)))
	}
	return c, nil
}

func maxAge(cc string) time.Duration {
	for _, part := range strings.Split(cc, ",") {
		part = strings.TrimSpace(strings.ToLower(part))
		if part == "no-store" || part == "no-cache" {
			return 0
		}
		if v, ok := strings.CutPrefix(part, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

// fetchFailure says in fixed words what failed in a fetch (err, of
// http.Client.Do), for anyone who may send the client id — an anonymous
// caller of the authorization endpoint: the errors themselves name the
// resolver's address ("lookup example.com on 10.255.255.53:53: no such
// host"), the address dialled and what the TLS peer sent, none of which
// is theirs to see (FetchOptions.Log gets them).
func fetchFailure(err error) string { return FetchFailure(err) }

// FetchFailure is fetchFailure for the other fetches of the guarded
// client (RetryableClient: a private_key_jwt client's jwks_uri): the
// words of err's class (ClassifyFetchFailure).
func FetchFailure(err error) string {
	var busy *fetchBusyError
	switch ClassifyFetchFailure(err) {
	case FetchBusyAddress:
		errors.As(err, &busy)
		return fmt.Sprintf("this server has too many fetches in flight for this client address (at most %d at once); retry later", busy.limit)
	case FetchBusy:
		errors.As(err, &busy)
		return fmt.Sprintf("this server has too many fetches in flight (at most %d at once); retry later", busy.limit)
	case FetchHeadersTooLarge:
		return headersRefused(err)
	case FetchNotPublic:
		return "the host's address is not a public address"
	case FetchDNSTimeout:
		return "timed out resolving the host"
	case FetchNoSuchHost, FetchDNSFailed:
		return "could not resolve the host"
	case FetchTimedOut:
		return "timed out"
	case FetchTLSFailed:
		return "TLS failed"
	case FetchConnectFailed:
		return "could not connect"
	}
	return "the request failed"
}

// headersRefused says in fixed words how the transport refused the
// response headers of a fetch (err) over MaxResponseHeaderBytes, or ""
// when err is no such refusal. net/http has no error value or type for it
// that a caller can name (Go 1.26: HTTP/2's are unexported), only these
// words, which TestHeadersTooLargeTexts pins on the real paths:
//   - HTTP/1: "net/http: server response headers exceeded 16384 bytes;
//     aborted";
//   - HTTP/2, headers over the bound in all: "http2: response header
//     list larger than advertised limit";
//   - HTTP/2, one header longer than the bound: the HPACK decoder's
//     string limit, a connection error "connection error:
//     COMPRESSION_ERROR" — which headers that are not valid HPACK give
//     too, hence its words.
func headersRefused(err error) string {
	if err == nil {
		return ""
	}
	switch msg := err.Error(); {
	case strings.Contains(msg, "server response headers exceeded"), strings.Contains(msg, "response header list larger than advertised limit"):
		return fmt.Sprintf("the response headers are larger than %d bytes", MaxResponseHeaderBytes)
	case strings.Contains(msg, "connection error: COMPRESSION_ERROR"):
		return fmt.Sprintf("the response headers are larger than %d bytes or could not be decoded", MaxResponseHeaderBytes)
	}
	return ""
}
