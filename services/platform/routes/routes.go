// Package routes reads the public path table (charts/tollgate/files/routes.yaml),
// the one source both the Helm chart's Ingresses and the local ingress of
// `make dev` route by, and implements Kubernetes Ingress path matching.
package routes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"sigs.k8s.io/yaml"
)

// Rule routes one path to a fleet service.
type Rule struct {
	Path     string `json:"path"`
	PathType string `json:"pathType"` // Exact or Prefix
	Service  string `json:"service"`
}

// Table is the parsed routes file.
type Table struct {
	Ingresses map[string][]Rule `json:"ingresses"`
}

// RelPath is where the table lives, relative to the repository root.
const RelPath = "charts/tollgate/files/routes.yaml"

// Load reads and validates the table at path.
func Load(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse decodes and validates a table.
func Parse(b []byte) (*Table, error) {
	var t Table
	if err := yaml.UnmarshalStrict(b, &t); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if len(t.Ingresses) == 0 {
		return nil, fmt.Errorf("routes: no ingresses")
	}
	for name, rules := range t.Ingresses {
		for _, r := range rules {
			if !strings.HasPrefix(r.Path, "/") || (r.PathType != "Exact" && r.PathType != "Prefix") || r.Service == "" {
				return nil, fmt.Errorf("routes: ingress %s: bad rule %+v", name, r)
			}
		}
	}
	if _, err := t.Merged(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Merged is the union of every ingress's rules: the local ingress serves
// both hosts on one origin. A path routed to two services is an error.
func (t *Table) Merged() ([]Rule, error) {
	seen := map[string]Rule{}
	for _, name := range sortedNames(t.Ingresses) {
		for _, r := range t.Ingresses[name] {
			key := r.PathType + " " + r.Path
			if prev, ok := seen[key]; ok && prev.Service != r.Service {
				return nil, fmt.Errorf("routes: %s %s goes to %s and %s", r.PathType, r.Path, prev.Service, r.Service)
			}
			seen[key] = r
		}
	}
	out := make([]Rule, 0, len(seen))
	for _, r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Path < out[j].Path || (out[i].Path == out[j].Path && out[i].PathType < out[j].PathType)
	})
	return out, nil
}

func sortedNames(m map[string][]Rule) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Matches reports whether r matches path with Ingress semantics: Exact is
// equality; Prefix matches element-wise ("/mcp" matches "/mcp" and "/mcp/x",
// not "/mcpx"; a trailing slash in the rule is ignored).
func (r Rule) Matches(path string) bool {
	if r.PathType == "Exact" {
		return path == r.Path
	}
	p := strings.TrimRight(r.Path, "/")
	if p == "" {
		return true
	}
	return path == p || strings.HasPrefix(path, p+"/")
}

// Match returns the service for path: among matching rules Exact beats
// Prefix and the longest path wins, as in Kubernetes.
func Match(rules []Rule, path string) (Rule, bool) {
	var best Rule
	found := false
	for _, r := range rules {
		if !r.Matches(path) {
			continue
		}
		if !found || better(r, best) {
			best, found = r, true
		}
	}
	return best, found
}

func better(a, b Rule) bool {
	if a.PathType == "Exact" && b.PathType != "Exact" {
		return true
	}
	if a.PathType != "Exact" && b.PathType == "Exact" {
		return false
	}
	return len(a.Path) > len(b.Path)
}

// Proxy is the local ingress: it routes by rules to backends (service name
// to base URL), keeps the Host header as an ingress controller does, sets
// X-Forwarded-*, and flushes immediately so SSE streams work. A backend it
// cannot reach is 502 with a JSON error body (badGateway), and with
// Retry-After: 1 when the connection itself failed (a component of `make
// dev` restarting or stopped). Requests are served in full duplex: the
// backend may answer before it has read the body. After the answer the
// handler reads a rest of the body the backend did not take, up to 256
// KiB; a longer rest, or one of unknown length, makes the answer carry
// Connection: close, as the connection is closed after it.
func Proxy(rules []Rule, backends map[string]*url.URL) (http.Handler, error) {
	// One pool of its own, sized like an ingress controller's keep-alive
	// pool: Go's default keeps 2 idle connections per backend, so under
	// concurrent calls most requests dialled a new one, and sharing
	// http.DefaultTransport tied the ingress to whatever else in the
	// process uses it (tests' clients, in-process fleets).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 512
	transport.MaxIdleConnsPerHost = 128
	return proxy(rules, backends, transport)
}

func proxy(rules []Rule, backends map[string]*url.URL, transport http.RoundTripper) (http.Handler, error) {
	proxies := map[string]*httputil.ReverseProxy{}
	for _, r := range rules {
		u, ok := backends[r.Service]
		if !ok {
			return nil, fmt.Errorf("routes: no backend for service %q", r.Service)
		}
		if _, done := proxies[r.Service]; done {
			continue
		}
		proxies[r.Service] = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				// The query as sent, as nginx and ingress controllers
				// forward it: ReverseProxy drops the pairs
				// url.ParseQuery cannot read (a ";" separator, a bad
				// escape) before Rewrite, and the service behind would
				// see a call without them instead of refusing it
				// (actions-api answers 400 to a malformed query).
				pr.Out.URL.RawQuery = joinQuery(u.RawQuery, pr.In.URL.RawQuery)
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
			},
			Transport:     transport,
			FlushInterval: -1,
			ModifyResponse: func(res *http.Response) error {
				if !connectionStays(res.Request) {
					res.Header.Set("Connection", "close")
				}
				return nil
			},
			ErrorHandler: badGateway,
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r, ok := Match(rules, req.URL.Path)
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","error_description":"no route for this path"}` + "\n"))
			return
		}
		// Full duplex: the request body stays the Transport's until it is
		// done with it. By default Go's HTTP/1 server drains and closes an
		// unclosed request body when the handler writes the response
		// header. The Transport sends a Content-Length body and then reads
		// it once more to check that it is not longer than declared
		// (transferWriter.writeBody); a backend that answers as soon as it
		// has the body (the mcp-gateway from memory) can get its response
		// header through the proxy first. That last read then fails with
		// "http: invalid Read on closed Body", the Transport closes the
		// backend connection as a failed request write, the response being
		// copied is cut ("ReverseProxy read error during body copy: use of
		// closed network connection"), and the client sees its connection
		// end mid-response (Node: "TypeError: terminated"). See
		// golang/go#40747 and TestProxyResponseOutlivesTheLateBodyCheck.
		//
		// Full duplex also leaves the body to the handler when it returns,
		// and the server does not cope with an unread rest then
		// (golang/go#68560, open): it closes the body after it has stopped
		// its background read of the connection, reading the rest to its
		// end starts that read again, and its wait for the next request
		// on the connection panics ("invalid concurrent Body.Read call"),
		// resetting the client's keep-alive connection. A failed round
		// trip (a backend that took the connection and dropped it) leaves
		// the body unread; after a successful one the Transport's write
		// goroutine may still be reading it (the late check above). So the
		// handler flushes the answer and closes the body itself before it
		// returns: Close waits for a Read in flight (the body's mutex),
		// reads the rest as the default mode would (up to 256 KiB, else
		// the connection is not reused), and refuses later Reads, so after
		// the handler only the server reads the connection. See
		// TestDroppedBodyRequestIs502 and
		// TestDroppedRequestLeavesTheConnectionToTheNextOne.
		//
		// A rest of the body the handler will not read (over 256 KiB, or
		// of unknown length) makes the answer say Connection: close
		// (connectionStays, judged from what the Transport read, before
		// the header): the server closes the connection after it, and a
		// client not told so may already be sending its next request on
		// it (its Transport saw the whole body go into the socket buffers
		// and reuses the connection). See
		// TestAnswerBeforeTheBodySaysWhetherTheConnectionStays and
		// TestFullDuplexBodyStaysTheBackends.
		_ = http.NewResponseController(w).EnableFullDuplex()
		in := req.Body
		if in != nil && in != http.NoBody {
			cb := &clientBody{ReadCloser: in}
			req = req.WithContext(context.WithValue(req.Context(), clientBodyKey{}, cb))
			req.Body = cb
		}
		proxies[r.Service].ServeHTTP(w, req)
		_ = http.NewResponseController(w).Flush()
		if in != nil {
			_ = in.Close()
		}
	}), nil
}

// maxSettleBytes is how much of a request body's unread rest the handler
// reads after the answer so that the connection can carry the next
// request, as Go's HTTP/1 server does (maxPostHandlerReadBytes).
const maxSettleBytes = 256 << 10

// clientBodyKey is the request context key of the client's request body
// (a *clientBody), for the proxy's ModifyResponse and ErrorHandler, which
// see the outgoing request only.
type clientBodyKey struct{}

// clientBody is the client's request body as the proxy's Transport reads
// it: it counts the bytes read and notes the end. Nothing else reads it
// before the answer: the backend owns the body while it answers (full
// duplex), so the proxy judges what is left by what the Transport took.
type clientBody struct {
	io.ReadCloser
	read  atomic.Int64 // bytes the Transport has read
	ended atomic.Bool  // a Read returned io.EOF
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	if err == io.EOF {
		b.ended.Store(true)
	}
	return n, err
}

// connectionStays reports, before the answer's header is written, whether
// the connection can carry the client's next request: the body was read to
// its end, or what is left of a Content-Length body is at most
// maxSettleBytes, which the handler reads after the answer. A longer or
// unknown (chunked) rest will not be read, and the server closes the
// connection after the answer, which must then say Connection: close.
// It never reads the body itself: the Transport may still be sending it
// to a backend that answered first.
func connectionStays(req *http.Request) bool {
	b, ok := req.Context().Value(clientBodyKey{}).(*clientBody)
	if !ok || b.ended.Load() {
		return true
	}
	return req.ContentLength >= 0 && req.ContentLength-b.read.Load() <= maxSettleBytes
}

// retryAfterUnreachable is the Retry-After (seconds) of a 502 for a backend
// the proxy could not connect to: long enough for a restarting component
// of `make dev` to listen again, short for a client that retries.
const retryAfterUnreachable = "1"

const badGatewayBody = `{"error":"bad_gateway","error_description":"the upstream service is not reachable"}` + "\n"

// badGateway is the proxy's ErrorHandler: 502 with a JSON error body. When
// the connection to the backend failed (a dial error: refused, a timeout,
// no route) the answer also carries Retry-After: 1 (RFC 9110 §10.2.3), so
// a client that honours it tries again instead of giving up. Other
// failures (the backend reset the connection or answered something that is
// not HTTP) are 502 without it: the request may have reached the backend.
func badGateway(w http.ResponseWriter, req *http.Request, err error) {
	w.Header().Set("Content-Type", "application/json")
	if !connectionStays(req) {
		w.Header().Set("Connection", "close")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		w.Header().Set("Retry-After", retryAfterUnreachable)
	}
	// Content-Length, though the proxy flushes the answer at once: a
	// client still sending its body knows the answer is whole.
	w.Header().Set("Content-Length", strconv.Itoa(len(badGatewayBody)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, badGatewayBody)
}

// joinQuery is a target's query followed by the request's, as
// httputil.ProxyRequest.SetURL joins them.
func joinQuery(target, in string) string {
	if target == "" || in == "" {
		return target + in
	}
	return target + "&" + in
}
