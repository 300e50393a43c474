package oauth

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/jsontest"
)

// TestUnmarshalGrantAsEncodingJSON: UnmarshalGrant decodes a grant's
// session with goccy/go-json; it must read every record as encoding/json
// did — what MarshalGrant writes
// now, what earlier builds wrote (live grants during a rolling upgrade),
// and inputs encoding/json tolerates (invalid UTF-8, lone surrogates,
// duplicate and unknown names, nulls, case-insensitive names).
func TestUnmarshalGrantAsEncodingJSON(t *testing.T) {
	full, err := fullSession().MarshalGrant()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewSession().MarshalGrant()
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{
		string(full), string(empty), `null`, `{}`,
		`{"sub":"u","usr":"dev","p":{"name":"Dev","email":"d@e","email_verified":true},"c":{"iss":"https://a","aud":["c1"],"nonce":"n","rat":1790000000,"auth_time":1790000000,"fp":["name","email","email_verified"]},"kid":"k1"}`,
		`{"sub":"u\ud800x","usr":"\xff\xfe","p":{"name":"\u00e9\u2028"},"c":{"ext":{"big":12345678901234567890,"neg":-1e-7,"nested":{"a":[null,true,"x"]}}},"h":{"typ":"JWT","n":1}}`,
		`{"sub":"first","sub":"second","unknown":{"x":[1,2]},"SUB":"case","P":{"NAME":"upper"}}`,
		`{"sub":null,"p":null,"c":null,"h":null}`,
		`{"c":{"aud":[],"amr":[],"ext":{},"fp":[]}}`,
		`{"SUB":"a","sub":"b","Sub":"c"}`, `{"p":{"Email_Verified":true},"c":{"AUTH_TIME":5}}`, `{"c":{"rat":1.0}}`, `{"c":{"rat":1e2}}`,
		`{"c":{"rat":-5,"auth_time":9223372036854775807}}`, `{"c":{"ext":{"a":1,"a":2}}}`, `{"c":{"ext":{"a":{"b":1}},"ext":{"c":2}}}`,
		`{"c":{"aud":["a"],"aud":["b","c"]}}`, `{"c":{"fp":["name","bogus"]},"p":{"name":"N"}}`, `{"kid":"k","h":{"kid":"other"}}`,
		`{"c":{"ext":{"n":12345678901234567890123,"m":-0.0,"o":0.1e-400}}}`, `{"c":{"ext":null,"fp":["email"]},"p":{"email":"e"}}`,
		`{"h":{}}`, `{"h":null,"kid":""}`, `{"c":{}}`, ` {"sub":"a"} `, "{\"c\":{\"ext\":{\"k\xff\":\"\xed\xa0\x80\"}}}", `{"c":{"ext":{"\ud800":1}}}`,
	}
	for _, in := range inputs {
		var want grantSession
		errStd := json.Unmarshal([]byte(in), &want)
		s := NewSession()
		errNew := s.UnmarshalGrant([]byte(in))
		if (errStd == nil) != (errNew == nil) {
			t.Errorf("%s: encoding/json error %v, UnmarshalGrant error %v", in, errStd, errNew)
			continue
		}
		if errStd != nil {
			continue
		}
		ref := NewSession()
		ref.fromGrant(want)
		if !reflect.DeepEqual(s, ref) {
			t.Errorf("%s:\n UnmarshalGrant %s\n encoding/json  %s", in, mustJSON(t, s), mustJSON(t, ref))
		}
	}
	for _, in := range []string{`{"sub":1}`, `{"p":"x"}`, `[`, `{"c":{"aud":"x"}}`, ``,
		`{"p":{"email_verified":"true"}}`, `{"p":{"email_verified":1}}`, `{"c":{"rat":1.5}}`, `{"c":{"auth_time":9223372036854775808}}`,
		`{"c":{"ext":{"n":1e400}}}`, `{"c":[]}`, `{"sub":"a"}x`, `{"sub":"a",}`, `{"sub":"a"}{}`, `{"sub":"\x"}`} {
		var want grantSession
		if errStd, errNew := json.Unmarshal([]byte(in), &want), NewSession().UnmarshalGrant([]byte(in)); (errStd == nil) != (errNew == nil) {
			t.Errorf("%q: encoding/json error %v, UnmarshalGrant error %v", in, errStd, errNew)
		}
	}
}

// TestUnmarshalGrantRoundTrip: every session MarshalGrant writes — over
// random sessions: every field set or left empty, strings with what JSON
// escapes (quotes, backslashes, control bytes, <>&, U+2028/2029, bytes
// that are not UTF-8), extra claims of every JSON kind, numbers of every
// size, claims equal to the profile's — MarshalGrant writes as encoding/json
// writes it, and UnmarshalGrant reads as
// encoding/json reads it.
func TestUnmarshalGrantRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 14))
	g := jsontest.Gen{Rand: rng, Pieces: append(slices.Clip(jsontest.Pieces), "sub", "email")}
	str := g.String
	list := g.List
	tm := func() time.Time {
		if rng.IntN(3) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9), 0).UTC()
	}
	value := g.Value
	profileClaims := []string{"name", "given_name", "family_name", "preferred_username", "email", "email_verified"}
	for i := range 3000 {
		s := NewSession()
		s.Subject, s.Username, s.UpstreamIssuer = str(), str(), str()
		p := &s.Profile
		p.Name, p.GivenName, p.FamilyName, p.PreferredUsername, p.Email = str(), str(), str(), str(), str()
		p.EmailVerified = rng.IntN(2) == 0
		if rng.IntN(5) == 0 {
			s.Claims = nil
		} else {
			c := s.Claims
			c.Issuer, c.Nonce, c.AuthenticationContextClassReference = str(), str(), str()
			c.Subject = s.Subject
			if rng.IntN(4) == 0 {
				c.Subject = str()
			}
			c.Audience, c.AuthenticationMethodsReferences = list(), list()
			c.RequestedAt, c.AuthTime = tm(), tm()
			if rng.IntN(4) > 0 {
				c.Extra = map[string]any{}
				for range rng.IntN(4) {
					c.Extra[str()] = value(0)
				}
				for _, k := range profileClaims {
					if rng.IntN(2) == 0 {
						if v, ok := profileClaim(s.Profile, k); ok && rng.IntN(4) > 0 {
							c.Extra[k] = v
						} else {
							c.Extra[k] = value(1)
						}
					}
				}
			}
		}
		if rng.IntN(2) == 0 {
			s.Headers.Extra["kid"] = str()
		}
		if rng.IntN(3) == 0 {
			s.Headers.Extra[str()] = value(1)
		}
		b, err := s.MarshalGrant()
		if err != nil {
			t.Fatal(err)
		}
		// One grant form for both encoders (it lists the profile's claims
		// in the map's order).
		form := s.grantForm()
		mine, err := marshalGrant(form)
		if std, errStd := json.Marshal(form); err != nil || errStd != nil || !bytes.Equal(mine, std) {
			t.Fatalf("session %d: MarshalGrant writes\n %s (%v)\nwhere encoding/json writes\n %s (%v)", i, mine, err, std, errStd)
		}
		var want grantSession
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("session %d, %s: %v", i, b, err)
		}
		ref := NewSession()
		ref.fromGrant(want)
		got := NewSession()
		if err := got.UnmarshalGrant(b); err != nil || !reflect.DeepEqual(got, ref) {
			t.Fatalf("session %d, %s:\n UnmarshalGrant %s (%v)\n encoding/json  %s", i, b, mustJSON(t, got), err, mustJSON(t, ref))
		}
	}
}
