package clients

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
)

// jwkMembers are the JWK parameters go-jose reads (RFC 7517 §4, RFC 7518
// §6): a key's member of exactly one of these names is decoded, every
// other member is ignored (RFC 7517 §4: members not understood "MUST be
// ignored").
var jwkMembers = map[string]bool{
	"kty": true, "use": true, "key_ops": true, "alg": true, "kid": true, "crv": true,
	"x": true, "y": true, "n": true, "e": true, "d": true, "p": true, "q": true,
	"dp": true, "dq": true, "qi": true, "k": true,
	"x5u": true, "x5c": true, "x5t": true, "x5t#S256": true,
}

// DecodeJWKS decodes raw, a JWK Set (RFC 7517 §5) from client metadata
// (a client id metadata document's or the registry file's jwks), each
// member by exactly its name, as DecodeMembers reads the metadata around
// it: encoding/json, which go-jose decodes with, matches names without
// regard to case, so {"KEYS":[{"KTY":"RSA","USE":"sig",…}]} was a set
// holding a signing key where a case-sensitive reader (RFC 8259 §8.3
// compares names code unit by code unit) sees a set without "keys". A
// member of another spelling is ignored like any unknown one: a set
// without exactly "keys" is an error, a key whose "use" was spelled
// "USE" has none — and so, like every key without one whose "key_ops"
// allow "verify", the use "sig".
//
// raw "null" gives nil. The error says what is wrong: no JSON object, no
// "keys" array of objects, or a key go-jose does not decode (its kty,
// key material), naming the key by its position (1-based).
func DecodeJWKS(raw []byte) (*josev3.JSONWebKeySet, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil || set == nil {
		return nil, errors.New("is not a JSON object (RFC 7517 section 5)")
	}
	keysRaw, ok := set["keys"]
	if !ok {
		return nil, errors.New(`has no "keys" member (RFC 7517 section 5)`)
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(keysRaw, &keys); err != nil {
		return nil, errors.New(`has a "keys" member that is not an array of JWK objects (RFC 7517 section 5.1)`)
	}
	out := &josev3.JSONWebKeySet{Keys: make([]josev3.JSONWebKey, 0, len(keys))}
	for i, members := range keys {
		if members == nil {
			return nil, fmt.Errorf(`key %d is not a JWK object (RFC 7517 section 4)`, i+1)
		}
		exact := make(map[string]json.RawMessage, len(members))
		for name, v := range members {
			if jwkMembers[name] {
				exact[name] = v
			}
		}
		b, err := json.Marshal(exact)
		if err != nil {
			return nil, fmt.Errorf("key %d does not decode: %v", i+1, err)
		}
		var k josev3.JSONWebKey
		if err := k.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("key %d does not decode (RFC 7517 section 4, RFC 7518 section 6): %s", i+1, strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
		}
		if k.Use == "" {
			// go-jose does not keep "key_ops" (RFC 7517 §4.3): read here
			// whether it allows verification before the key is taken
			// for a signing key.
			verify, err := keyOpsVerify(exact["key_ops"])
			if err != nil {
				return nil, fmt.Errorf("key %d %v", i+1, err)
			}
			if verify {
				k.Use = "sig"
			}
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}

// keyOpsVerify reports whether raw, a JWK's "key_ops" member (RFC 7517
// §4.3; nil when absent), lets the key verify signatures: absent, or an
// array of strings holding "verify". Anything but an array of strings is
// an error.
func keyOpsVerify(raw json.RawMessage) (bool, error) {
	if raw == nil {
		return true, nil
	}
	var ops []string
	if err := json.Unmarshal(raw, &ops); err != nil || ops == nil {
		return false, errors.New(`has a "key_ops" member that is not an array of strings (RFC 7517 section 4.3)`)
	}
	for _, op := range ops {
		if op == "verify" {
			return true, nil
		}
	}
	return false, nil
}

// jwksMember decodes a metadata document's jwks with DecodeJWKS.
type jwksMember struct{ dst **josev3.JSONWebKeySet }

func (m jwksMember) UnmarshalJSON(b []byte) error {
	set, err := DecodeJWKS(b)
	if err != nil {
		return err
	}
	*m.dst = set
	return nil
}

// minAssertionKeyBits is the smallest RSA key an RS256 client assertion
// may be verified with: RFC 7518 §3.3, "A key of size 2048 bits or larger
// MUST be used with these algorithms."
const minAssertionKeyBits = 2048

// maxAssertionKeyBits and assertionKeyExponent bound what one client
// assertion's signature check costs. Whoever publishes a client metadata
// document or registers a client chooses its key, and the token endpoint
// verifies an assertion's signature before anything else of it: an RSA
// verification's cost grows with the cube of the modulus's length and
// with the exponent's bits, so a 65,536-bit key with e = 2^31-1 cost
// ~0.3 s of CPU per forged assertion (session 39, brk10). RFC 7518 names
// only the floor; every mainstream key generator makes 2048- to 4096-bit
// keys with e = 65537 (F4; FIPS 186-5 §A.1.1 asks e > 2^16), which verify
// in well under a millisecond.
const (
	maxAssertionKeyBits  = 4096
	assertionKeyExponent = 65537
)

// assertionKeyProblem says why k cannot verify a client assertion, "" when
// it can. fosite takes, from a client's JWK set, a key whose "use" is
// exactly "sig" and that is an RSA public key (its findPublicKey for
// RS256, AssertionSigningAlg); RFC 7517 §4.4 ties a key that names an
// "alg" to that algorithm, and RFC 7518 §3.3 asks 2048 bits or more.
func assertionKeyProblem(k josev3.JSONWebKey) string {
	switch pk := k.Key.(type) {
	case *rsa.PrivateKey:
		return "is a private key (a client publishes only its public keys)"
	case *rsa.PublicKey:
		switch {
		case k.Use == "":
			// DecodeJWKS gives a key without "use" the use "sig" unless
			// its "key_ops" leave out "verify".
			return `has no "use" and "key_ops" without "verify" (RFC 7517 section 4.3)`
		case k.Use != "sig":
			return fmt.Sprintf(`has "use": %s, not "sig"`, strconv.Quote(k.Use))
		case k.Algorithm != "" && k.Algorithm != AssertionSigningAlg:
			return fmt.Sprintf(`has "alg": %s, not %s`, strconv.Quote(k.Algorithm), AssertionSigningAlg)
		case pk.N.BitLen() < minAssertionKeyBits:
			return fmt.Sprintf("has %d bits, fewer than %d (RFC 7518 section 3.3)", pk.N.BitLen(), minAssertionKeyBits)
		case pk.N.BitLen() > maxAssertionKeyBits:
			return fmt.Sprintf("has %d bits, more than %d (this server's ceiling: a larger key makes each assertion's check costly)", pk.N.BitLen(), maxAssertionKeyBits)
		case pk.E != assertionKeyExponent:
			return fmt.Sprintf("has the public exponent %d, not %d (this server verifies only with e = %d, FIPS 186-5 section A.1.1's and every key generator's)", pk.E, assertionKeyExponent, assertionKeyExponent)
		}
		return ""
	}
	if !k.IsPublic() {
		return "is a private or symmetric key (a client publishes only its public keys)"
	}
	return "is not an RSA key"
}

// AssertionKeysProblem says why set, a private_key_jwt client's inline
// jwks, cannot authenticate the client, "" when it can: it must hold a
// key usable for RS256 (AssertionSigningAlg, the one client assertion
// algorithm accepted) — an RSA public key of 2048 to 4096 bits with the
// exponent 65537, "use": "sig" or none and no other "alg" — and no private key (a private key in
// client metadata is no longer private). Each key that fails is named
// with its reason.
func AssertionKeysProblem(set *josev3.JSONWebKeySet) string {
	if set == nil || len(set.Keys) == 0 {
		return "jwks holds no key"
	}
	usable := false
	var why []string
	for i, k := range set.Keys {
		p := assertionKeyProblem(k)
		name := fmt.Sprintf("key %d", i+1)
		if k.KeyID != "" {
			name += fmt.Sprintf(" (kid %s)", strconv.Quote(Truncate(k.KeyID, QuoteLimit)))
		}
		if !k.IsPublic() {
			return "jwks " + name + " " + p + ": remove it and publish the public key"
		}
		if p == "" {
			usable = true
			continue
		}
		why = append(why, name+" "+p)
	}
	if usable {
		return ""
	}
	return fmt.Sprintf(`jwks holds no key usable for %s client assertions (the only algorithm accepted; an RSA public key of %d to %d bits with the exponent %d, "use": "sig" or none and "alg" %s or none): %s`,
		AssertionSigningAlg, minAssertionKeyBits, maxAssertionKeyBits, assertionKeyExponent, AssertionSigningAlg, strings.Join(why, "; "))
}

// AssertionKeys returns the keys of set, a private_key_jwt client's
// jwks_uri set as fosite's fetcher decodes it, that may verify a client
// assertion, each without "use" given "sig" (RFC 7517 §4.2 makes "use"
// optional, but fosite verifies only with a "sig" key; the set's
// "key_ops" are not known here, go-jose drops them) — and every other
// rule of AssertionKeysProblem: RSA, 2048 to 4096 bits, exponent 65537,
// "alg" RS256 or none, public — so that fosite, which checks only "use" and the key
// type, verifies with no other. A set without such a key gives an empty
// set (fosite answers invalid_client). set, which may be the fetcher's
// cached one, is not changed: its keys are copied.
func AssertionKeys(set *josev3.JSONWebKeySet) *josev3.JSONWebKeySet {
	if set == nil {
		return nil
	}
	out := &josev3.JSONWebKeySet{Keys: make([]josev3.JSONWebKey, 0, len(set.Keys))}
	for _, k := range set.Keys {
		if k.Use == "" {
			k.Use = "sig"
		}
		if assertionKeyProblem(k) == "" {
			out.Keys = append(out.Keys, k)
		}
	}
	return out
}
