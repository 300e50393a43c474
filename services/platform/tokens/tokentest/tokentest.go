// Package tokentest runs a real KeySetService over gRPC on 127.0.0.1:0 with a
// freshly generated key ring, and mints access tokens signed by it, for
// tests of verifiers (capability-core, connectors). End-to-end tests use the
// real auth-server instead.
package tokentest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// Issuer is a key-set server plus a token minter.
type Issuer struct {
	authv1.UnimplementedKeySetServiceServer
	URL  string // issuer identifier
	Addr string // gRPC address of the KeySetService

	mu    sync.Mutex
	ring  *tokens.KeyRing
	calls int
	srv   *grpc.Server
}

var (
	keyOnce sync.Once
	keyA    *rsa.PrivateKey
	keyB    *rsa.PrivateKey
)

// Keys returns two 2048-bit keys generated once per test binary.
func Keys() (*rsa.PrivateKey, *rsa.PrivateKey) {
	keyOnce.Do(func() {
		keyA, _ = rsa.GenerateKey(rand.Reader, 2048)
		keyB, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	return keyA, keyB
}

// Start serves a KeySetService for issuer url until the test ends.
func Start(t testing.TB, url string) *Issuer {
	t.Helper()
	a, _ := Keys()
	ring, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": a}, "key-a")
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{URL: url, ring: ring}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The fleet's clients ping idle connections every 10 s: permit it as
	// the auth-server does, or they are sent GOAWAY "too_many_pings".
	srv := grpc.NewServer(grpcx.KeepalivePolicy())
	authv1.RegisterKeySetServiceServer(srv, iss)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	iss.Addr = ln.Addr().String()
	iss.srv = srv
	return iss
}

// Stop stops the KeySetService, as an auth-server outage: connections are
// closed and new ones refused. Tokens can still be minted.
func (i *Issuer) Stop() { i.srv.Stop() }

// GetKeySet implements the service.
func (i *Issuer) GetKeySet(context.Context, *authv1.GetKeySetRequest) (*authv1.GetKeySetResponse, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls++
	return &authv1.GetKeySetResponse{Issuer: i.URL, JwksJson: i.ring.PublicJWKSJSON(), ActiveKeyId: i.ring.ActiveKeyID()}, nil
}

// Calls counts GetKeySet calls.
func (i *Issuer) Calls() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.calls
}

// SetRing replaces the published keys (rotation tests).
func (i *Issuer) SetRing(r *tokens.KeyRing) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ring = r
}

// SetIssuer changes the issuer the KeySetService names (and Mint signs
// by default), as an auth-server given another PUBLIC_ISSUER_URL.
func (i *Issuer) SetIssuer(url string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.URL = url
}

// Token describes a token to mint; zero fields get sensible defaults.
type Token struct {
	Subject   string
	Audience  string
	ClientID  string
	Scope     string
	Issuer    string
	IssuedAt  time.Time
	ExpiresIn time.Duration
	Type      string // default at+jwt
	Profile   tokens.Profile
	// GrantID is the grant_id claim (none when empty).
	GrantID string
}

// Mint signs t with the active key.
func (i *Issuer) Mint(t testing.TB, tok Token) string {
	t.Helper()
	if tok.Subject == "" {
		tok.Subject = "user-123"
	}
	if tok.ClientID == "" {
		tok.ClientID = "local-test"
	}
	if tok.Issuer == "" {
		i.mu.Lock()
		tok.Issuer = i.URL
		i.mu.Unlock()
	}
	if tok.IssuedAt.IsZero() {
		tok.IssuedAt = time.Now()
	}
	if tok.ExpiresIn == 0 {
		tok.ExpiresIn = time.Hour
	}
	if tok.Type == "" {
		tok.Type = tokens.AccessTokenType
	}
	std := jwt.Claims{
		Issuer: tok.Issuer, Subject: tok.Subject, Audience: jwt.Audience{tok.Audience},
		IssuedAt: jwt.NewNumericDate(tok.IssuedAt), NotBefore: jwt.NewNumericDate(tok.IssuedAt),
		Expiry: jwt.NewNumericDate(tok.IssuedAt.Add(tok.ExpiresIn)), ID: rand.Text(),
	}
	i.mu.Lock()
	ring := i.ring
	i.mu.Unlock()
	raw, err := ring.Sign(tok.Type, std, tokens.AccessClaims{ClientID: tok.ClientID, Scope: tok.Scope, GrantID: tok.GrantID, Profile: tok.Profile})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
