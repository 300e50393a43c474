package registry_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tollgate/tollgate/proto/gen/tollgate/capability/v1"
	testingv1 "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1"
	"github.com/tollgate/tollgate/services/platform/registry"
)

// TestMarshalOutputIsCompactProtoJSON: MarshalOutput's bytes are exactly
// those of protojson (snake_case names, unpopulated fields emitted) passed
// through json.Compact — what it made before it compacted in place — for
// the fleet's outputs, with strings full of what a compactor could get
// wrong: spaces, quotes, backslashes before quotes, escapes, non-ASCII,
// HTML characters, JSON punctuation.
func TestMarshalOutputIsCompactProtoJSON(t *testing.T) {
	tricky := []string{
		"", " ", "a b", `say "hi" , then : go`, `C:\dir\ `, `\"`, `\\`, `ends with \`,
		"tab\tnew\nline\r", "é ü 😀 \u2028", "<b>&amp;</b>", `{"json": [1, 2]}`, "\x00\x1f",
	}
	msgs := []proto.Message{
		&capabilityv1.GetProfileResponse{},
		&testingv1.EchoResponse{},
		&testingv1.EchoResponse{Text: "ABABAB", Length: 6},
		&capabilityv1.GetSessionResponse{
			Subject: "alice", ClientId: "gpt actions", Audience: "http://localhost:4000/mcp",
			Scopes:   []string{"openid", "profile", "email"},
			IssuedAt: timestamppb.New(time.Unix(1700000000, 0)), ExpiresAt: timestamppb.New(time.Unix(1700003600, 5e8)),
		},
	}
	for i, s := range tricky {
		msgs = append(msgs,
			&capabilityv1.GetProfileResponse{Sub: s, Name: s + " " + s, GivenName: `"` + s, FamilyName: s + `\`, PreferredUsername: s, Email: s, EmailVerified: i%2 == 0},
			&capabilityv1.GetHealthResponse{Service: s, Version: "v1 .2", Status: "ok", Timestamp: timestamppb.New(time.Unix(int64(i), 0)),
				Checks: []*capabilityv1.DependencyCheck{{Name: "redis", Status: "ok", Detail: s}, {Name: s, Status: "down", Detail: "dial tcp: i/o timeout"}}},
			&testingv1.EchoResponse{Text: s, Length: int32(-i)},
		)
	}
	opts := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	for _, m := range msgs {
		raw, err := opts.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, raw); err != nil {
			t.Fatal(err)
		}
		got, err := registry.MarshalOutput(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("MarshalOutput(%v)\n = %s\nwant %s", m, got, want.Bytes())
		}
	}
}

// BenchmarkMarshalOutput: identity.profile's output.
func BenchmarkMarshalOutput(b *testing.B) {
	m := &capabilityv1.GetProfileResponse{Sub: "alice", Name: "Alice Example", GivenName: "Alice", FamilyName: "Example", PreferredUsername: "alice", Email: "alice@example.com", EmailVerified: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := registry.MarshalOutput(m); err != nil {
			b.Fatal(err)
		}
	}
}
