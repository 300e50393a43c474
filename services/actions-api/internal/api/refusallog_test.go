package api_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/logging"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRefusedBearerTokenLogged: a refused bearer token gets one warn line
// with the reason (a code), the trusted client address, the request id and,
// its signature having verified, its grant and client — never the token —
// and a flood of refusals writes at most 10 such lines a
// second, the rest counted on the next line ("suppressed").
func TestRefusedBearerTokenLogged(t *testing.T) {
	svc := notesService("notes")
	svc.Methods = append(svc.Methods, registrytest.Method{Name: "DeleteNote", Action: &optionsv1.ActionsOperation{
		Method: "DELETE", Path: "/actions/notes/{text}", OperationId: "notesDelete", Summary: "Delete a note",
		RequiredScopes: []string{"notes.write"}, Consequential: true}})
	notes := registrytest.Start(t, "notes", []registrytest.Service{svc})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,notes=" + notes.Addr})
	expired := f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: allScopes, IssuedAt: time.Now().Add(-3 * time.Hour), ExpiresIn: time.Hour, GrantID: "grant-exp", ClientID: "client-exp"})
	h := bearer(expired)
	h.Set("X-Request-Id", "fixaudit-refused-1")
	if r := f.do(t, http.MethodGet, "/actions/profile", h); r.status != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", r.status)
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(f.logs.String(), "\n") {
			m := map[string]any{}
			if i := strings.IndexByte(line, '{'); i >= 0 && json.Unmarshal([]byte(line[i:]), &m) == nil && m["msg"] == "access token refused" {
				out = append(out, m)
			}
		}
		return out
	}
	got := lines()
	if len(got) != 1 || got[0]["level"] != "WARN" || got[0]["reason"] != "expired" || got[0]["client_address"] != "127.0.0.1" || got[0]["request_id"] != "fixaudit-refused-1" ||
		got[0]["grant_id"] != "grant-exp" || got[0]["client_id"] != "client-exp" {
		t.Fatalf("refusal lines %v, want one warn line with reason expired, client_address 127.0.0.1, request_id fixaudit-refused-1, grant_id grant-exp, client_id client-exp", got)
	}
	if strings.Contains(f.logs.String(), expired) {
		t.Error("the refused token is in the log")
	}
	// A verified token without the scope an operation needs: 403, logged
	// insufficient_scope with its grant and client.
	readOnly := f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: "notes.read", GrantID: "grant-ro", ClientID: "client-ro"})
	h = bearer(readOnly)
	h.Set("X-Request-Id", "fixaudit-refused-2")
	if r := f.do(t, http.MethodDelete, "/actions/notes/a", h); r.status != http.StatusForbidden {
		t.Fatalf("token without notes.write: %d", r.status)
	}
	got = lines()
	if len(got) != 2 || got[1]["reason"] != "insufficient_scope" || got[1]["request_id"] != "fixaudit-refused-2" || got[1]["grant_id"] != "grant-ro" || got[1]["client_id"] != "client-ro" {
		t.Fatalf("refusal lines %v, want a second one with reason insufficient_scope, grant_id grant-ro, client_id client-ro", got)
	}
	// A flood of unverified tokens: a token bucket of RefusalBurst lines
	// refilled at RefusalLinesPerSecond, so the bound grows with the
	// flood's duration (a loaded machine stretches it); the lines and
	// their suppressed counts add up to the refusals.
	start := time.Now()
	for range 60 {
		_ = f.do(t, http.MethodGet, "/actions/profile", bearer("garbage"))
	}
	elapsed := time.Since(start)
	bound := logging.RefusalBurst + int(math.Ceil(elapsed.Seconds()*logging.RefusalLinesPerSecond))
	if n := len(lines()) - 2; n > bound || n < 1 {
		t.Errorf("60 refusals in %v wrote %d lines, want 1 to %d", elapsed, n, bound)
	}
	// Each refusal not written is counted as it is dropped, on the admin
	// listener's /metrics: lines and the counter add up to the flood now,
	// before any line reports the drops.
	if n, dropped := len(lines())-2, suppressedCount(t, f.admin, "unverified"); n+dropped != 60 {
		t.Errorf("flood: %d lines and tollgate_refusal_log_suppressed_total{bucket=\"unverified\"} %d, want them to add up to 60", n, dropped)
	}
	if dropped := suppressedCount(t, f.admin, "verified"); dropped != 0 {
		t.Errorf("tollgate_refusal_log_suppressed_total{bucket=\"verified\"} %d, want 0: no verified token's line was dropped", dropped)
	}
	// One more refusal once the bucket has a line again carries the count
	// of those dropped.
	time.Sleep(150 * time.Millisecond)
	_ = f.do(t, http.MethodGet, "/actions/profile", bearer("garbage"))
	total := 0
	for _, m := range lines()[2:] {
		n, _ := m["suppressed"].(float64)
		total += 1 + int(n)
	}
	if total != 61 {
		t.Errorf("flood lines plus suppressed counts make %d refusals, want 61", total)
	}
}

// suppressedCount is tollgate_refusal_log_suppressed_total{bucket} on the
// admin listener's /metrics (admin: its base URL).
func suppressedCount(t *testing.T, admin, bucket string) int {
	t.Helper()
	res, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	series := `tollgate_refusal_log_suppressed_total{bucket="` + bucket + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s%s: %v", series, v, err)
			}
			return n
		}
	}
	t.Fatalf("/metrics has no %s", series)
	return 0
}
