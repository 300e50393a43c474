package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClientMetadataDocumentCache: over real HTTP and Redis, Client ID
// Metadata Documents of ~15 KB whose redirect URIs' queries are mostly
// '&', each named by an authorization request that is then refused.
//
//   - A document the client checks refuse (here a client_secret_post
//     method, which a public document cannot use) is not cached: its
//     refusal leaves no key in Redis, and its next use fetches it again.
//     Before, it was cached first, for up to CIMD_CACHE_TTL.
//   - A document the checks accept, named with a redirect_uri it does not
//     list (400), is cached, its members read: its key is no longer than
//     the document (and the record's few bytes), for a minute. Before, it
//     was stored re-encoded with each '&' as the six bytes \u0026: ~90 KB
//     for a 15 KB document. Once a sign-in with the client has reached
//     the user, it is kept for its max-age.
func TestClientMetadataDocumentCache(t *testing.T) {
	redirect := "http://127.0.0.1:8978/cimd-cb"
	query := "?" + strings.Repeat("&", 1400)
	var mu sync.Mutex
	docs := map[string]string{}
	fetches := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fetches[r.URL.Path]++
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write([]byte(doc))
	}))
	t.Cleanup(srv.Close)
	doc := func(path, method string) string {
		uris := []string{redirect}
		for i := range 10 {
			uris = append(uris, fmt.Sprintf("https://app%d.example/cb%s", i, query))
		}
		b, err := json.Marshal(map[string]any{"client_id": srv.URL + path, "client_name": "amplifier " + path, "redirect_uris": uris, "token_endpoint_auth_method": method})
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), `\u0026`, "&")
	}
	docs["/refused.json"] = doc("/refused.json", "client_secret_post")
	docs["/accepted.json"] = doc("/accepted.json", "none")
	if n := len(docs["/accepted.json"]); n < 14000 || n > 16<<10 {
		t.Fatalf("the document is %d bytes, want 14,000–16,384", n)
	}
	f := startFleet(t, nil)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	cached := func(path string) (key string, size int64) {
		t.Helper()
		for _, k := range rdb.Keys(ctx, "*as:cimd:*").Val() {
			if strings.Contains(rdb.Get(ctx, k).Val(), `"client_id":"`+srv.URL+path+`"`) {
				return k, rdb.StrLen(ctx, k).Val()
			}
		}
		return "", 0
	}
	authorize := func(path, redirectURI string) *page {
		c := devClient{ClientID: srv.URL + path, RedirectURIs: []string{redirectURI}, AuthMethod: "none"}
		return newBrowser(t, redirectURI).get(newAuthRequest(c).URL(f.Base))
	}

	for i := range 2 {
		p := authorize("/refused.json", redirect)
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_client") {
			t.Errorf("the refused document, request %d: %d %s, want 400 invalid_client", i, p.Status, p.Body)
		}
		if k, n := cached("/refused.json"); k != "" {
			t.Errorf("the refused document, request %d: cached (%s, %d bytes)", i, k, n)
		}
	}
	mu.Lock()
	if fetches["/refused.json"] != 2 {
		t.Errorf("the refused document was fetched %d times for two requests, want 2 (not cached)", fetches["/refused.json"])
	}
	mu.Unlock()

	p := authorize("/accepted.json", "https://not-registered.example/cb")
	if p.Status != http.StatusBadRequest {
		t.Errorf("the accepted document with an unregistered redirect_uri: %d %s, want 400", p.Status, p.Body)
	}
	k, n := cached("/accepted.json")
	if k == "" {
		t.Fatal("the accepted document is not cached")
	}
	// The members read, and until when it may be kept: {"doc":…,"until":…}.
	if want := int64(len(docs["/accepted.json"])) + 64; n > want {
		t.Errorf("the accepted document (%d bytes) is cached as %d bytes, want at most its size and the record's 64", want-64, n)
	}
	// No user has seen an authorization with the client yet: a minute.
	if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the cached document's TTL is %v, want at most a minute before any sign-in", ttl)
	}
	// Decoded from the cache: the client signs in without a fetch.
	before := fetches["/accepted.json"]
	if p := consentFlow(t, f, newAuthRequest(devClient{ClientID: srv.URL + "/accepted.json", RedirectURIs: []string{redirect}, AuthMethod: "none"}), "approve", true); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Errorf("sign-in with the cached document: %d %v", p.Status, p.Location)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches["/accepted.json"] != before {
		t.Errorf("the cached document was fetched again (%d → %d)", before, fetches["/accepted.json"])
	}
	// The authorization reached a user: kept for its max-age (1h) now.
	if ttl := rdb.TTL(ctx, k).Val(); ttl <= 50*time.Minute || ttl > time.Hour {
		t.Errorf("the cached document's TTL after a sign-in is %v, want its max-age (1h)", ttl)
	}
}
