package redisx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestOpenRefusesRedisOlderThan7: Open refuses a server older than
// MinServerVersion, whether it learns the version from HELLO or, where
// HELLO is refused, from INFO server; it accepts the real server (7.0 or
// later here), and one whose version it cannot read (HELLO renamed away,
// INFO refused by the ACL). The older server is the real one behind a proxy that rewrites
// its version in every reply (no Redis 6 binary here).
func TestOpenRefusesRedisOlderThan7(t *testing.T) {
	ctx := context.Background()
	r := testharness.StartRedis(t)
	real := r.Client()
	info, err := real.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, version, _ := strings.Cut(info, "redis_version:")
	version, _, _ = strings.Cut(version, "\r\n")
	if version == "" {
		t.Fatalf("no redis_version in INFO server: %q", info)
	}
	c, err := redisx.Open(ctx, r.Config())
	if err != nil {
		t.Fatalf("Redis %s refused: %v", version, err)
	}
	c.Close()

	// The same length, so the replies' bulk lengths stay right: "7.0.15"
	// reads "6.0.15", "10.0.1" "06.0.1".
	major, rest, _ := strings.Cut(version, ".")
	old := strings.Repeat("0", len(major)-1) + "6." + rest
	// HELLO is always allowed (no ACL rule refuses it); a server where it
	// is renamed away answers it as an unknown command, as Redis 6.0
	// answers HELLO without a protocol version.
	noHello := testharness.StartRedis(t, "--rename-command", "HELLO", "")
	for _, tc := range []struct {
		name  string
		r     *testharness.Redis
		rules []string
		want  bool // refused
	}{
		{"HELLO", r, []string{"~*", "&*", "+@all"}, true},
		{"INFO server", noHello, []string{"~*", "&*", "+@all"}, true},
		{"neither", noHello, []string{"~*", "&*", "+@all", "-info"}, false},
	} {
		user := strings.ReplaceAll(tc.name, " ", "-")
		c := tc.r.AddUser(t, user, "pw-"+user, tc.rules...)
		c.URL = strings.Replace(c.URL, tc.r.Addr(), versionProxy(t, tc.r.Addr(), version, old), 1)
		got, err := redisx.Open(ctx, c)
		switch {
		case tc.want && err == nil:
			got.Close()
			t.Errorf("%s: Redis reporting %s accepted, want ErrServerTooOld", tc.name, old)
		case tc.want && (!errors.Is(err, redisx.ErrServerTooOld) || !strings.Contains(err.Error(), old)):
			t.Errorf("%s: Redis reporting %s: %v, want ErrServerTooOld naming the version", tc.name, old, err)
		case !tc.want && err != nil:
			t.Errorf("%s: a Redis whose version cannot be read refused: %v", tc.name, err)
		case !tc.want:
			got.Close()
		}
		if err != nil {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// versionProxy forwards connections to addr, replacing from with to in
// what the server sends (from and to have the same length).
func versionProxy(t *testing.T, addr, from, to string) string {
	t.Helper()
	ln := testharness.Listener(t)
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			go func() {
				_, _ = io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer client.Close()
				replaceStream(client, server, []byte(from), []byte(to))
			}()
		}
	}()
	return ln.Addr().String()
}

// replaceStream copies src to dst with from replaced by to, holding back
// only a chunk's end that may begin from (a reply never ends inside the
// version: "\r\n" follows it).
func replaceStream(dst io.Writer, src io.Reader, from, to []byte) {
	var held []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			data := bytes.ReplaceAll(append(held, buf[:n]...), from, to)
			keep := 0
			for k := min(len(from)-1, len(data)); k > 0; k-- {
				if bytes.HasSuffix(data, from[:k]) {
					keep = k
					break
				}
			}
			if _, werr := dst.Write(data[:len(data)-keep]); werr != nil {
				return
			}
			held = append([]byte(nil), data[len(data)-keep:]...)
		}
		if err != nil {
			_, _ = dst.Write(held)
			return
		}
	}
}
