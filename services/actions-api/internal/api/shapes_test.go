package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestShapesThroughREST: a backend in CAPABILITY_BACKENDS whose messages
// hold every protobuf shape (registrytest.Shapes: well-known types,
// 64-bit integers, NaN, bytes, enums, oneof, maps, recursive messages)
// is served with the proto3 JSON mapping: a POST body, a GET's int64 path
// parameter and query parameters, a DELETE's Timestamp path parameter.
// Each 200 body validates, with a JSON Schema 2020-12 validator, against
// its response schema in the served document (a recursive message's
// component included), each accepted body against the request body's
// schema, and each refusal is a 400 naming the field or parameter.
func TestShapesThroughREST(t *testing.T) {
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	f := start(t, map[string]string{"CAPABILITY_BACKENDS": "capability-core=$CORE_GRPC_ADDR,shapes=" + shapes.Addr})
	eventually(t, "the shapes operations in the document", func() bool {
		f.loadDocument(t)
		return f.doc.Paths.Find("/actions/shapes") != nil
	})
	res, err := http.Get(f.base + api.PathOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// The served document, as one resource: its components resolve.
	c := jsonschema.NewCompiler()
	d, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("https://actions.test/openapi.json", d); err != nil {
		t.Fatal(err)
	}
	schemaOf := func(s map[string]any) *jsonschema.Schema {
		t.Helper()
		ref, _ := s["$ref"].(string)
		if !strings.HasPrefix(ref, "#/components/schemas/") {
			t.Fatalf("schema %v is not a component", s)
		}
		sch, err := c.Compile("https://actions.test/openapi.json" + ref)
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	echo := doc.Paths["/actions/shapes"]["post"]
	bodySchema := schemaOf(echo.RequestBody.Content["application/json"].Schema)
	echoOut := schemaOf(echo.Responses["200"].Content["application/json"].Schema)
	if ref := echo.RequestBody.Content["application/json"].Schema["$ref"]; ref == echo.Responses["200"].Content["application/json"].Schema["$ref"] {
		t.Errorf("the request body and the response of Echo(Shapes) returns (Shapes) share the schema %v", ref)
	}
	lookupOut := schemaOf(doc.Paths["/actions/shapes/{id}"]["get"].Responses["200"].Content["application/json"].Schema)
	atOut := schemaOf(doc.Paths["/actions/shapes/at/{at}"]["delete"].Responses["200"].Content["application/json"].Schema)
	valid := func(s *jsonschema.Schema, js string) error {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(js))
		if err != nil {
			return err
		}
		return s.Validate(v)
	}

	tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: "openid"})
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	for _, tc := range []struct{ body, want string }{
		{`{"str_w":"x","i64_w":5,"bool_w":false,"bytes_w":"-_8","double_w":"NaN"}`, `"str_w":"x","i64_w":"5","u64_w":null,"i32_w":null,"u32_w":null,"bool_w":false,"bytes_w":"+/8=","double_w":"NaN"`},
		{`{"ts":"2024-01-02T03:04:05.5+01:00","dur":"-1.5s","mask":"fooBar,a.bC","empty":{}}`, `"ts":"2024-01-02T02:04:05.500Z","dur":"-1.500s","mask":"fooBar,a.bC"`},
		{`{"st":{"a":[1,{"b":null}]},"val":[true],"list":[null],"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}}`, `"st":{"a":[1,{"b":null}]},"val":[true],"list":[null],"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}`},
		{`{"any":{"@type":"type.googleapis.com/shapes.Node","label":"own"}}`, `"any":{"@type":"type.googleapis.com/shapes.Node","label":"own","child":null,"children":[]}`},
		{`{"i64":-9223372036854775808,"u64":"18446744073709551615","ids":[1,"2"],"dbl":"-Infinity","flt":1.5,"raw":"AAE"}`, `"i64":"-9223372036854775808","u64":"18446744073709551615"`},
		{`{"color":"GREEN","by_node":{"child":{"children":[{"label":"deep"}]}},"maybe":0}`, `"by_node":{"label":"","child":{"label":"","child":null,"children":[{"label":"deep","child":null,"children":[]}]},"children":[]}`},
		{`{"by_int":{"-1":"a"},"by_bool":{"true":"t"},"nodes_by_id":{"7":{}},"stamps":{"k":"2024-01-02T03:04:05Z"},"renamed":"r","old":"o"}`, `"by_int":{"-1":"a"},"by_bool":{"true":"t"}`},
	} {
		code, body := call(http.MethodPost, "/actions/shapes", tc.body)
		if code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s: %d %s, want %s", tc.body, code, body, tc.want)
			continue
		}
		if err := valid(bodySchema, tc.body); err != nil {
			t.Errorf("accepted body %s does not match the document's request schema: %v", tc.body, err)
		}
		if err := valid(echoOut, body); err != nil {
			t.Errorf("POST %s: response %s does not match the document: %v", tc.body, body, err)
		}
	}
	// Refusals: a 400 naming the field, and the document's schema
	// refuses the body too.
	for _, tc := range []struct{ body, want string }{
		{`{"str_w":{"value":"x"}}`, `field str_w: `},
		{`{"ts":"2024-01-02 03:04:05Z"}`, `field ts: want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got \"2024-01-02 03:04:05Z\" (at line 1, column 7 of the body)`},
		// Named once, as the document does ("i64"), never also by the
		// JSON name protojson's text gave ("int64 field i64").
		{`{"i64":"x"}`, `"invalid arguments: field i64: want an integer, got \"x\" (at line 1, column 8 of the body)"`},
		{`{"dur":"1m"}`, `field dur: `},
		// A Timestamp, Duration or FieldMask refused says the form it
		// wants, never protojson's "syntax error: unexpected token 90"
		// or "google.protobuf.FieldMask.paths contains invalid path".
		{`{"ts":"2024-01-02"}`, `field ts: want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got \"2024-01-02\": a date alone is not one; give a time and an offset too, such as \"2024-01-02T00:00:00Z\" (at line 1, column 7 of the body)`},
		{`{"ts":1704164645}`, `field ts: want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got 1704164645 (at line 1, column 7 of the body)`},
		{`{"dur":90}`, `field dur: want a duration in seconds with the suffix s, such as \"1.5s\", got 90 (at line 1, column 8 of the body)`},
		{`{"mask":"foo_bar"}`, `field mask: want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got the path \"foo_bar\" (in lowerCamelCase: \"fooBar\") (at line 1, column 9 of the body)`},
		{`{"mask":"a,,b"}`, `field mask: want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got an empty path (at line 1, column 9 of the body)`},
		{`{"mask":["a"]}`, `field mask: want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got an array (at line 1, column 9 of the body)`},
		// The schema's pattern refuses white space around the paths,
		// which protojson would trim: so does the API.
		{`{"name":"x","mask":" a,b "}`, `field mask: want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got the path \" a\" (at line 1, column 20 of the body)`},
		{`{"mask":"\ta"}`, `field mask: want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got the path \"\\ta\" (at line 1, column 9 of the body)`},
		{`{"i64":"05"}`, `field i64: `},
		// A string is decimal digits, as the pattern says: protojson
		// alone took "1e3" for 1000.
		{`{"i64":"1e3"}`, `field i64: want an integer as a JSON number, or as a string of decimal digits such as \"-5\", got \"1e3\" (at line 1, column 8 of the body)`},
		{`{"flt":1e39}`, `field flt: `},
		{`{"raw":"-_+/"}`, `field raw: `},
		{`{"color":"red"}`, `field color: `},
		{`{"by_name":"a","by_id":"1"}`, `field by_id: `},
		{`{"by_bool":{"1":"x"}}`, `field by_bool[\"1\"]: `},
		{`{"root":{"child":{"child":{"nope":1}}}}`, `unknown field root.child.child.nope (at line 1, column 28 of the body)`},
		{`{"nodes":[null]}`, `field nodes[0]: `},
		// Out of the well-known types' ranges (brk50a): the schema's
		// pattern allowed 12 digits of seconds (to 999 999 999 999 s)
		// and the year 0000, which the API refuses.
		{`{"dur":"315576000001s"}`, `field dur: want a duration from -315576000000s to 315576000000s`},
		{`{"dur":"-999999999999s"}`, `field dur: want a duration from -315576000000s to 315576000000s`},
		{`{"ts":"0000-01-01T00:00:00Z"}`, `field ts: want an RFC 3339 date-time from 0001-01-01T00:00:00Z`},
		// brk50b: protojson (Go's time parser) took a one-digit hour and
		// offsets to 24:60, which the pattern refuses: so does the API.
		{`{"ts":"2024-01-02T3:04:05Z"}`, `field ts: want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got \"2024-01-02T3:04:05Z\" (at line 1, column 7 of the body)`},
		{`{"times":["2024-01-02T03:04:05Z","2024-01-02T03:04:05+24:00"]}`, `field times[1]: want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got \"2024-01-02T03:04:05+24:00\"`},
	} {
		code, body := call(http.MethodPost, "/actions/shapes", tc.body)
		if code != 400 || !strings.Contains(body, `"error":"invalid_request"`) || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s: %d %s, want 400 saying %q", tc.body, code, body, tc.want)
		}
		if valid(bodySchema, tc.body) == nil {
			t.Errorf("the document's request schema accepts %s, which the API refuses", tc.body)
		}
	}

	// Path and query parameters: an int64 in the path, a Timestamp in
	// the path (its "+" percent-encoded), well-known types in the query.
	for _, tc := range []struct {
		method, path string
		out          *jsonschema.Schema
		code         int
		want         string
	}{
		{http.MethodGet, "/actions/shapes/-9223372036854775808?big=18446744073709551615&color=RED&ratio=NaN&token=-_8&on=true", lookupOut, 200,
			`{"id":"-9223372036854775808","big":"18446744073709551615","color":"RED","ratio":"NaN","small":0,"count":0,"token":"+/8=","on":true}`},
		{http.MethodGet, "/actions/shapes/9223372036854775808", nil, 400, `"path parameter \"id\": want an integer from -9223372036854775808 to 9223372036854775807, got \"9223372036854775808\""`},
		{http.MethodGet, "/actions/shapes/1?count=3000000000", nil, 400, `"query parameter \"count\": want an integer from -2147483648 to 2147483647, got \"3000000000\""`},
		{http.MethodGet, "/actions/shapes/1?count=abc", nil, 400, `"query parameter \"count\": want an integer in decimal digits, such as \"1000\" or \"-5\", got \"abc\""`},
		{http.MethodGet, "/actions/shapes/1?on=yes", nil, 400, `"query parameter \"on\": want true or false, got \"yes\""`},
		{http.MethodGet, "/actions/shapes/1?color=BLUE", nil, 400, `"query parameter \"color\": want one of \"COLOR_UNSPECIFIED\", \"RED\", \"GREEN\", got \"BLUE\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05.25%2B01:00?within=90s&fields=a,b.c&limit=-5&strict=false&note=hi&weight=Infinity&blob=AAE", atOut, 200,
			`{"at":"2024-01-02T02:04:05.250Z","within":"90s","fields":"a,b.c","note":"hi","limit":"-5","strict":false,"weight":"Infinity","blob":"AAE="}`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z", atOut, 200,
			`{"at":"2024-01-02T03:04:05Z","within":null,"fields":null,"note":null,"limit":null,"strict":null,"weight":null,"blob":null}`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02", nil, 400, `"path parameter \"at\": want an RFC 3339 date-time such as \"2024-01-02T03:04:05Z\", got \"2024-01-02\": a date alone is not one; give a time and an offset too, such as \"2024-01-02T00:00:00Z\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z?fields=a_b", nil, 400, `"query parameter \"fields\": want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got \"a_b\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z?fields=%20a", nil, 400, `"query parameter \"fields\": want comma-separated field paths in lowerCamelCase, such as \"a.bC,d\", got \" a\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z?within=5", nil, 400, `"query parameter \"within\": want a duration in seconds with the suffix s, such as \"1.5s\", got \"5\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z?within=315576000001s", nil, 400, `"query parameter \"within\": want a duration from -315576000000s to 315576000000s, got \"315576000001s\""`},
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T03:04:05Z?limit=1.5", nil, 400, `"query parameter \"limit\": want an integer in decimal digits, such as \"1000\" or \"-5\", got \"1.5\""`},
		// The proto3 JSON mapping's other forms of an integral number
		// are not the document's pattern: "1e3" was note 1000.
		{http.MethodGet, "/actions/shapes/1e3", nil, 400, `"path parameter \"id\": want an integer in decimal digits, such as \"1000\" or \"-5\", got \"1e3\""`},
		// brk50b: Go's time parser takes a one-digit hour; the document's
		// Timestamp pattern ([01][0-9]|2[0-3]) does not.
		{http.MethodDelete, "/actions/shapes/at/2024-01-02T3:04:05Z", nil, 400, `"path parameter \"at\": want an RFC 3339 date-time`},
		{http.MethodGet, "/actions/shapes/1?big=-1", nil, 400, `"query parameter \"big\": want a non-negative integer in decimal digits, such as \"1000\", got \"-1\""`},
	} {
		code, body := call(tc.method, tc.path, "")
		if code != tc.code || (tc.code == 200 && body != tc.want) || (tc.code != 200 && !strings.Contains(body, tc.want)) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, code, body, tc.code, tc.want)
			continue
		}
		if tc.out != nil {
			if err := valid(tc.out, body); err != nil {
				t.Errorf("%s %s: response %s does not match the document: %v", tc.method, tc.path, body, err)
			}
		}
	}
}
