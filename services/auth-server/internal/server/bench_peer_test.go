package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	authclients "github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// The signing peer of BenchmarkTokenEndpoint: the floor a token endpoint on
// this machine cannot go below. It is a bare net/http server (the test
// binary re-executed with signingPeerEnv set, a process of its own like the
// auth-server) whose POST /oauth/token parses the form and signs as many
// tokens as the case's grant carries (an authorization_code grant 2: access
// token and ID token; a refresh 1), with the same signing code as the
// auth-server (tokens.KeyRing.SignWith) and the same algorithm, and
// answers with a JSON body of the same shape. No client authentication, no
// Redis, no logging, no rate limit, no signing queue: what is left is HTTP
// and the signatures. Each case runs the peer right after the auth-server,
// with the same clients, connections and request count, so that the two
// are measured under the same load on the two cores; the ratios
// (grants/s-vs-peer, p99-vs-peer) say how far the auth-server is from
// the floor, in the same run.
//
// The peer counts its signatures' CPU as the auth-server's signing meter
// does (oauth.signingMeter: the thread CPU clock of the signing goroutine,
// locked to its thread for the signature, claims encoding included) and
// serves the total at GET /signing-cpu, so that peer-signing-share — what a
// server that does nothing but sign reaches on this machine under this
// load — is measured exactly as the auth-server's signing-share is.
const signingPeerEnv = "TOLLGATE_BENCH_SIGNING_PEER"

// runSigningPeer serves the signing peer on the listener at fd 3 until the
// process is killed: signingPeerEnv names the algorithm and the
// signatures per request ("RS256:2").
func runSigningPeer(spec string) error {
	alg, n, ok := strings.Cut(spec, ":")
	sigs, err := strconv.Atoi(n)
	if !ok || err != nil || sigs < 1 {
		return fmt.Errorf("%s=%q: want <alg>:<signatures>", signingPeerEnv, spec)
	}
	ring, err := newBenchKeyRing()
	if err != nil {
		return err
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return err
	}
	s := &peerSigner{ring: ring, alg: jose.SignatureAlgorithm(alg), sigs: sigs}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /signing-cpu", s.serveCPU)
	mux.HandleFunc("GET /runtime", serveRuntime)
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		now := time.Now()
		std := jwt.Claims{Issuer: "http://127.0.0.1:4000", Subject: "dev-user-0001", Audience: jwt.Audience{"http://127.0.0.1:4000/mcp"},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now)}
		priv := tokens.AccessClaims{ClientID: r.PostForm.Get("client_id"), Scope: "openid profile email", AuthTime: now.Unix(),
			Profile: tokens.Profile{Name: "Dev User", Email: "dev@example.com", EmailVerified: true, PreferredUsername: "dev"}}
		_ = s.respond(w, std, priv, rand.Text()+rand.Text())
	})
	return (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}

// peerSigner makes a peer's signatures and answers with them; both peers
// sign and answer through it, so their signing-share is counted the same
// way.
type peerSigner struct {
	ring *tokens.KeyRing
	alg  jose.SignatureAlgorithm
	sigs int          // signatures per grant: the access token, then ID tokens
	ns   atomic.Int64 // the thread CPU time of every signature so far
}

// serveCPU is GET /signing-cpu: the signatures' CPU so far, in ns.
func (s *peerSigner) serveCPU(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, s.ns.Load()) }

// serveRuntime is GET /runtime: the bytes the process allocated on the
// heap and its GC cycles so far ("<bytes> <cycles>", runtime/metrics).
func serveRuntime(w http.ResponseWriter, _ *http.Request) {
	m := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	fmt.Fprint(w, m[0].Value.Uint64(), " ", m[1].Value.Uint64())
}

// respond signs s.sigs tokens of std and priv (a new jti each) and writes
// the token response with refresh as its refresh token.
func (s *peerSigner) respond(w http.ResponseWriter, std jwt.Claims, priv tokens.AccessClaims, refresh string) error {
	resp := map[string]any{"token_type": "Bearer", "expires_in": 3600, "scope": priv.Scope, "refresh_token": refresh}
	for i := range s.sigs {
		std.ID = rand.Text()
		tok, cpu, err := signOnOwnThread(func() (string, error) {
			return s.ring.SignWith(s.alg, tokens.AccessTokenType, std, priv)
		})
		s.ns.Add(cpu.Nanoseconds())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return err
		}
		resp[[]string{"access_token", "id_token"}[min(i, 1)]] = tok
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(resp)
}

// signOnOwnThread runs sign locked to its thread and reports the thread
// CPU time it took, as the auth-server's signing meter measures a signature.
func signOnOwnThread(sign func() (string, error)) (string, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var t0, t1 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
	tok, err := sign()
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
	return tok, time.Duration(t1.Nano() - t0.Nano()), err
}

// peerResult is what loadPeer measured.
type peerResult struct {
	grants     int
	wall       time.Duration
	cpu        time.Duration // the peer process's CPU time over the window
	signingCPU time.Duration // the CPU its signatures took over the window (GET /signing-cpu)
	p50, p99   time.Duration
	redisCPU   time.Duration // redis-server's CPU over the window (store peer only)
	// os is the peer's context switches, read and write system calls,
	// heap allocation and GC cycles over the window (GET /runtime)
	os processCounters
}

// loadSigningPeer starts a signing peer for alg with sigs signatures per
// request and sends it n token requests from clients concurrent clients,
// as loadTokenEndpoint sends the auth-server its grants: one keep-alive
// connection per client, a form of the same size.
func loadSigningPeer(b *testing.B, alg string, sigs, clients, n int) peerResult {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {rand.Text() + rand.Text()},
		"redirect_uri": {"https://chatgpt.com/connector_platform_oauth_redirect"}, "code_verifier": {rand.Text() + rand.Text()},
		"client_id": {"gpt-apps-mcp"}, "client_secret": {rand.Text() + rand.Text()}}.Encode()
	return loadPeer(b, peerLoad{name: "signing peer", env: []string{signingPeerEnv + "=" + alg + ":" + strconv.Itoa(sigs)},
		form: func(int, int, tokenResponse) string { return form }}, clients, n)
}

// peerLoad is a peer process and what its clients send it.
type peerLoad struct {
	name string
	env  []string // the process's own variables (which peer, its settings)
	// form is the body of client i's k-th request (k = 0: its warm-up
	// request), given its previous answer.
	form func(i, k int, prev tokenResponse) string
	// window, when set, is called right before the timed window starts;
	// the func it returns right after it ends.
	window func() func()
}

// loadPeer starts the peer process of l (this test binary re-executed)
// and sends it n token requests from clients concurrent clients, each on
// its own keep-alive connection, after one warm-up request per client.
func loadPeer(b *testing.B, l peerLoad, clients, n int) peerResult {
	peer, base := startPeerProcess(b, l.env)
	pid := peer.cmd.Process.Pid
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	do := func(form string) (tokenResponse, time.Duration, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return tokenResponse{}, 0, err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		var tr tokenResponse
		if err := json.Unmarshal(raw, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
			return tokenResponse{}, 0, fmt.Errorf("%s: %d %s", l.name, resp.StatusCode, raw)
		}
		return tr, d, nil
	}
	signingCPU := func() (time.Duration, error) {
		resp, err := hc.Get(base + "/signing-cpu")
		if err != nil {
			return 0, err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ns, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("GET /signing-cpu: %d %q", resp.StatusCode, raw)
		}
		return time.Duration(ns), nil
	}
	counters := func() processCounters {
		resp, err := hc.Get(base + "/runtime")
		if err != nil {
			b.Fatalf("%s: %v", l.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c := readProcessCounters(b, pid, nil)
		if _, err := fmt.Sscan(string(raw), &c.allocBytes, &c.gc); err != nil {
			b.Fatalf("%s: GET /runtime: %d %q", l.name, resp.StatusCode, raw)
		}
		return c
	}
	mustSigningCPU := func() time.Duration {
		d, err := signingCPU()
		if err != nil {
			b.Fatalf("%s: %v", l.name, err)
		}
		return d
	}
	// Wait for the peer to serve (it generates its keys first), then warm
	// every connection up, as loadTokenEndpoint does.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := signingCPU(); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("%s not serving: %v", l.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	prev := make([]tokenResponse, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			tr, _, err := do(l.form(i, 0, tokenResponse{}))
			if err != nil {
				b.Error(err)
			}
			prev[i] = tr
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	lat := make([][]time.Duration, clients)
	sig0, os0 := mustSigningCPU(), counters()
	end := func() {}
	if l.window != nil {
		end = l.window()
	}
	cpu0, t0 := processCPU(b, pid), time.Now()
	for i := range clients {
		wg.Go(func() {
			for k, j := 1, i; j < n; k, j = k+1, j+clients {
				tr, d, err := do(l.form(i, k, prev[i]))
				if err != nil {
					b.Error(err)
					return
				}
				prev[i] = tr
				lat[i] = append(lat[i], d)
			}
		})
	}
	wg.Wait()
	r := peerResult{grants: n, wall: time.Since(t0), cpu: processCPU(b, pid) - cpu0}
	end()
	r.signingCPU, r.os = mustSigningCPU()-sig0, counters().sub(os0)
	all := slices.Concat(lat...)
	if len(all) != n {
		b.Fatalf("%s: %d of %d requests answered", l.name, len(all), n)
	}
	slices.Sort(all)
	r.p50, r.p99 = all[len(all)/2], all[(len(all)*99+99)/100-1]
	return r
}

// The store peer of BenchmarkTokenEndpoint (opt-in: storePeerOptIn=1):
// the signing peer plus what no Redis-backed token endpoint can leave
// out, written lean — the floor of the architecture the auth-server keeps
// (grants in Redis, a code used once, a refresh token rotated atomically,
// the client authenticated, an audit line per grant). Per request it
// parses the form and
//
//   - authenticates the client with the auth-server's own check of a
//     generated secret (clients.SecretHasher.Compare: the keyed fast hash)
//     against a client record in memory;
//   - refresh_token: one round trip, refreshPeerScript — the grant's
//     record (the format-2 record the auth-server stores, copied from the
//     auth-server's Redis) read by the token's grant id, the presented
//     token's MAC checked, the record rewritten with the successor's MAC
//     (SET … PX) and returned — then the record's header split and its
//     JSON decoded (encoding/json into a struct), its client and the
//     refresh token's expiry checked;
//   - authorization_code: two round trips, as the auth-server's code
//     grant: HGETALL of the code's hash (the auth-server's own hash,
//     copied: request, PKCE and OpenID Connect parts), each part decoded
//     (encoding/json into structs), the client, redirect URI, expiry and
//     PKCE verifier checked; then redeemPeerScript marks the code used
//     (once) and stores the new grant's record, which the peer builds
//     (header + encoding/json of its JSON);
//   - signs as the signing peer does (peerSigner: the same signatures per
//     grant, counted the same way) and writes one JSON audit line per
//     grant with log/slog's JSON handler into a file.
//
// The Redis client is the auth-server's (platform/redisx.New: its
// options, its circuit breaker), on the benchmark's redis-server with
// keys of its own prefix. It leaves out what is not irreducible: rate
// limits, the signing queue, the access-log line, the subject's grant
// index (the auth-server's redemption pipeline adds four commands for
// it), the rotation's grace window and preconditions, fosite.
const (
	storePeerOptIn = "TOLLGATE_BENCH_STORE_PEER"
	storePeerEnv   = "TOLLGATE_BENCH_STORE_PEER_CONFIG" // the store peer process's storePeerConfig (JSON)
	storePeerKeys  = "storepeer:"                       // its key prefix
)

// storePeerConfig is what the store peer process is told.
type storePeerConfig struct {
	Alg            string
	Sigs           int
	RedisURL       string
	CommandTimeout time.Duration
	DialTimeout    time.Duration
	// SecretKey is the HMAC key of client secrets; Clients the clients'
	// secret hashes made with it, by client id.
	SecretKey []byte
	Clients   map[string]string
	// TokenKey is the HMAC key of codes and refresh tokens: a token is
	// "<grant id>.<secret>", stored by the secret's MAC.
	TokenKey []byte
	AuditLog string
}

// tokenMAC is the MAC a code or refresh token secret is stored by.
func tokenMAC(key []byte, secret string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// refreshPeerScript rotates a grant's refresh token: the auth-server's
// refreshScript without the grace window and the request's preconditions.
//
//	KEYS[1] the grant's record; ARGV[1] the presented token's MAC,
//	ARGV[2] the successor's MAC, ARGV[3] now (Unix ms), ARGV[4] the
//	record's TTL (ms)
//
// Returns {1, record} rotated, {0} no grant, {-1} not the current token.
var refreshPeerScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then return {0} end
local rt, prev, rot, pos = string.match(s, '^g2\n([^\n]*)\n([^\n]*)\n([^\n]*)\n()')
if not pos then return redis.error_reply('ERR grant record of an unknown format') end
if rt == '' or rt ~= ARGV[1] then return {-1} end
local rec = 'g2\n' .. ARGV[2] .. '\n' .. ARGV[1] .. '\n' .. ARGV[3] .. '\n' .. string.sub(s, pos)
redis.call('SET', KEYS[1], rec, 'PX', ARGV[4])
return {1, rec}
`)

// redeemPeerScript redeems a code and stores its grant: the auth-server's
// redeemScript without the late bound.
//
//	KEYS[1] the code's hash, KEYS[2] the grant's record; ARGV[1] the
//	record, ARGV[2] its TTL (ms), ARGV[3] this redemption's nonce
//
// Returns 1 redeemed, 0 redeemed before, -1 no code.
var redeemPeerScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], 'used', ARGV[3]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// peerGrantTail is a grant record's JSON (the store's grantTail with the
// oauth package's grant session), as much of it as the store peer reads.
type peerGrantTail struct {
	T int64            `json:"t"`
	F url.Values       `json:"f,omitempty"`
	S peerGrantSession `json:"s"`
}

type peerGrantSession struct {
	Sub string         `json:"sub"`
	Usr string         `json:"usr,omitempty"`
	P   tokens.Profile `json:"p"`
	C   struct {
		Iss      string   `json:"iss,omitempty"`
		Rat      int64    `json:"rat,omitempty"`
		AuthTime int64    `json:"auth_time,omitempty"`
		FP       []string `json:"fp,omitempty"`
	} `json:"c"`
	Kid string `json:"kid,omitempty"`
}

// peerCodePart is one part of a code's hash (the store's record), as much
// of it as the store peer reads; Session only in the request part.
type peerCodePart struct {
	ID              string     `json:"id"`
	RequestedAt     time.Time  `json:"requested_at"`
	ClientID        string     `json:"client_id"`
	GrantedScope    []string   `json:"granted_scope"`
	GrantedAudience []string   `json:"granted_audience"`
	Form            url.Values `json:"form"`
	Session         *struct {
		OIDC struct {
			Claims struct {
				Iss      string    `json:"iss"`
				Sub      string    `json:"sub"`
				Rat      time.Time `json:"rat"`
				AuthTime time.Time `json:"auth_time"`
			} `json:"id_token_claims"`
			Headers struct {
				Extra struct {
					Kid string `json:"kid"`
				} `json:"extra"`
			} `json:"headers"`
			ExpiresAt map[string]time.Time `json:"expires_at"`
			Username  string               `json:"username"`
			Subject   string               `json:"subject"`
		} `json:"oidc"`
		Profile tokens.Profile `json:"profile"`
	} `json:"session"`
}

// storePeer is the store peer's state.
type storePeer struct {
	*peerSigner
	rdb      *redisx.Client
	hasher   *authclients.SecretHasher
	clients  map[string][]byte
	tokenKey []byte
	audit    *slog.Logger
}

// errPeerGrant is a refused grant (400 invalid_grant).
var errPeerGrant = errors.New("invalid_grant")

// peerGrant is what a grant's tokens are made of.
type peerGrant struct {
	id, refresh     string
	scope, audience string
	sub             string
	authTime        int64
	profile         tokens.Profile
}

// runStorePeer serves the store peer on the listener at fd 3 until the
// process is killed; spec is its storePeerConfig.
func runStorePeer(spec string) error {
	var cfg storePeerConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil || cfg.Sigs < 1 {
		return fmt.Errorf("%s: %v", storePeerEnv, err)
	}
	ring, err := newBenchKeyRing()
	if err != nil {
		return err
	}
	hasher, err := authclients.NewSecretHasher(authclients.SecretHasherOptions{Key: cfg.SecretKey})
	if err != nil {
		return err
	}
	rdb, err := redisx.New(config.Redis{URL: cfg.RedisURL, KeyPrefix: storePeerKeys, CommandTimeout: cfg.CommandTimeout, DialTimeout: cfg.DialTimeout})
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(cfg.AuditLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return err
	}
	p := &storePeer{peerSigner: &peerSigner{ring: ring, alg: jose.SignatureAlgorithm(cfg.Alg), sigs: cfg.Sigs},
		rdb: rdb, hasher: hasher, clients: map[string][]byte{}, tokenKey: cfg.TokenKey,
		audit: slog.New(slog.NewJSONHandler(logFile, nil))}
	for id, h := range cfg.Clients {
		p.clients[id] = []byte(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /signing-cpu", p.serveCPU)
	mux.HandleFunc("GET /runtime", serveRuntime)
	mux.HandleFunc("POST /oauth/token", p.token)
	return (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
}

func (p *storePeer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	ctx, f := r.Context(), r.PostForm
	cid, gt := f.Get("client_id"), f.Get("grant_type")
	hash, ok := p.clients[cid]
	if !ok || p.hasher.Compare(ctx, hash, []byte(f.Get("client_secret"))) != nil {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	var g peerGrant
	var err error
	switch gt {
	case "authorization_code":
		g, err = p.redeem(ctx, cid, f)
	case "refresh_token":
		g, err = p.rotate(ctx, cid, f.Get("refresh_token"))
	default:
		err = errors.New("unsupported_grant_type")
	}
	result := "ok"
	switch {
	case errors.Is(err, errPeerUnavailable):
		result = "temporarily_unavailable"
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
	case err != nil:
		result = "invalid_grant"
		http.Error(w, fmt.Sprintf(`{"error":"invalid_grant","error_description":%q}`, err.Error()), http.StatusBadRequest)
	default:
		now := time.Now()
		std := jwt.Claims{Issuer: "http://127.0.0.1:4000", Subject: g.sub, Audience: jwt.Audience{g.audience},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now)}
		priv := tokens.AccessClaims{ClientID: cid, Scope: g.scope, AuthTime: g.authTime, GrantID: g.id, Profile: g.profile}
		if p.respond(w, std, priv, g.refresh) != nil {
			result = "server_error"
		}
	}
	sum := sha256.Sum256([]byte(g.sub))
	p.audit.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("log.type", "audit"), slog.String("event", "grant"),
		slog.String("result", result), slog.String("client_id", cid), slog.Bool("client_authenticated", true),
		slog.String("subject_hash", hex.EncodeToString(sum[:])), slog.String("grant_id", g.id),
		slog.String("grant_type", gt), slog.String("client_addr", r.RemoteAddr))
}

// errPeerUnavailable is a Redis failure (503).
var errPeerUnavailable = errors.New("state store unavailable")

// newRefresh is a new refresh token of grant id and the MAC it is stored by.
func (p *storePeer) newRefresh(id string) (token, mac string) {
	secret := rand.Text() + rand.Text()
	return id + "." + secret, tokenMAC(p.tokenKey, secret)
}

// rotate is a refresh_token grant: one round trip.
func (p *storePeer) rotate(ctx context.Context, cid, presented string) (peerGrant, error) {
	id, secret, ok := strings.Cut(presented, ".")
	if !ok || id == "" {
		return peerGrant{}, errPeerGrant
	}
	g := peerGrant{id: id}
	var succ string
	g.refresh, succ = p.newRefresh(id)
	now := time.Now()
	v, err := refreshPeerScript.Run(ctx, p.rdb, []string{p.rdb.Key("grant2", redisx.Tag(id))},
		tokenMAC(p.tokenKey, secret), succ, now.UnixMilli(), (30*24*time.Hour + time.Minute).Milliseconds()).Slice()
	if err != nil {
		return g, fmt.Errorf("%w: %v", errPeerUnavailable, err)
	}
	if st, _ := v[0].(int64); st != 1 || len(v) < 2 {
		return g, errPeerGrant
	}
	rec, _ := v[1].(string)
	// The header (store/record.go): g2, rt, prev, rotated, index until,
	// refresh expiry, client, scopes, audiences; then the JSON.
	var h [9]string
	for i := range h {
		var ok bool
		if h[i], rec, ok = strings.Cut(rec, "\n"); !ok {
			return g, errors.New("grant record: truncated header")
		}
	}
	var tail peerGrantTail
	if err := json.Unmarshal([]byte(rec), &tail); err != nil {
		return g, err
	}
	if exp, err := strconv.ParseInt(h[5], 10, 64); h[6] != cid || err != nil || exp <= now.Unix() {
		return g, errPeerGrant
	}
	g.scope, g.audience, g.sub = h[7], strings.TrimPrefix(h[8], "!"), tail.S.Sub
	g.authTime, g.profile = tail.S.C.AuthTime, tail.S.P
	return g, nil
}

// redeem is an authorization_code grant: two round trips.
func (p *storePeer) redeem(ctx context.Context, cid string, f url.Values) (peerGrant, error) {
	id, secret, ok := strings.Cut(f.Get("code"), ".")
	if !ok || id == "" {
		return peerGrant{}, errPeerGrant
	}
	g := peerGrant{id: id}
	codeKey := p.rdb.Key("code", redisx.Tag(id), tokenMAC(p.tokenKey, secret))
	parts, err := p.rdb.HGetAll(ctx, codeKey).Result()
	if err != nil {
		return g, fmt.Errorf("%w: %v", errPeerUnavailable, err)
	}
	if len(parts) == 0 || parts["used"] != "" {
		return g, errPeerGrant
	}
	var req, pk, oidc peerCodePart
	for _, part := range [...]struct {
		name string
		into *peerCodePart
	}{{"req", &req}, {"pkce", &pk}, {"oidc", &oidc}} {
		if err := json.Unmarshal([]byte(parts[part.name]), part.into); err != nil {
			return g, fmt.Errorf("code part %s: %w", part.name, err)
		}
	}
	now := time.Now()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case req.Session == nil || req.ID != id || req.ClientID != cid || pk.ClientID != cid:
		return g, errPeerGrant
	case req.Form.Get("redirect_uri") != f.Get("redirect_uri"):
		return g, errPeerGrant
	case !now.Before(req.Session.OIDC.ExpiresAt["authorize_code"]):
		return g, errPeerGrant
	case pk.Form.Get("code_challenge_method") != "S256" || pk.Form.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]):
		return g, errPeerGrant
	}
	s := req.Session
	g.sub, g.authTime, g.profile = s.OIDC.Subject, s.OIDC.Claims.AuthTime.Unix(), s.Profile
	g.scope, g.audience = strings.Join(req.GrantedScope, " "), strings.Join(req.GrantedAudience, " ")
	var mac string
	g.refresh, mac = p.newRefresh(id)
	// The grant's record, as the store writes it (store/record.go).
	tail := peerGrantTail{T: req.RequestedAt.Unix(), F: url.Values{"client_id": {cid}, "grant_type": {"authorization_code"}},
		S: peerGrantSession{Sub: g.sub, Usr: s.OIDC.Username, P: s.Profile, Kid: s.OIDC.Headers.Extra.Kid}}
	tail.S.C.Iss, tail.S.C.Rat, tail.S.C.AuthTime = s.OIDC.Claims.Iss, s.OIDC.Claims.Rat.Unix(), g.authTime
	tail.S.C.FP = profileFields(s.Profile)
	js, err := json.Marshal(tail)
	if err != nil {
		return g, err
	}
	ttl := 30*24*time.Hour + time.Minute
	rec := strings.Join([]string{"g2", mac, "", "", strconv.FormatInt(now.Add(ttl+24*time.Hour).UnixMilli(), 10),
		strconv.FormatInt(now.Add(30*24*time.Hour).Unix(), 10), cid, g.scope, g.audience, string(js)}, "\n")
	n, err := redeemPeerScript.Run(ctx, p.rdb, []string{codeKey, p.rdb.Key("grant2", redisx.Tag(id))},
		rec, ttl.Milliseconds(), rand.Text()).Int()
	if err != nil {
		return g, fmt.Errorf("%w: %v", errPeerUnavailable, err)
	}
	if n != 1 {
		return g, errPeerGrant
	}
	return g, nil
}

// profileFields names the profile claims p holds (the grant session's fp).
func profileFields(p tokens.Profile) []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"name", p.Name != ""}, {"preferred_username", p.PreferredUsername != ""}, {"email", p.Email != ""},
		{"email_verified", p.EmailVerified}, {"family_name", p.FamilyName != ""}, {"given_name", p.GivenName != ""}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// loadStorePeer runs the store peer as loadPeer runs the signing peer, for
// grant, after storing its codes (authorization_code: n + clients) or one
// grant per client to refresh (refresh_token, each client chaining its
// rotated tokens) in the fleet's Redis: copies of a code hash and a grant
// record the auth-server stored there, taken from the same Redis (each
// with a grant id, token MAC and PKCE challenge of its own, and a code
// expiry from now). The redis-server's CPU over the window goes in
// redisCPU.
func loadStorePeer(b *testing.B, f *fleet, alg string, sigs int, grant string, clients, n int) peerResult {
	ctx := context.Background()
	c := f.Clients["gpt-apps-mcp"]
	cfg := storePeerConfig{Alg: alg, Sigs: sigs, RedisURL: f.Redis.URL(), SecretKey: randomBytes(b, 32), TokenKey: randomBytes(b, 32),
		AuditLog: filepath.Join(b.TempDir(), "store-peer-audit.log")}
	cfg.CommandTimeout, _ = time.ParseDuration(f.env["REDIS_COMMAND_TIMEOUT"])
	cfg.DialTimeout, _ = time.ParseDuration(f.env["REDIS_DIAL_TIMEOUT"])
	hasher, err := authclients.NewSecretHasher(authclients.SecretHasherOptions{Key: cfg.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	hash, err := hasher.Hash(ctx, []byte(c.ClientSecret))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Clients = map[string]string{c.ClientID: string(hash)}
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	defer rdb.Close()
	var form func(i, k int, prev tokenResponse) string
	switch grant {
	case "authorization_code":
		verifier := rand.Text() + rand.Text()
		codes := storePeerCodes(b, rdb, cfg.TokenKey, challenge(verifier), n+clients)
		forms := make([][]string, clients)
		for j, code := range codes { // client i's k-th request: codes[i + k×clients]
			forms[j%clients] = append(forms[j%clients], url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {c.RedirectURIs[0]}, "code_verifier": {verifier},
				"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}.Encode())
		}
		form = func(i, k int, _ tokenResponse) string { return forms[i][k] }
	case "refresh_token":
		first := storePeerGrants(b, rdb, cfg.TokenKey, clients)
		form = func(i, k int, prev tokenResponse) string {
			rt := first[i]
			if k > 0 {
				rt = prev.RefreshToken
			}
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
				"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}.Encode()
		}
	default:
		b.Fatalf("store peer: grant %q", grant)
	}
	spec, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var redisCPU time.Duration
	r := loadPeer(b, peerLoad{name: "store peer", env: []string{storePeerEnv + "=" + string(spec)}, form: form,
		window: func() func() {
			cpu0, _, _ := redisStats(b, f)
			return func() {
				cpu1, _, _ := redisStats(b, f)
				redisCPU = cpu1 - cpu0
			}
		}}, clients, n)
	r.redisCPU = redisCPU
	// One audit line per grant, the warm-up's included.
	raw, err := os.ReadFile(cfg.AuditLog)
	if err != nil {
		b.Fatal(err)
	}
	if lines, ok := bytes.Count(raw, []byte("\n")), bytes.Count(raw, []byte(`"result":"ok"`)); lines != n+clients || ok != lines {
		b.Fatalf("store peer: %d audit lines, %d of them ok, for %d grants", lines, ok, n+clients)
	}
	return r
}

func randomBytes(b *testing.B, n int) []byte {
	out := make([]byte, n)
	if _, err := rand.Read(out); err != nil {
		b.Fatal(err)
	}
	return out
}

// newGrantID is a random UUID-shaped grant id, as fosite's request ids.
func newGrantID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// storedKey is a key the auth-server stored matching pattern, and the
// grant id of its hash tag.
func storedKey(b *testing.B, rdb *redis.Client, pattern string) (key, id string) {
	keys, _, err := rdb.Scan(context.Background(), 0, pattern, 100000).Result()
	if err != nil || len(keys) == 0 {
		b.Fatalf("store peer: no key %s in the auth-server's Redis (%v)", pattern, err)
	}
	_, rest, _ := strings.Cut(keys[0], "{")
	id, _, _ = strings.Cut(rest, "}")
	return keys[0], id
}

// storePeerCodes stores n codes for the store peer, each a copy of a code
// hash the auth-server stored (not redeemed yet: its "used" mark left
// out) with a grant id, MAC and expiry of its own and the PKCE challenge
// ch, and returns them ("<grant id>.<secret>").
func storePeerCodes(b *testing.B, rdb *redis.Client, tokenKey []byte, ch string, n int) []string {
	ctx := context.Background()
	key, oldID := storedKey(b, rdb, "*:as:code:{*")
	parts, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		b.Fatal(err)
	}
	var req, pk peerCodePart
	if json.Unmarshal([]byte(parts["req"]), &req) != nil || json.Unmarshal([]byte(parts["pkce"]), &pk) != nil || req.Session == nil || parts["oidc"] == "" {
		b.Fatalf("store peer: the auth-server's code %s is not as expected: %q", key, parts)
	}
	oldExp, _ := json.Marshal(req.Session.OIDC.ExpiresAt["authorize_code"])
	newExp, _ := json.Marshal(time.Now().Add(10 * time.Minute))
	b.Logf("store peer: a copy of the auth-server's code hash per code: req %d B, pkce %d B, oidc %d B",
		len(parts["req"]), len(parts["pkce"]), len(parts["oidc"]))
	codes := make([]string, n)
	pipe := rdb.Pipeline()
	for i := range codes {
		id, secret := newGrantID(), rand.Text()+rand.Text()
		r := strings.NewReplacer(oldID, id, pk.Form.Get("code_challenge"), ch, string(oldExp), string(newExp))
		k := storePeerKeys + "code:" + redisx.Tag(id) + ":" + tokenMAC(tokenKey, secret)
		pipe.HSet(ctx, k, "req", r.Replace(parts["req"]), "pkce", r.Replace(parts["pkce"]), "oidc", r.Replace(parts["oidc"]))
		pipe.PExpire(ctx, k, 10*time.Minute)
		codes[i] = id + "." + secret
		if pipe.Len() >= 1000 || i == n-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	return codes
}

// storePeerGrants stores n grants for the store peer to refresh, each a
// copy of a grant record the auth-server stored with a grant id and a
// current refresh token of its own, and returns their refresh tokens
// ("<grant id>.<secret>").
func storePeerGrants(b *testing.B, rdb *redis.Client, tokenKey []byte, n int) []string {
	ctx := context.Background()
	key, _ := storedKey(b, rdb, "*:as:grant2:{*")
	rec, err := rdb.Get(ctx, key).Result()
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.SplitN(rec, "\n", 10) // the header's 9 lines and the JSON
	if len(lines) != 10 || lines[0] != "g2" {
		b.Fatalf("store peer: the auth-server's grant %s is not as expected: %q", key, rec)
	}
	b.Logf("store peer: a copy of the auth-server's grant record per grant: %d B (%d B of JSON)", len(rec), len(lines[9]))
	rts := make([]string, n)
	for i := range rts {
		id, secret := newGrantID(), rand.Text()+rand.Text()
		lines[1], lines[2], lines[3] = tokenMAC(tokenKey, secret), "", ""
		if err := rdb.Set(ctx, storePeerKeys+"grant2:"+redisx.Tag(id), strings.Join(lines, "\n"), 30*24*time.Hour+time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
		rts[i] = id + "." + secret
	}
	return rts
}
