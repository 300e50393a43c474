package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestAnonymousMetadataDocumentsCostLittle: over real HTTP and Redis,
// anonymous token requests naming N distinct Client ID Metadata Documents
// — each served with Cache-Control: max-age=3600 and a large member
// Tollgate does not read — leave N cache keys holding only the members
// read (the unknown member is not stored), each at most a few hundred
// bytes, for at most a minute: no authorization with those clients has
// reached a user. Before, each key held the document as served (up to
// 16 KiB) for the hour its server asked: 100 such requests kept 2.2 MB.
func TestAnonymousMetadataDocumentsCostLittle(t *testing.T) {
	const n = 8
	padding := strings.Repeat("x", 8000)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"anon","redirect_uris":["http://127.0.0.1:8982/cb"],"token_endpoint_auth_method":"none","software_padding":%q}`,
			srv.URL+r.URL.Path, padding)
	}))
	t.Cleanup(srv.Close)
	f := startFleet(t, nil)
	for i := range n {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {"http://127.0.0.1:8982/cb"},
			"code_verifier": {strings.Repeat("v", 43)}, "client_id": {fmt.Sprintf("%s/c%d.json", srv.URL, i)}}
		resp, err := http.PostForm(f.Base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("token request %d with a bogus code: %d, want 400", i, resp.StatusCode)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	keys := rdb.Keys(ctx, "*as:cimd:*").Val()
	if len(keys) != n {
		t.Fatalf("%d document keys after %d requests naming distinct documents, want %d", len(keys), n, n)
	}
	for _, k := range keys {
		v := rdb.Get(ctx, k).Val()
		if strings.Contains(v, "software_padding") || strings.Contains(v, padding[:100]) {
			t.Errorf("%s holds the member Tollgate does not read: %.200s", k, v)
		}
		if !strings.Contains(v, `"redirect_uris":["http://127.0.0.1:8982/cb"]`) {
			t.Errorf("%s lacks the document's redirect_uris: %s", k, v)
		}
		if len(v) > 512 {
			t.Errorf("%s is %d bytes, want at most 512 (the members read)", k, len(v))
		}
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("%s TTL %v, want at most a minute (no authorization reached a user; the document asked 1h)", k, ttl)
		}
	}
}
