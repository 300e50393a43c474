package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// integerForms are texts of integer parameters: the decimal form the
// document's pattern admits, the other forms of an integral number the
// proto3 JSON mapping takes ("1e3", "1.0": protojson acted on 1000 and 1),
// and text no integer is.
var integerForms = []string{
	"1000", "0", "-5", "-0", "9223372036854775807", "18446744073709551615",
	"1e3", "1E3", "1.0", "1000.0", "10e-1", "+1", "01", "-01", "00", " 1", "1 ", "0x10", "1_000", "１", "",
	"9223372036854775808", "-9223372036854775809", "18446744073709551616", "2147483648", "4294967296", "-1",
}

// TestIntegerParametersTakeTheDocumentsForm: an integer path or query
// parameter takes exactly the text its schema in the served document
// admits — its pattern (decimal digits, "-" where signed, no leading
// zero; compiled with Go's regexp) and its range — for every integer
// parameter of the document; any other text is a 400 invalid_request
// naming the parameter. Before, "1e3" and "1.0" (the proto3 JSON
// mapping's forms of 1000 and 1) were taken although the pattern refuses
// them: DELETE …/1e3 acted on 1000 while ChatGPT's confirmation showed
// "1e3".
func TestIntegerParametersTakeTheDocumentsForm(t *testing.T) {
	shapes := registrytest.Start(t, "shapes", []registrytest.Service{registrytest.Shapes("shapes")})
	f := start(t, map[string]string{
		"CAPABILITY_BACKENDS":   "capability-core=$CORE_GRPC_ADDR,shapes=" + shapes.Addr,
		"RATE_LIMIT_PER_MINUTE": "100000",
	})
	eventually(t, "the shapes operations in the document", func() bool {
		f.loadDocument(t)
		return f.doc.Paths.Find("/actions/shapes/{id}") != nil
	})
	res, err := http.Get(f.base + api.PathOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	type schema struct {
		Type    any         `json:"type"`
		Format  string      `json:"format"`
		Pattern string      `json:"pattern"`
		Minimum json.Number `json:"minimum"`
		Maximum json.Number `json:"maximum"`
	}
	type param struct {
		Name   string `json:"name"`
		In     string `json:"in"`
		Schema schema `json:"schema"`
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []param               `json:"parameters"`
			Security   []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	integer := func(s schema) bool {
		switch ty := s.Type.(type) {
		case string:
			return ty == "integer"
		case []any:
			return slices.Contains(ty, any("integer"))
		}
		return false
	}
	// sample is a value the document admits for a parameter other than
	// the one under test (a required path parameter).
	sample := func(p param) string {
		switch {
		case integer(p.Schema):
			return "1"
		case p.Schema.Format == "date-time":
			return "2024-01-02T03:04:05Z"
		}
		return "x"
	}
	inRange := func(s schema, v string) bool {
		n, ok := new(big.Int).SetString(v, 10)
		if !ok {
			return false
		}
		if lo, ok := new(big.Int).SetString(s.Minimum.String(), 10); ok && n.Cmp(lo) < 0 {
			return false
		}
		if hi, ok := new(big.Int).SetString(s.Maximum.String(), 10); ok && n.Cmp(hi) > 0 {
			return false
		}
		return true
	}

	tested := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			var scopes []string
			for _, req := range op.Security {
				for _, s := range req {
					scopes = append(scopes, s...)
				}
			}
			tok := f.iss.Mint(t, tokentest.Token{Subject: "u1", Audience: audience, Scope: strings.Join(append(scopes, "openid"), " ")})
			for _, p := range op.Parameters {
				if !integer(p.Schema) {
					continue
				}
				if p.Schema.Pattern == "" {
					t.Errorf("%s %s: integer %s parameter %q has no pattern", method, path, p.In, p.Name)
					continue
				}
				re, err := regexp.Compile(p.Schema.Pattern)
				if err != nil {
					t.Fatalf("%s %s: parameter %q: pattern %q: %v", method, path, p.Name, p.Schema.Pattern, err)
				}
				tested[p.Name] = true
				for _, v := range integerForms {
					target, query := path, url.Values{}
					for _, o := range op.Parameters {
						if o.In != "path" {
							continue
						}
						w := sample(o)
						if o.Name == p.Name {
							w = v
						}
						target = strings.Replace(target, "{"+o.Name+"}", url.PathEscape(w), 1)
					}
					if p.In == "query" {
						query.Set(p.Name, v)
					}
					if len(query) > 0 {
						target += "?" + query.Encode()
					}
					if p.In == "path" && v == "" {
						continue // another route (or none), not this parameter
					}
					r := f.do(t, strings.ToUpper(method), target, bearer(tok))
					named := r.status == 400 && r.err.Error == "invalid_request" &&
						strings.Contains(r.err.Description, p.In+` parameter "`+p.Name+`"`)
					admitted := re.MatchString(v) && inRange(p.Schema, v)
					switch {
					case admitted && (named || r.status == 400 || r.status == 401 || r.status == 403):
						t.Errorf("%s %s: the document admits %s %q, the API answers %d %s", method, target, p.Name, v, r.status, r.body)
					case !admitted && !named:
						t.Errorf("%s %s: the document refuses %s %q, the API answers %d %s, want 400 invalid_request naming %s parameter %q", method, target, p.Name, v, r.status, r.body, p.In, p.Name)
					}
				}
			}
		}
	}
	// The shapes backend's integer parameters are among those tested: an
	// int64 and a uint64 (strings in the proto3 JSON mapping), an int32
	// (a number) and an Int64Value wrapper.
	for _, name := range []string{"id", "big", "count", "limit"} {
		if !tested[name] {
			t.Errorf("no integer parameter %q in the served document", name)
		}
	}
}
