package store

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// TestGrantTailAsEncodingJSON: decodeGrant reads a record's JSON with
// jsonv1 (encoding/json's rules on the json/v2 decoder); it must read
// every tail as encoding/json did, including what earlier builds wrote
// (live grants during a rolling upgrade) and inputs encoding/json
// tolerates.
func TestGrantTailAsEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"t":1790000000}`,
		`{"t":1790000000,"rs":["openid","profile"],"ra":["https://api.example/mcp"],"f":{"redirect_uri":["https://chatgpt.com/cb"],"scope":["openid profile"],"nonce":["n"]}}`,
		`{"t":1790000000,"f":{"a":[],"b":null,"c":["\ud800","\xff","\u2028"]},"rs":[],"ra":null}`,
		`{"t":1,"t":2,"T":3,"RS":["x"],"unknown":[{"s":1}]}`,
		`{"t":1,"s":{"sub":"u","p":{"name":"x"}, "c":{"ext":{"n":1.50}}}}`, `{"t":1,"s":null}`,
		`{"t":null,"f":null}`, `{}`, `null`,
	} {
		var want, got grantTail
		errStd, errNew := json.Unmarshal([]byte(in), &want), jsonv1.Unmarshal([]byte(in), &got)
		if (errStd == nil) != (errNew == nil) || !reflect.DeepEqual(want, got) {
			t.Errorf("%s:\n jsonv1        %+v (%v)\n encoding/json %+v (%v)", in, got, errNew, want, errStd)
		}
	}
	for _, in := range []string{`{"t":"1"}`, `{"f":{"a":"x"}}`, `{"t":1.5}`, `{`, ``} {
		var want, got grantTail
		if errStd, errNew := json.Unmarshal([]byte(in), &want), jsonv1.Unmarshal([]byte(in), &got); (errStd == nil) != (errNew == nil) {
			t.Errorf("%q: encoding/json error %v, jsonv1 error %v", in, errStd, errNew)
		}
	}
}
