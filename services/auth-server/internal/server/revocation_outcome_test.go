package server_test

import (
	"bytes"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
)

// TestRevocationOneRecordPerOutcome: every RFC 7009 request writes exactly
// one audit record, saying what it did. fosite's revocation handler
// revokes the token's grant twice (for its refresh token, then its access
// token; each revokes the whole grant):
//
//   - both succeed: one record, result ok, the grant;
//   - the first fails (its connection to Redis cut, a network failure of
//     one command) and the second succeeds: the grant is revoked, the
//     request is answered 503 (the client retries, and the retry is
//     answered 200), and its one record is the failure, naming the grant
//     and saying it was revoked in part — not a failure record and a
//     success record;
//   - both fail (the fleet's revocation records read-only): 503, and one
//     failure record naming the grant — not the revoker's record of each
//     failed revocation besides the endpoint's.
func TestRevocationOneRecordPerOutcome(t *testing.T) {
	f := newFleet(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, "", true)
	cut := startRevocationCut(t, f.Redis.Addr())
	f.env["REDIS_URL"] = "redis://" + cut.addr + "/0"
	f.start()
	c := f.Clients["local-test"]
	revoke := func(addr, token string) tokenResponse {
		t.Helper()
		return f.clientCall(clientReq{Path: "/oauth/revoke", BasicUser: url.QueryEscape(c.ClientID), BasicPass: url.QueryEscape(c.ClientSecret),
			Form: url.Values{"token": {token}}, ForwardFor: addr})
	}
	// oneRecord checks that the requests from addr wrote exactly one audit
	// record, a revocation by the authenticated client with want's fields.
	oneRecord := func(t *testing.T, addr string, want map[string]any) {
		t.Helper()
		var got []map[string]any
		for _, e := range auditEvents(t, f) {
			if e["client_address"] == addr {
				got = append(got, e)
			}
		}
		if len(got) != 1 {
			t.Fatalf("%d audit records for the request, want 1: %v", len(got), eventsFrom(t, f, addr))
		}
		want["event"], want["endpoint"], want["client_id"], want["client_authenticated"] = "revocation", "revoke", c.ClientID, true
		for k, v := range want {
			if got[0][k] != v {
				t.Errorf("record %s = %v, want %v: %s", k, got[0][k], v, got[0]["_line"])
			}
		}
	}
	const failed = "the revocation failed; the token may still be valid (RFC 7009 §2.2.1)"

	t.Run("revoked", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		if r := revoke("198.51.100.81", tr.RefreshToken); r.Status != http.StatusOK {
			t.Fatalf("revoke: %d %s %s", r.Status, r.Error, r.Description)
		}
		oneRecord(t, "198.51.100.81", map[string]any{"result": "ok", "grant_id": id, "reason": "revocation request (RFC 7009)"})
		assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
	})

	t.Run("revoked in part", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		cut.armed.Store(true)
		r := revoke("198.51.100.82", tr.RefreshToken)
		if cut.armed.Load() || cut.cuts.Load() != 1 {
			t.Fatalf("the first revocation's write was not cut (armed %v, cuts %d)", cut.armed.Load(), cut.cuts.Load())
		}
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
			t.Fatalf("revoke: %d %s %s, want 503 temporarily_unavailable", r.Status, r.Error, r.Description)
		}
		retryAfter(t, "revoked in part", r.Header)
		oneRecord(t, "198.51.100.82", map[string]any{"result": "temporarily_unavailable", "grant_id": id,
			"reason": "the revocation failed in part: the grant was revoked by one of its two revocations (refresh token, access token), the other failed; answered as a failure (RFC 7009 §2.2.1), a retry is answered 200"})
		assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
		// The client's retry: the grant is gone.
		if r := revoke("198.51.100.83", tr.RefreshToken); r.Status != http.StatusOK {
			t.Fatalf("retry: %d %s %s", r.Status, r.Error, r.Description)
		}
		oneRecord(t, "198.51.100.83", map[string]any{"result": "ok", "reason": "no active grant for the token (RFC 7009 §2.2: answered 200)"})
	})

	t.Run("not revoked", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		// The fleet's revocation records (tollgate:revocation:*) become
		// read-only; every other key stays writable.
		restore := f.Redis.RestrictKeys(t, "tollgate:revocation:", "%R")
		r := revoke("198.51.100.84", tr.AccessToken)
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
			t.Fatalf("revoke: %d %s %s, want 503 temporarily_unavailable", r.Status, r.Error, r.Description)
		}
		oneRecord(t, "198.51.100.84", map[string]any{"result": "temporarily_unavailable", "grant_id": id, "reason": failed})
		restore()
		if g := readGrant(t, f, id); !g.exists || revokedInFleet(t, f, id) {
			t.Fatalf("the failed revocation changed the grant: record %v, revoked %v", g.exists, revokedInFleet(t, f, id))
		}
	})
}

// revocationCut is a TCP proxy in front of the real redis-server that,
// while armed, cuts the connection that carries the next write of the
// fleet's revocation records (ZADD …revocation:grants) before Redis reads
// it: one command's network failure, which go-redis does not retry
// (redisx: MaxRetries -1); the next command goes over another connection.
// Disarmed after one cut.
type revocationCut struct {
	addr  string
	armed atomic.Bool
	cuts  atomic.Int32
}

func startRevocationCut(t *testing.T, redisAddr string) *revocationCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	rc := &revocationCut{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go rc.serve(conn, redisAddr)
		}
	}()
	return rc
}

func (rc *revocationCut) serve(conn net.Conn, redisAddr string) {
	defer conn.Close()
	up, err := net.Dial("tcp", redisAddr)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = conn.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			chunk := bytes.ToLower(buf[:n])
			if bytes.Contains(chunk, []byte("zadd")) && bytes.Contains(chunk, []byte("revocation:grants")) && rc.armed.CompareAndSwap(true, false) {
				rc.cuts.Add(1)
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
