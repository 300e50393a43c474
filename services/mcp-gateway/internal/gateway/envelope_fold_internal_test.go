package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// envelopeName takes a member for a JSON-RPC member exactly when
// encoding/json, which the gateway's and mcp-go's message structs are
// decoded with, does: every name of envelopeNames with each letter
// replaced by its other case, by the two non-ASCII runes that fold to an
// ASCII letter (U+017F LONG S, U+212A KELVIN SIGN) and by look-alikes that
// fold to none (U+0130, U+0131, U+FFFD, a byte that is not UTF-8), and
// with a character more or less. A struct with the six members is the
// reference: the field a one-member object sets is the member it is.
func TestEnvelopeNameFoldsAsEncodingJSON(t *testing.T) {
	type fields struct {
		JSONRPC *json.RawMessage `json:"jsonrpc"`
		ID      *json.RawMessage `json:"id"`
		Method  *json.RawMessage `json:"method"`
		Params  *json.RawMessage `json:"params"`
		Result  *json.RawMessage `json:"result"`
		Error   *json.RawMessage `json:"error"`
	}
	decoded := func(key string) int {
		var f fields
		if err := json.Unmarshal([]byte(`{"`+key+`":1}`), &f); err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		for n, p := range []*json.RawMessage{f.JSONRPC, f.ID, f.Method, f.Params, f.Result, f.Error} {
			if p != nil {
				return n
			}
		}
		return -1
	}
	var keys []string
	for _, name := range envelopeNames {
		keys = append(keys, name, strings.ToUpper(name), name+"s", name[1:], "x"+name)
		for i := range name {
			for _, r := range []string{strings.ToUpper(name[i : i+1]), "\u017f", "\u212a", "\u0130", "\u0131", "\ufffd", "\xff", "\u00cd"} {
				keys = append(keys, name[:i]+r+name[i+1:])
			}
		}
	}
	for _, key := range keys {
		want := decoded(key)
		n, exact := envelopeName([]byte(key))
		if n != want || exact != (want >= 0 && key == envelopeNames[want]) {
			t.Errorf("%q: envelopeName %d (exact %v), encoding/json sets member %d", key, n, exact, want)
		}
	}
}
