package tokens_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestChallengeText: what RFC 6750 §3 allows in error_description passes
// unchanged; anything else is replaced, never dropped, so the length and
// the rest of the text stay.
func TestChallengeText(t *testing.T) {
	for in, want := range map[string]string{
		"access token rejected: token expired; refresh it": "access token rejected: token expired; refresh it",
		" !#[]~":              " !#[]~",
		`kid "a\b"`:           `kid 'a'b'`,
		"line\r\nInjected: 1": "line''Injected: 1",
		"tab\there":           "tab'here",
		"café":                "caf'",
		"\x7f":                "'",
		"":                    "",
	} {
		if got := tokens.ChallengeText(in); got != want {
			t.Errorf("ChallengeText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBearerMetadata: the token a Verifier accepted is forwarded as
// "Bearer <token>" by WithBearer exactly as WithToken forwards it, also for
// claims no Verifier made; FromIncoming reads one value back and refuses
// none, two, and another scheme.
func TestBearerMetadata(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	v := newVerifier(t, iss, tokens.VerifierOptions{})
	raw := iss.Mint(t, tokentest.Token{Audience: mcpAud})
	c, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(context.Background(), strings.Clone(raw)) // a cache hit
	if err != nil || again != c {
		t.Fatalf("second Verify = %p, %v; want the cached %p", again, err, c)
	}
	outgoing := func(ctx context.Context) []string {
		md, _ := metadata.FromOutgoingContext(ctx)
		return md.Get("authorization")
	}
	want := "Bearer " + raw
	for name, ctx := range map[string]context.Context{
		"WithBearer":            tokens.WithBearer(context.Background(), c),
		"WithBearer, no Verify": tokens.WithBearer(context.Background(), &tokens.Claims{Raw: raw}),
		"WithToken":             tokens.WithToken(context.Background(), raw),
	} {
		if got := outgoing(ctx); len(got) != 1 || got[0] != want {
			t.Errorf("%s: authorization = %q, want one %q", name, got, want)
		}
	}
	if c.Raw != raw {
		t.Errorf("Raw = %q, want the token", c.Raw)
	}
	for _, tc := range []struct {
		md   metadata.MD
		tok  string
		want error
	}{
		{metadata.Pairs("authorization", want), raw, nil},
		{metadata.Pairs("Authorization", "bearer  "+raw), raw, nil},
		{metadata.MD{}, "", tokens.ErrNoToken},
		{metadata.Pairs("authorization", want, "authorization", want), "", tokens.ErrDuplicateAuthorization},
		{metadata.Pairs("authorization", "Basic dXNlcjpwdw=="), "", tokens.ErrNotBearer},
		{metadata.Pairs("authorization", "Bearer "), "", tokens.ErrEmptyBearer},
		{metadata.Pairs("authorization", "Bearer a b"), "", tokens.ErrMalformedBearer},
	} {
		got, err := tokens.FromIncoming(metadata.NewIncomingContext(context.Background(), tc.md))
		if got != tc.tok || !errors.Is(err, tc.want) {
			t.Errorf("FromIncoming(%v) = %.20q, %v; want %.20q, %v", tc.md, got, err, tc.tok, tc.want)
		}
	}
}
