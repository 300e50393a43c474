package clients

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	josev3 "github.com/go-jose/go-jose/v3"
)

// jwkJSON is k as a JWK object (members by their registered names) with
// edit applied to its members.
func jwkJSON(t *testing.T, k josev3.JSONWebKey, edit func(map[string]any)) string {
	t.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rename moves member from to to (a case variant of a JWK parameter).
func rename(from, to string) func(map[string]any) {
	return func(m map[string]any) { m[to] = m[from]; delete(m, from) }
}

type jwksCase struct {
	name string
	jwks string
	want string // a part of the problem; "" for none
}

// jwksCases are inline jwks of a private_key_jwt client, usable or not.
func jwksCases(t *testing.T) []jwksCase {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// A verifier reads only n and e: an odd modulus of the size is enough
	// for the keys nobody signs with.
	modulus := func(bits int) *big.Int {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return n.SetBit(n, 0, 1)
	}
	huge := josev3.JSONWebKey{Key: &rsa.PublicKey{N: modulus(65536), E: 65537}, KeyID: "h1", Use: "sig"}
	above := josev3.JSONWebKey{Key: &rsa.PublicKey{N: modulus(4097), E: 65537}, KeyID: "h2", Use: "sig"}
	top := josev3.JSONWebKey{Key: &rsa.PublicKey{N: modulus(4096), E: 65537}, KeyID: "t1", Use: "sig"}
	bigE := josev3.JSONWebKey{Key: &rsa.PublicKey{N: rsaKey.N, E: 1<<31 - 1}, KeyID: "x1", Use: "sig"}
	e3 := josev3.JSONWebKey{Key: &rsa.PublicKey{N: rsaKey.N, E: 3}, KeyID: "x3", Use: "sig"}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := josev3.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r1", Use: "sig", Algorithm: "RS256"}
	bare := josev3.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r1", Use: "sig"}
	noUse := josev3.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r1"}
	enc := josev3.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r1", Use: "enc"}
	ps := josev3.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r1", Use: "sig", Algorithm: "PS256"}
	short := josev3.JSONWebKey{Key: &small.PublicKey, KeyID: "s1", Use: "sig"}
	ec := josev3.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "e1", Use: "sig", Algorithm: "ES256"}
	priv := josev3.JSONWebKey{Key: rsaKey, KeyID: "p1", Use: "sig"}
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	const none = `jwks holds no key usable for RS256 client assertions`
	return []jwksCase{
		{"RS256 key", set(jwkJSON(t, good, nil)), ""},
		{"RSA key without alg", set(jwkJSON(t, bare, nil)), ""},
		{"an EC key next to a usable one", set(jwkJSON(t, ec, nil), jwkJSON(t, good, nil)), ""},
		{"EC key only", set(jwkJSON(t, ec, nil)), none + ` (the only algorithm accepted; an RSA public key of 2048 to 4096 bits with the exponent 65537, "use": "sig" or none and "alg" RS256 or none): key 1 (kid "e1") is not an RSA key`},
		// RFC 7517 §4.2: "use" is optional; a key without it is read as
		// "sig" (DecodeJWKS).
		{"no use", set(jwkJSON(t, noUse, nil)), ""},
		{"use enc", set(jwkJSON(t, enc, nil)), `key 1 (kid "r1") has "use": "enc", not "sig"`},
		// RFC 7517 §4.3: "key_ops" says what a key without "use" is for.
		{"key_ops verify", set(jwkJSON(t, noUse, func(m map[string]any) { m["key_ops"] = []string{"verify"} })), ""},
		{"key_ops encrypt", set(jwkJSON(t, noUse, func(m map[string]any) { m["key_ops"] = []string{"encrypt", "wrapKey"} })), `key 1 (kid "r1") has no "use" and "key_ops" without "verify" (RFC 7517 section 4.3)`},
		{"key_ops not an array", set(jwkJSON(t, noUse, func(m map[string]any) { m["key_ops"] = "verify" })), `jwks key 1 has a "key_ops" member that is not an array of strings (RFC 7517 section 4.3)`},
		{"alg PS256", set(jwkJSON(t, ps, nil)), `key 1 (kid "r1") has "alg": "PS256", not RS256`},
		{"1024 bits", set(jwkJSON(t, short, nil)), `key 1 (kid "s1") has 1024 bits, fewer than 2048 (RFC 7518 section 3.3)`},
		// A ceiling and one exponent bound the CPU of an assertion's check
		// (a 65,536-bit key with e = 2^31-1: ~0.3 s per forged assertion).
		{"4096 bits", set(jwkJSON(t, top, nil)), ""},
		{"4097 bits", set(jwkJSON(t, above, nil)), `key 1 (kid "h2") has 4097 bits, more than 4096`},
		{"65536 bits", set(jwkJSON(t, huge, nil)), `key 1 (kid "h1") has 65536 bits, more than 4096`},
		{"exponent 2^31-1", set(jwkJSON(t, bigE, nil)), `key 1 (kid "x1") has the public exponent 2147483647, not 65537`},
		{"exponent 3", set(jwkJSON(t, e3, nil)), `key 1 (kid "x3") has the public exponent 3, not 65537`},
		{"an oversized key next to a usable one", set(jwkJSON(t, huge, nil), jwkJSON(t, good, nil)), ""},
		{"two unusable keys", set(jwkJSON(t, ec, nil), jwkJSON(t, enc, nil)), `key 1 (kid "e1") is not an RSA key; key 2 (kid "r1") has "use": "enc", not "sig"`},
		{"a private key", set(jwkJSON(t, good, nil), jwkJSON(t, priv, nil)), `jwks key 2 (kid "p1") is a private key (a client publishes only its public keys): remove it`},
		{"empty", `{"keys":[]}`, "private_key_jwt needs jwks or jwks_uri"},
		// Member names are exact (RFC 8259 §8.3): encoding/json read each
		// of these as its lowercase parameter, and the set was usable.
		// "USE": "enc" is no "use" (encoding/json read it as one, and
		// the key was unusable): the key has none, so "sig".
		{"USE", set(jwkJSON(t, enc, rename("use", "USE"))), ""},
		{"ALG", set(jwkJSON(t, ps, func(m map[string]any) { m["ALG"] = "RS256" })), `has "alg": "PS256", not RS256`},
		{"KEYS", `{"KEYS":[` + jwkJSON(t, good, nil) + `]}`, `jwks has no "keys" member (RFC 7517 section 5)`},
		{"KTY", set(jwkJSON(t, good, rename("kty", "KTY"))), `jwks key 1 does not decode`},
		{"N", set(jwkJSON(t, good, rename("n", "N"))), `jwks key 1 does not decode`},
		{"not an object", `[1]`, `jwks is not a JSON object (RFC 7517 section 5)`},
		{"keys not an array", `{"keys":{}}`, `jwks has a "keys" member that is not an array of JWK objects`},
		{"a key not an object", `{"keys":[1]}`, `jwks has a "keys" member that is not an array of JWK objects`},
	}
}

// TestRegistryFileJWKS: a private_key_jwt client of the registry file
// whose inline jwks cannot verify an RS256 assertion (the one algorithm
// accepted) is a problem naming the client and each key's reason; the
// set's members are read by exactly their names.
func TestRegistryFileJWKS(t *testing.T) {
	for _, tc := range jwksCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"clients":[{"client_id":"pk","token_endpoint_auth_method":"private_key_jwt",` +
				`"redirect_uris":["https://app.example/cb"],"resources":["https://mcp.example/mcp"],"jwks":` + tc.jwks + `}]}`
			_, problems := Parse([]byte(doc), Rules{Resources: []string{"https://mcp.example/mcp"}})
			switch got := strings.Join(problems, "\n"); {
			case tc.want == "" && got != "":
				t.Errorf("refused: %s", got)
			case tc.want != "" && (len(problems) == 0 || !strings.HasPrefix(problems[0], `client "pk": `) || !strings.Contains(problems[0], tc.want)):
				t.Errorf("problems %q, want the first, of client \"pk\", containing %q", got, tc.want)
			}
		})
	}
}

// TestMetadataDocumentJWKS: the same sets in a client id metadata
// document: refused with the same reason, members by exact names.
func TestMetadataDocumentJWKS(t *testing.T) {
	for _, tc := range jwksCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"client_id":"https://app.example/c.json","token_endpoint_auth_method":"private_key_jwt",` +
				`"redirect_uris":["https://app.example/cb"],"jwks":` + tc.jwks + `}`
			var md Metadata
			err := decodeMetadata([]byte(doc), &md)
			if err == nil {
				_, err = md.ToClient(Rules{Resources: []string{"https://mcp.example/mcp"}}, KindMetadata)
			}
			var me *MetadataError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want a refusal containing %q", tc.want)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !errors.As(err, &me)):
				t.Errorf("%v, want a MetadataError containing %q", err, tc.want)
			}
		})
	}
}

// TestRegistryFileJWKSAndJWKSURI: RFC 7591 §2, "MUST NOT both be present".
func TestRegistryFileJWKSAndJWKSURI(t *testing.T) {
	doc := `{"clients":[{"client_id":"pk","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://app.example/jwks",` +
		`"redirect_uris":["https://app.example/cb"],"resources":["https://mcp.example/mcp"],"jwks":{"keys":[]}}]}`
	_, problems := Parse([]byte(doc), Rules{Resources: []string{"https://mcp.example/mcp"}})
	want := `client "pk": private_key_jwt takes jwks or jwks_uri, not both (RFC 7591 section 2)`
	if len(problems) != 1 || problems[0] != want {
		t.Errorf("problems %q, want [%q]", problems, want)
	}
}

// TestDecodeJWKSExactNames: a member is the JWK parameter of exactly its
// name; encoding/json also took "USE" for use and "\u212aid" (a Kelvin
// sign) for kid. The key, without "use", is given "sig" (DecodeJWKS).
func TestDecodeJWKSExactNames(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := josev3.JSONWebKey{Key: &key.PublicKey, KeyID: "r1", Use: "sig", Algorithm: "RS256"}
	raw := `{"keys":[` + jwkJSON(t, k, func(m map[string]any) {
		m["USE"], m["\u212aid"], m["Alg"] = "enc", "other", "PS256"
		delete(m, "use")
	}) + `],"Keys":[]}`
	set, err := DecodeJWKS([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	if got := set.Keys[0]; got.Use != "sig" || got.KeyID != "r1" || got.Algorithm != "RS256" {
		t.Errorf("use %q kid %q alg %q, want \"sig\", \"r1\", \"RS256\" (only exact names count)", got.Use, got.KeyID, got.Algorithm)
	}
	if set, err := DecodeJWKS([]byte("null")); set != nil || err != nil {
		t.Errorf("null: %v %v, want nil, nil", set, err)
	}
}

// TestAssertionKeysLeaveOutUnusableKeys: what fosite verifies a client
// assertion with, from a jwks_uri set (AssertionKeys) or an inline one
// (Client.GetJSONWebKeys), holds only the usable keys — an oversized key or
// another exponent next to a usable key is left out, so an assertion naming
// its kid is never checked with it (a 65,536-bit key with e = 2^31-1 cost
// ~0.3 s of CPU per forged assertion).
func TestAssertionKeysLeaveOutUnusableKeys(t *testing.T) {
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	n := new(big.Int).Lsh(big.NewInt(1), 65535)
	n.SetBit(n, 0, 1)
	set := &josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{
		{Key: &rsa.PublicKey{N: n, E: 1<<31 - 1}, KeyID: "big", Use: "sig"},
		{Key: &rsa.PublicKey{N: good.N, E: 3}, KeyID: "e3", Use: "sig"},
		{Key: &good.PublicKey, KeyID: "ok"},
	}}
	kids := func(s *josev3.JSONWebKeySet) (out []string) {
		for _, k := range s.Keys {
			out = append(out, k.KeyID+"/"+k.Use)
		}
		return out
	}
	if got := kids(AssertionKeys(set)); strings.Join(got, ",") != "ok/sig" {
		t.Errorf("AssertionKeys kept %v, want [ok/sig]", got)
	}
	c := &Client{ID: "pk", AuthMethod: "private_key_jwt", JWKS: set}
	if got := kids(c.GetJSONWebKeys()); strings.Join(got, ",") != "ok/sig" {
		t.Errorf("Client.GetJSONWebKeys gave %v, want [ok/sig]", got)
	}
	if len(set.Keys) != 3 || set.Keys[2].Use != "" {
		t.Errorf("the client's own set changed: %v", kids(set))
	}
	if k := AssertionKeys(&josev3.JSONWebKeySet{Keys: set.Keys[:1]}); len(k.Keys) != 0 {
		t.Errorf("a set of only an oversized key gave %v, want none", kids(k))
	}
}

// TestAssertionKeysAreFilteredOnce: a private_key_jwt client's inline
// jwks is filtered (AssertionKeys) where the client is built — from the
// registry file and from a metadata document — not at each
// authentication: GetJSONWebKeys gives the usable keys, the same set at
// every call and in a copy fosite is given (ForRedirect of a loopback
// redirect URI on another port), without allocating.
func TestAssertionKeysAreFilteredOnce(t *testing.T) {
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := `{"keys":[` + jwkJSON(t, josev3.JSONWebKey{Key: &rsa.PublicKey{N: good.N, E: 3}, KeyID: "e3", Use: "sig"}, nil) + `,` +
		jwkJSON(t, josev3.JSONWebKey{Key: &good.PublicKey, KeyID: "ok"}, nil) + `]}`
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	s, problems := Parse([]byte(`{"clients":[{"client_id":"pk","token_endpoint_auth_method":"private_key_jwt",`+
		`"redirect_uris":["https://app.example/cb","http://127.0.0.1/cb"],"resources":["https://mcp.example/mcp"],"jwks":`+jwks+`}]}`), rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	static, err := s.Get("pk")
	if err != nil {
		t.Fatal(err)
	}
	var md Metadata
	if err := decodeMetadata([]byte(`{"client_id":"https://app.example/c.json","token_endpoint_auth_method":"private_key_jwt",`+
		`"redirect_uris":["https://app.example/cb","http://127.0.0.1/cb"],"jwks":`+jwks+`}`), &md); err != nil {
		t.Fatal(err)
	}
	doc, err := md.ToClient(rules, KindMetadata)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Client{"registry file": static, "metadata document": doc} {
		first := c.GetJSONWebKeys()
		if first == nil || len(first.Keys) != 1 || first.Keys[0].KeyID != "ok" || first.Keys[0].Use != "sig" {
			t.Fatalf("%s: GetJSONWebKeys gave %+v, want the key \"ok\" with use \"sig\"", name, first)
		}
		// A loopback redirect URI on another port than the registered
		// one's (RFC 8252 §7.3) is answered with a copy of the client
		// (AuthenticatingWith and a registered URI give the client
		// itself, which would compare c with c).
		cp := c.ForRedirect("http://127.0.0.1:4711/cb")
		if cp == c {
			t.Fatalf("%s: ForRedirect of a loopback URI on another port gave the client itself, want a copy", name)
		}
		for _, cp := range []*Client{c, cp} {
			if got := cp.GetJSONWebKeys(); got != first {
				t.Errorf("%s: GetJSONWebKeys gave another set (%p, first %p): filtered again", name, got, first)
			}
		}
		if n := testing.AllocsPerRun(100, func() { _ = c.GetJSONWebKeys() }); n != 0 {
			t.Errorf("%s: GetJSONWebKeys allocates %.0f times per call, want 0 (filtered once, when the client is built)", name, n)
		}
		if len(c.JWKS.Keys) != 2 {
			t.Errorf("%s: the client's own jwks holds %d keys, want both", name, len(c.JWKS.Keys))
		}
	}
}
