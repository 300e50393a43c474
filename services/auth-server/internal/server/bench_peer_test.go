package server_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sys/unix"

	"github.com/tollgate/tollgate/services/platform/testharness"
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
	var signingNs atomic.Int64 // the thread CPU time of every signature so far
	mux := http.NewServeMux()
	mux.HandleFunc("GET /signing-cpu", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, signingNs.Load())
	})
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
		resp := map[string]any{"token_type": "Bearer", "expires_in": 3600, "scope": priv.Scope, "refresh_token": rand.Text() + rand.Text()}
		for i := range sigs {
			std.ID = rand.Text()
			tok, cpu, err := signOnOwnThread(func() (string, error) {
				return ring.SignWith(jose.SignatureAlgorithm(alg), tokens.AccessTokenType, std, priv)
			})
			signingNs.Add(cpu.Nanoseconds())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			resp[[]string{"access_token", "id_token"}[min(i, 1)]] = tok
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
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

// peerResult is what loadSigningPeer measured.
type peerResult struct {
	grants     int
	wall       time.Duration
	cpu        time.Duration // the peer process's CPU time over the window
	signingCPU time.Duration // the CPU its signatures took over the window (GET /signing-cpu)
	p50, p99   time.Duration
}

// loadSigningPeer starts a signing peer for alg with sigs signatures per
// request and sends it n token requests from clients concurrent clients,
// as loadTokenEndpoint sends the auth-server its grants: one keep-alive
// connection per client, a form of the same size.
func loadSigningPeer(b *testing.B, alg string, sigs, clients, n int) peerResult {
	ln := testharness.Listener(b)
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), signingPeerEnv+"="+alg+":"+strconv.Itoa(sigs))
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv(serverEnvEnv))...)
	cmd.ExtraFiles = []*os.File{lnFile}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lnFile.Close()
	ln.Close() // the process holds its copy
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	base := "http://" + ln.Addr().String()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {rand.Text() + rand.Text()},
		"redirect_uri": {"https://chatgpt.com/connector_platform_oauth_redirect"}, "code_verifier": {rand.Text() + rand.Text()},
		"client_id": {"gpt-apps-mcp"}, "client_secret": {rand.Text() + rand.Text()}}.Encode()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	do := func() (time.Duration, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		var tr tokenResponse
		if err := json.Unmarshal(raw, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
			return 0, fmt.Errorf("signing peer: %d %s", resp.StatusCode, raw)
		}
		return d, nil
	}
	// Wait for the peer to serve (it generates its keys first), then warm
	// every connection up, as loadTokenEndpoint does.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := do(); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("signing peer not serving: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if _, err := do(); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	signingCPU := func() time.Duration {
		resp, err := hc.Get(base + "/signing-cpu")
		if err != nil {
			b.Fatalf("signing peer: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ns, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			b.Fatalf("signing peer: GET /signing-cpu: %d %q", resp.StatusCode, raw)
		}
		return time.Duration(ns)
	}
	lat := make([][]time.Duration, clients)
	sig0 := signingCPU()
	cpu0, t0 := processCPU(b, cmd.Process.Pid), time.Now()
	for i := range clients {
		wg.Go(func() {
			for k := i; k < n; k += clients {
				d, err := do()
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], d)
			}
		})
	}
	wg.Wait()
	r := peerResult{grants: n, wall: time.Since(t0), cpu: processCPU(b, cmd.Process.Pid) - cpu0}
	r.signingCPU = signingCPU() - sig0
	all := slices.Concat(lat...)
	if len(all) != n {
		b.Fatalf("signing peer: %d of %d requests answered", len(all), n)
	}
	slices.Sort(all)
	r.p50, r.p99 = all[len(all)/2], all[(len(all)*99+99)/100-1]
	return r
}
