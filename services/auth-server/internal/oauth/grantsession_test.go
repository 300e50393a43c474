package oauth

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestUnmarshalGrantAsEncodingJSON: UnmarshalGrant decodes a grant's
// session with jsonv1 (encoding/json's rules on the json/v2 decoder); it
// must read every record as encoding/json did — what MarshalGrant writes
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
	for _, in := range []string{`{"sub":1}`, `{"p":"x"}`, `[`, `{"c":{"aud":"x"}}`, ``} {
		var want grantSession
		if errStd, errNew := json.Unmarshal([]byte(in), &want), NewSession().UnmarshalGrant([]byte(in)); (errStd == nil) != (errNew == nil) {
			t.Errorf("%q: encoding/json error %v, UnmarshalGrant error %v", in, errStd, errNew)
		}
	}
}

// TestScanGrantAsEncodingJSON: scanGrant reads the sessions MarshalGrant
// writes for a login (the profile once, the ID token claims, a kid) by
// itself, and whatever it accepts it decodes as encoding/json does; what
// it refuses (escapes, non-ASCII, numbers or nulls, duplicate, unknown or
// differently cased names, whitespace, trailing bytes) UnmarshalGrant
// hands to jsonv1, which TestUnmarshalGrantAsEncodingJSON covers.
func TestScanGrantAsEncodingJSON(t *testing.T) {
	login := fullSession()
	login.Claims.Extra = map[string]any{"name": "Dev User", "email": "dev@example.com", "email_verified": true, "org": "o1", "admin": false}
	login.Headers.Extra["typ"] = "JWT"
	written, err := login.MarshalGrant()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewSession().MarshalGrant()
	if err != nil {
		t.Fatal(err)
	}
	accepted := []string{
		string(written), string(empty), `{}`,
		`{"sub":"u","usr":"dev","p":{"name":"Dev","email":"d@e","email_verified":true},"c":{"iss":"https://a","aud":["c1"],"nonce":"n","rat":1790000000,"auth_time":1790000000,"fp":["name","email","email_verified"]},"kid":"k1"}`,
		`{"p":{"given_name":"G","family_name":"F","preferred_username":"p","email_verified":false},"c":{"sub":"other","acr":"1","amr":[],"aud":[],"ext":{},"fp":[],"rat":0},"h":{}}`,
		`{"c":{"ext":{"a":"","b":true,"c":false}},"h":{"x":"y","t":true}}`,
	}
	refused := []string{
		`null`, ``, `{`, `{"sub":"a"`, `{"sub":"a"} `, `{"sub":"a"}x`, `{ "sub":"a"}`,
		`{"sub":"a\"b"}`, `{"sub":"\u00e9"}`, "{\"sub\":\"\xc3\xa9\"}", "{\"sub\":\"a\tb\"}",
		`{"sub":"a","sub":"b"}`, `{"SUB":"a"}`, `{"x":1}`, `{"sub":null}`, `{"p":null}`, `{"c":null}`,
		`{"p":{"name":"a","name":"b"}}`, `{"c":{"rat":-1}}`, `{"c":{"rat":01}}`, `{"c":{"rat":1.5}}`,
		`{"c":{"rat":1234567890123456789}}`, `{"c":{"ext":{"n":1}}}`, `{"c":{"ext":{"n":null}}}`,
		`{"c":{"ext":{"a":"x","a":"y"}}}`, `{"c":{"aud":["a",]}}`, `{"c":{"aud":"a"}}`, `{"p":{"email_verified":tru}}`,
		`{"sub":1}`, `{"p":"x"}`, `[]`, `{,}`,
	}
	for _, in := range accepted {
		var got grantSession
		if !scanGrant([]byte(in), &got) {
			t.Errorf("%s: refused, want it read without jsonv1", in)
			continue
		}
		var want grantSession
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("%s: encoding/json: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n scanGrant     %#v\n encoding/json %#v", in, got, want)
		}
	}
	for _, in := range refused {
		var got grantSession
		if scanGrant([]byte(in), &got) {
			t.Errorf("%q: accepted (%#v), want it left to jsonv1", in, got)
		}
	}
}
