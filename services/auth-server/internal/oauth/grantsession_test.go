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
