package openapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// schemaObjects returns every Schema Object of an OpenAPI 3.1 document
// by its JSON pointer: components/schemas, and each "schema" of a
// parameter, header or media type under paths and components.
func schemaObjects(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var tree map[string]any
	if err := json.Unmarshal(doc, &tree); err != nil {
		t.Fatal(err)
	}
	found := map[string]any{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := path + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
				if k == "schema" {
					found[p] = c
					continue
				}
				walk(c, p)
			}
		case []any:
			for i, c := range x {
				walk(c, path+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(tree["paths"], "#/paths")
	comps, _ := tree["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	for name, s := range schemas {
		found["#/components/schemas/"+name] = s
	}
	return found
}

// dialectProblems validates each Schema Object of doc against the JSON
// Schema 2020-12 meta-schema (OpenAPI 3.1's default dialect, §4.8.24, is
// 2020-12 with the OAS vocabulary, which adds only annotations) with
// santhosh-tekuri/jsonschema, a validator independent of kin-openapi, and
// compiles it in place (its $refs resolve, its patterns compile).
func dialectProblems(t *testing.T, doc []byte) (n int, problems []string) {
	t.Helper()
	c := jsonschema.NewCompiler()
	meta, err := c.Compile("https://json-schema.org/draft/2020-12/schema")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://actions.test/openapi.json"
	if err := c.AddResource(base, whole); err != nil {
		t.Fatal(err)
	}
	for ptr, s := range schemaObjects(t, doc) {
		n++
		b, _ := json.Marshal(s)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := meta.Validate(v); err != nil {
			problems = append(problems, ptr+": "+err.Error())
			continue
		}
		if _, err := c.Compile(base + ptr); err != nil {
			problems = append(problems, ptr+": "+err.Error())
		}
	}
	return n, problems
}

// TestSchemaObjectsAreJSONSchema202012: the document declares OpenAPI
// 3.1.0, whose Schema Objects are JSON Schema 2020-12 — the keywords the
// registry writes (type arrays, $ref with siblings, anyOf, not,
// propertyNames, contentEncoding, const-free enums) are valid there, and
// none of OpenAPI 3.0's (nullable, boolean exclusiveMinimum) appears.
// kin-openapi (load) checks the document's structure; this checks every
// Schema Object against the 2020-12 meta-schema, for the document the
// binary exports (testdata/openapi.golden.json) and for one with a
// backend of every protobuf shape (registrytest.Shapes). A Schema Object
// that is not 2020-12 is found.
func TestSchemaObjectsAreJSONSchema202012(t *testing.T) {
	exported, err := os.ReadFile(filepath.Join("testdata", "openapi.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(registrytest.Shapes("shapes").File(), protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	shapes, _ := build(t, capabilities(t, fd.Services().Get(0)), golden)
	for name, doc := range map[string][]byte{"golden": exported, "shapes": shapes} {
		n, problems := dialectProblems(t, doc)
		if n < 10 {
			t.Errorf("%s: found %d Schema Objects; the walk missed the document", name, n)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", name, p)
		}
		for _, old := range []string{`"nullable"`, `"exclusiveMinimum": true`, `"exclusiveMaximum": true`, `"exclusiveMinimum":true`, `"exclusiveMaximum":true`} {
			if bytes.Contains(doc, []byte(old)) {
				t.Errorf("%s: the document holds %s", name, old)
			}
		}
	}

	// The refusal: Schema Objects that are not 2020-12.
	bad := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"parameters":[{"name":"a","in":"query","schema":{"type":"integr"}}],"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"type":"object","required":"a"}}}}}}}},"components":{"schemas":{"M":{"propertyNames":5},"R":{"$ref":"#/components/schemas/Nope"}}}}`
	n, problems := dialectProblems(t, []byte(bad))
	if n != 4 || len(problems) != 4 {
		t.Errorf("%d Schema Objects, %d problems found in the bad document, want 4 and 4: %q", n, len(problems), problems)
	}
}
