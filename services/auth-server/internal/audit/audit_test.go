package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
)

func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, "auth-server")
	l.Log(context.Background(), audit.Record{
		Event: audit.Grant, ClientID: "app", ClientAuthenticated: true, Subject: "user-1",
		GrantID: "g1", GrantType: "refresh_token", ClientAddr: "192.0.2.7",
	})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"log.type": "audit", "service": "auth-server", "event": "grant", "result": "ok",
		"client_id": "app", "client_authenticated": true, "subject_hash": audit.HashSubject("user-1"),
		"grant_id": "g1", "grant_type": "refresh_token", "client_address": "192.0.2.7",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["time"]; !ok {
		t.Error("no time")
	}
	if strings.Contains(buf.String(), "user-1") {
		t.Error("the subject is logged in the clear")
	}
	if len(audit.HashSubject("user-1")) != 64 {
		t.Error("subject hash is not hex SHA-256")
	}
}

func TestLogOmitsEmptyAndScrubs(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{
		Event: audit.ClientAuthFailure, Result: "invalid_client", Reason: "Bearer abcdefghijklmnop",
	})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "client_authenticated", "subject_hash", "grant_id", "grant_type", "client_address"} {
		if _, ok := m[k]; ok {
			t.Errorf("empty %s is logged", k)
		}
	}
	if m["result"] != "invalid_client" || strings.Contains(buf.String(), "abcdefghijklmnop") {
		t.Errorf("line %s", buf.String())
	}
	var nilLogger *audit.Logger
	nilLogger.Log(context.Background(), audit.Record{Event: audit.Grant}) // must not panic
}

// TestLogScrubsRepeatedValues: a value scrubbed once is scrubbed again
// (bound results are cached by value).
func TestLogScrubsRepeatedValues(t *testing.T) {
	for range 3 {
		var buf bytes.Buffer
		audit.New(&buf, "auth-server").Log(context.Background(), audit.Record{
			Event: audit.ClientAuthFailure, Result: "invalid_client", ClientID: "x access_token=abcdefghijklmnop", ClientAddr: "192.0.2.1",
		})
		if strings.Contains(buf.String(), "abcdefghijklmnop") || !strings.Contains(buf.String(), `"client_address":"192.0.2.1"`) {
			t.Fatalf("line %s", buf.String())
		}
	}
}
