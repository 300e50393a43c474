package byobackend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// TestExampleScopesAndCalls: the example's scopes are supported by the
// auth-server, account linking asks for them, and its tools and operations
// work per user with them.
func TestExampleScopesAndCalls(t *testing.T) {
	var disc struct {
		ScopesSupported []string `json:"scopes_supported"`
	}
	eventually(t, 30*time.Second, "notes scopes in scopes_supported", func() error {
		code, body, err := do("GET", fleet.Origin+"/.well-known/openid-configuration", "", nil)
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &disc) != nil {
			return fmt.Errorf("%d %v", code, err)
		}
		for _, s := range []string{"notes.read", "notes.write"} {
			if !slices.Contains(disc.ScopesSupported, s) {
				return fmt.Errorf("scopes_supported %v lacks %s", disc.ScopesSupported, s)
			}
		}
		return nil
	})

	// Account linking asks for them; the tokens carry them.
	s := openMCP(t, signIn(t, "mcp", "openid notes.read notes.write"))

	// MCP: add and list, per user.
	added, err := s.callTool("notes.add", map[string]any{"text": "buy milk"})
	if err != nil || added.IsError {
		t.Fatalf("notes.add: %+v %v", added, err)
	}
	var note struct{ Note struct{ ID, Text string } }
	if err := json.Unmarshal(added.StructuredContent, &note); err != nil || note.Note.ID == "" || note.Note.Text != "buy milk" {
		t.Fatalf("notes.add result %s", added.StructuredContent)
	}
	listed, err := s.callTool("notes.list", nil)
	if err != nil || listed.IsError || !strings.Contains(string(listed.StructuredContent), note.Note.ID) {
		t.Fatalf("notes.list: %+v %v", listed, err)
	}
	bad, err := s.callTool("notes.add", map[string]any{"text": "  "})
	if err != nil || !bad.IsError || !strings.Contains(bad.text(), "text is required") {
		t.Errorf("notes.add with blank text: %+v %v", bad, err)
	}

	// Actions: the same notes (the same user) through REST.
	actTok := signIn(t, "actions", "openid notes.read notes.write")
	code, body, err := do("GET", fleet.Origin+"/actions/notes", actTok, nil)
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), note.Note.ID) {
		t.Fatalf("GET /actions/notes: %d %s %v", code, body, err)
	}
	code, body, err = do("POST", fleet.Origin+"/actions/notes", actTok, strings.NewReader(`{"text":"call Bob"}`), "Content-Type", "application/json")
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), "call Bob") {
		t.Fatalf("POST /actions/notes: %d %s %v", code, body, err)
	}
	code, body, err = do("DELETE", fleet.Origin+"/actions/notes/"+note.Note.ID, actTok, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("DELETE /actions/notes/%s: %d %s %v", note.Note.ID, code, body, err)
	}
	if code, body, _ = do("DELETE", fleet.Origin+"/actions/notes/"+note.Note.ID, actTok, nil); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d %s, want 404", code, body)
	}

	// A token without notes.write reads but does not write.
	readTok := signIn(t, "actions", "openid notes.read")
	if code, body, _ = do("GET", fleet.Origin+"/actions/notes", readTok, nil); code != http.StatusOK {
		t.Errorf("GET with notes.read: %d %s", code, body)
	}
	if code, body, _ = do("POST", fleet.Origin+"/actions/notes", readTok, strings.NewReader(`{"text":"x"}`), "Content-Type", "application/json"); code != http.StatusForbidden || !strings.Contains(string(body), "notes.write") {
		t.Errorf("POST with notes.read only: %d %s, want 403 naming notes.write", code, body)
	}
}

// TestStoppedBackendFailsCleanlyAndRecovers: with the example stopped, its
// tools and operations answer "temporarily unavailable" (the rest of the
// fleet is unaffected); started again, they work.
func TestStoppedBackendFailsCleanlyAndRecovers(t *testing.T) {
	mcpTok := signIn(t, "mcp", "openid profile email notes.read notes.write")
	actTok := signIn(t, "actions", "openid notes.read")
	s := openMCP(t, mcpTok)
	eventually(t, 60*time.Second, "notes.list before the stop", func() error {
		r, err := s.callTool("notes.list", nil)
		if err == nil && r.IsError {
			err = fmt.Errorf("tool error: %s", r.text())
		}
		return err
	})

	if err := fleet.StopComponent(devfleet.ExampleBackendName); err != nil {
		t.Fatal(err)
	}
	r, err := s.callTool("notes.list", nil)
	if err != nil || !r.IsError || !strings.Contains(r.text(), "temporarily unavailable") {
		t.Errorf("notes.list with the backend stopped: %+v %v, want a 'temporarily unavailable' tool error", r, err)
	}
	if code, body, _ := do("GET", fleet.Origin+"/actions/notes", actTok, nil); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "temporarily_unavailable") {
		t.Errorf("GET /actions/notes with the backend stopped: %d %s, want 503 temporarily_unavailable", code, body)
	}
	if r, err := s.callTool("identity.profile", nil); err != nil || r.IsError {
		t.Errorf("capability-core's identity.profile while the example is down: %+v %v", r, err)
	}

	if err := fleet.RestartComponent(context.Background(), devfleet.ExampleBackendName); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "notes.list after the restart", func() error {
		r, err := s.callTool("notes.list", nil)
		if err == nil && r.IsError {
			err = fmt.Errorf("tool error: %s", r.text())
		}
		return err
	})
	eventually(t, 30*time.Second, "GET /actions/notes after the restart", func() error {
		if code, body, err := do("GET", fleet.Origin+"/actions/notes", actTok, nil); err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
}
