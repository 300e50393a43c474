package server_test

// A dynamic registration's secret hash is rewritten under the current
// client secret key only when the hasher verified it under a rotated one
// (clients.Attempt.Rehash): what the auth-servers write to the real
// redis-server, watched with MONITOR, through real HTTP.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// redisMonitor reads the commands a redis-server runs (MONITOR), from
// every client of it, the auth-servers' and the test's.
type redisMonitor struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	rdb  *redisx.Client
	n    int
}

// monitorRedis starts watching r's commands; it stops when the test ends.
func monitorRedis(t *testing.T, r *testharness.Redis) *redisMonitor {
	t.Helper()
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &redisMonitor{t: t, conn: conn, r: bufio.NewReader(conn), rdb: r.Client()}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := m.r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	return m
}

// monitorLine is a MONITOR line: `<time> [<db> <client>] "<cmd>" "<arg>" …`;
// monitorArg is one quoted word of it (quotes inside are escaped).
var (
	monitorLine = regexp.MustCompile(`^\S+ \[[^\]]*\] (".*)$`)
	monitorArg  = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// commands returns the commands run since the last call, each as its
// words (the name lower-cased, then the arguments as MONITOR quotes them):
// it sends a marker (ECHO) through its own client and reads up to it, so
// every command sent before the call is in.
func (m *redisMonitor) commands() [][]string {
	m.t.Helper()
	m.n++
	marker := fmt.Sprintf("secrets-monitor-marker-%d", m.n)
	if err := m.rdb.Echo(context.Background(), marker).Err(); err != nil {
		m.t.Fatal(err)
	}
	// A safety net for a server that stops answering, not a timing
	// assertion: the marker is already sent.
	_ = m.conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	var out [][]string
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("MONITOR read: %v", err)
		}
		p := monitorLine.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
		if p == nil {
			continue
		}
		var words []string
		for _, w := range monitorArg.FindAllStringSubmatch(p[1], -1) {
			words = append(words, w[1])
		}
		if len(words) == 0 {
			continue
		}
		words[0] = strings.ToLower(words[0])
		if words[0] == "echo" && len(words) == 2 && words[1] == marker {
			return out
		}
		out = append(out, words)
	}
}

// writesTo counts the commands since the last call that write key (the
// auth-server's scripts never touch a registration).
func (m *redisMonitor) writesTo(key string) int {
	m.t.Helper()
	n := 0
	for _, c := range m.commands() {
		switch c[0] {
		case "set", "setex", "psetex", "getset", "getdel", "del", "unlink", "rename", "hset":
			if len(c) > 1 && c[1] == key {
				n++
			}
		}
	}
	return n
}

// dcrKey is the Redis key of dynamic registration id (store.PutJSON
// "dcr", under the default key prefix).
func dcrKey(id string) string { return "tollgate:as:dcr:" + redisx.Hash(id) }

type dcrRecord struct {
	Metadata   json.RawMessage `json:"metadata"`
	SecretHash string          `json:"secret_hash"`
	IssuedAt   int64           `json:"issued_at"`
}

func readDCR(t *testing.T, rdb *redisx.Client, id string) (string, dcrRecord) {
	t.Helper()
	raw, err := rdb.Get(context.Background(), dcrKey(id)).Result()
	if err != nil {
		t.Fatalf("registration %s: %v", id, err)
	}
	var rec dcrRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		t.Fatal(err)
	}
	return raw, rec
}

// TestSecretsRehashOnlyUnderRotatedKey: with CLIENT_SECRET_HMAC_KEY k1, a
// registration authenticates three times and its record is never
// written. At a replica of k2 (k1 rotated): a wrong secret, twice, writes
// nothing; the right secret, three times, writes the record once — the
// hash under k2, the metadata and issue time as they were — and a replica
// of k2 alone then accepts it. A registration's first code exchange at
// the k2 replica (the authorization_code path, whose rewrite comes before
// the signing queue) rewrites it once too, and its tokens are issued.
func TestSecretsRehashOnlyUnderRotatedKey(t *testing.T) {
	const k1, k2 = "secrets-rehash-client-key-1-0123456789ab", "secrets-rehash-client-key-2-ba9876543210"
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": hmacBreakA, "CLIENT_SECRET_HMAC_KEY": k1})
	c, flow := registerConfidential(t, f), registerConfidential(t, f)
	rdb := f.Redis.Client()
	m := monitorRedis(t, f.Redis)
	before, recBefore := readDCR(t, rdb, c.ClientID)

	for i := range 3 {
		if !authenticates(t, f, c) {
			t.Fatalf("authentication %d under the current key refused", i)
		}
	}
	if n := m.writesTo(dcrKey(c.ClientID)); n != 0 {
		t.Errorf("a hash made under the current key: %d writes of the registration, want none", n)
	}
	if raw, _ := readDCR(t, rdb, c.ClientID); raw != before {
		t.Errorf("a hash made under the current key: record changed\n%s\n%s", before, raw)
	}

	rolled := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": k2, "CLIENT_SECRET_HMAC_KEYS_ROTATED": k1})
	wrong := c
	wrong.ClientSecret = "x" + c.ClientSecret
	for i := range 2 {
		if authenticates(t, rolled, wrong) {
			t.Fatalf("wrong secret %d accepted", i)
		}
	}
	if n := m.writesTo(dcrKey(c.ClientID)); n != 0 {
		t.Errorf("a wrong secret: %d writes of the registration, want none", n)
	}
	if raw, _ := readDCR(t, rdb, c.ClientID); raw != before {
		t.Errorf("a wrong secret changed the record\n%s\n%s", before, raw)
	}

	for i := range 3 {
		if !authenticates(t, rolled, c) {
			t.Fatalf("authentication %d under the rotated key refused", i)
		}
	}
	if n := m.writesTo(dcrKey(c.ClientID)); n != 1 {
		t.Errorf("a hash made under a rotated key, three authentications: %d writes of the registration, want 1", n)
	}
	_, rec := readDCR(t, rdb, c.ClientID)
	if rec.SecretHash == recBefore.SecretHash || string(rec.Metadata) != string(recBefore.Metadata) || rec.IssuedAt != recBefore.IssuedAt {
		t.Errorf("the rewritten record: %+v, want the old one with another hash: %+v", rec, recBefore)
	}
	only := f.replica(map[string]string{"CLIENT_SECRET_HMAC_KEY": k2})
	if !authenticates(t, only, c) {
		t.Error("the rewritten registration is refused at a replica of the new key alone")
	}
	if n := m.writesTo(dcrKey(c.ClientID)); n != 0 {
		t.Errorf("the rewritten hash at a replica of its key: %d writes, want none", n)
	}

	// The code exchange: a registration not used since k2 became current.
	a := newAuthRequest(flow)
	a.Scope = "openid"
	p := consentFlow(t, rolled, a, "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("consent at the k2 replica: %d %v", p.Status, p.Location)
	}
	_ = m.writesTo(dcrKey(flow.ClientID)) // the authorization request's touches
	tr := rolled.exchange(flow, a, p.Location.Query().Get("code"))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("code exchange of a registration of the rotated key: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	if n := m.writesTo(dcrKey(flow.ClientID)); n != 1 {
		t.Errorf("the code exchange: %d writes of the registration, want 1", n)
	}
	if r := only.refresh(flow, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("its refresh at the replica of the new key alone: %d %s: %s", r.Status, r.Error, r.Description)
	}
	for _, g := range []*fleet{f, rolled, only} {
		for _, s := range []string{c.ClientSecret, flow.ClientSecret, k1, k2} {
			if strings.Contains(g.AS.Logs.String(), s) {
				t.Errorf("a secret in the logs of %s", g.Base)
			}
		}
	}
}
