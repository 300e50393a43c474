package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

// TestTokenClientID: a record's TokenClientID is written as
// token_client_id, after the presenting client's client_id and
// client_authenticated and before grant_id, bounded and escaped as every
// value a request supplies is (one line); without one the line has no such key.
func TestTokenClientID(t *testing.T) {
	var b bytes.Buffer
	l := audit.New(&b, "auth-server")
	l.Log(context.Background(), audit.Record{Event: audit.RefreshReuse, Result: "invalid_grant", ClientID: "thief", ClientAuthenticated: true,
		TokenClientID: "owner\n" + strings.Repeat("x", 10000), GrantID: "g1"})
	line := b.String()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	got, _ := m["token_client_id"].(string)
	if !strings.HasPrefix(got, "owner\n") || len(got) > 5000 || strings.Count(line, "\n") != 1 {
		t.Errorf("token_client_id %.80q… (%d bytes), want the owner, escaped within one line and bounded", got, len(got))
	}
	if i, j, k := strings.Index(line, `"client_authenticated":true`), strings.Index(line, `"token_client_id"`), strings.Index(line, `"grant_id"`); i < 0 || !(i < j && j < k) {
		t.Errorf("order: client_authenticated %d, token_client_id %d, grant_id %d\n%s", i, j, k, line)
	}
	b.Reset()
	l.Log(context.Background(), audit.Record{Event: audit.Grant, ClientID: "c"})
	if strings.Contains(b.String(), "token_client_id") {
		t.Errorf("a record without TokenClientID: %s", b.String())
	}
}
