package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestDynamicRegistrationIsBounded: over real HTTP and Redis, open
// registrations (RFC 7591) that would be kept for DCR_UNUSED_TTL whether
// or not they are ever used, each refused with the RFC 7591 §3.2.2 error
// naming its bound — more than 16 redirect URIs, a redirect URI over
// 2,000 bytes (invalid_redirect_uri), a record over 16 KiB once stored
// (invalid_client_metadata) — and no record stored for them; a grant type
// listed a thousand times is registered once; an accepted registration
// whose redirect URIs are mostly '&' is stored at about its own size.
// Before, each of these was registered, and a 64.9 KB request was stored
// as 385 KB ('&' written as the six bytes \u0026).
func TestDynamicRegistrationIsBounded(t *testing.T) {
	f := startFleet(t, nil)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	uris := func(n, size int) string {
		var out []string
		for i := range n {
			u := fmt.Sprintf("https://app%d.example/cb?", i)
			out = append(out, u+strings.Repeat("&", size-len(u)))
		}
		b, _ := json.Marshal(out)
		return strings.ReplaceAll(string(b), `\u0026`, "&")
	}
	for _, tc := range []struct{ name, body, code, desc string }{
		{"17 redirect URIs", `{"redirect_uris":` + uris(17, 40) + `}`, "invalid_redirect_uri", "redirect_uris lists 17 URIs; at most 16 may be registered"},
		{"a redirect URI of 2,001 bytes", `{"redirect_uris":` + uris(1, 2001) + `}`, "invalid_redirect_uri", "is 2001 bytes long; at most 2000"},
		{"a record over 16 KiB", `{"redirect_uris":` + uris(10, 2000) + `}`, "invalid_client_metadata", "the client metadata is too large"},
	} {
		st, m := register(t, f, tc.body)
		if desc, _ := m["error_description"].(string); st != http.StatusBadRequest || m["error"] != tc.code || !strings.Contains(desc, tc.desc) {
			t.Errorf("%s: %d %.300v, want 400 %s saying %q", tc.name, st, m, tc.code, tc.desc)
		}
	}
	if keys := rdb.Keys(ctx, "*as:dcr:*").Val(); len(keys) != 0 {
		t.Errorf("%d registration records after refused registrations, want none", len(keys))
	}

	grants := `["authorization_code"` + strings.Repeat(`,"authorization_code"`, 999) + `]`
	if st, m := register(t, f, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","grant_types":`+grants+`}`); st != http.StatusCreated || fmt.Sprint(m["grant_types"]) != "[authorization_code]" {
		t.Errorf("authorization_code listed 1,000 times: %d grant_types %v, want 201 [authorization_code]", st, m["grant_types"])
	}

	body := `{"redirect_uris":` + uris(7, 2000) + `,"token_endpoint_auth_method":"none"}`
	st, m := register(t, f, body)
	if st != http.StatusCreated {
		t.Fatalf("a registration of %d bytes: %d %v, want 201", len(body), st, m)
	}
	id, _ := m["client_id"].(string)
	var size int64
	for _, k := range rdb.Keys(ctx, "*as:dcr:*").Val() {
		if strings.Contains(rdb.Get(ctx, k).Val(), `"client_id":"`+id+`"`) {
			size = rdb.StrLen(ctx, k).Val()
		}
	}
	if size == 0 || size > int64(len(body))+512 {
		t.Errorf("a %d-byte registration is stored as %d bytes, want at most its size + 512", len(body), size)
	}
}
