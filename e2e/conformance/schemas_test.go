package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shapeCall is one tool call of TestTypeScriptSDKShapes: the arguments,
// the members its structuredContent must hold (each as the JSON the
// proto3 JSON mapping writes), and results changed by hand that the SDK's
// validator must judge as the outputSchema says.
type shapeCall struct {
	Tool      string         `json:"tool"`
	Arguments map[string]any `json:"arguments"`
	Doctored  []doctored     `json:"-"`
	want      map[string]string
	// refused: the call is a tool error holding this text.
	refused string
}

// doctored is a result with Over put over its members; Valid is what the
// outputSchema says of it.
type doctored struct {
	Over  map[string]any
	Valid bool
}

// node is registrytest.Shapes' recursive Node as MarshalOutput writes it.
const shapesNode = `{"label":"a","child":{"label":"b","child":null,"children":[]},"children":[{"label":"c","child":null,"children":[]}]}`

// TestTypeScriptSDKShapes: the official MCP TypeScript SDK (pinned in
// package-lock.json) takes the tools of a backend whose messages hold
// every protobuf shape (registrytest.Shapes, served beside
// capability-core in this package's fleet): listTools compiles each
// outputSchema with the SDK's validator (Ajv, draft-07 class, strict
// off), and callTool validates each result's structuredContent against
// it — oneof, recursive messages, wrappers, Any, Struct, Value, maps with
// integer and bool keys, enums, 64-bit integers, NaN, Timestamps — and
// the values come back as the proto3 JSON mapping writes them. A result
// changed by hand is judged as the schema says: two members of a oneof
// are refused (the schema says so with "not"/"required", which draft-07
// reads, not with dependentSchemas, which it skips), as are a 64-bit
// integer written as a number and a recursive member of the wrong type.
// The validator meets no format it does not know. Two members of a oneof as arguments are a tool error.
func TestTypeScriptSDKShapes(t *testing.T) {
	calls := []shapeCall{
		{
			Tool: "shapes.echo",
			Arguments: map[string]any{
				"by_node": json.RawMessage(shapesNode), "root": json.RawMessage(shapesNode),
				"str_w": "s", "i64_w": "-9223372036854775808", "u64_w": "18446744073709551615", "bool_w": false,
				"double_w": "NaN", "float_w": "-Infinity", "bytes_w": "AQID",
				"any":  map[string]any{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"},
				"st":   map[string]any{"k": []any{1, "two", nil, map[string]any{"x": true}}},
				"val":  nil,
				"list": []any{1, "a"},
				"i64":  "9007199254740993", "u64": "18446744073709551615", "s64": "-1",
				"color": "GREEN", "colors": map[string]any{"a": "RED"},
				"by_int": map[string]any{"-2147483648": "min"}, "by_bool": map[string]any{"true": "yes"},
				"nodes_by_id": map[string]any{"18446744073709551615": json.RawMessage(shapesNode)},
				"stamps":      map[string]any{"k": "2024-01-02T03:04:05.5+01:00"},
				"ts":          "2024-02-29T23:59:59.123456789Z", "dur": "-0.25s", "mask": "fooBar,a.bC",
				"empty": map[string]any{}, "nothing": nil, "maybe": 0,
			},
			want: map[string]string{
				"by_node": shapesNode, "root": shapesNode,
				"str_w": `"s"`, "i64_w": `"-9223372036854775808"`, "u64_w": `"18446744073709551615"`, "bool_w": `false`,
				"double_w": `"NaN"`, "float_w": `"-Infinity"`, "bytes_w": `"AQID"`,
				"any":  `{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}`,
				"st":   `{"k":[1,"two",null,{"x":true}]}`,
				"list": `[1,"a"]`,
				"i64":  `"9007199254740993"`, "u64": `"18446744073709551615"`, "s64": `"-1"`,
				"color": `"GREEN"`, "colors": `{"a":"RED"}`,
				"by_int": `{"-2147483648":"min"}`, "by_bool": `{"true":"yes"}`,
				"nodes_by_id": `{"18446744073709551615":` + shapesNode + `}`,
				"stamps":      `{"k":"2024-01-02T02:04:05.500Z"}`,
				"ts":          `"2024-02-29T23:59:59.123456789Z"`, "dur": `"-0.250s"`, "mask": `"fooBar,a.bC"`,
				"empty": `{}`, "nothing": `null`, "maybe": `0`,
				// unset: a message field is null, a oneof's other members absent
				"names": `[]`, "times": `[]`,
			},
			Doctored: []doctored{
				{Over: map[string]any{"by_name": "x"}, Valid: false},                      // two members of the oneof
				{Over: map[string]any{"by_id": "1", "by_node": nil}, Valid: false},        // present, even null
				{Over: map[string]any{"i64": 5}, Valid: false},                            // written as a string
				{Over: map[string]any{"root": map[string]any{"label": 5}}, Valid: false},  // recursive member's type
				{Over: map[string]any{"color": 7}, Valid: true},                           // an enum value the schema's version lacks
				{Over: map[string]any{"str_w": nil, "ts": nil, "root": nil}, Valid: true}, // unset
				{Over: map[string]any{"by_int": map[string]any{"x": "y"}}, Valid: false},  // integer keys
			},
		},
		{
			Tool:      "shapes.echo",
			Arguments: map[string]any{"by_id": 42, "dbl": 1.5, "flt": "Infinity", "u32": 4294967295, "i32": -2147483648, "raw": "-_8", "flag": true},
			want:      map[string]string{"by_id": `"42"`, "dbl": `1.5`, "flt": `"Infinity"`, "u32": `4294967295`, "i32": `-2147483648`, "raw": `"+/8="`, "flag": `true`, "root": `null`},
		},
		{
			Tool:      "shapes.lookup",
			Arguments: map[string]any{"id": "9223372036854775807", "big": "0", "color": "RED", "ratio": "Infinity", "small": 0.25, "count": 3, "token": "AQID", "on": true},
			want:      map[string]string{"id": `"9223372036854775807"`, "big": `"0"`, "color": `"RED"`, "ratio": `"Infinity"`, "small": `0.25`, "count": `3`, "token": `"AQID"`, "on": `true`},
		},
		{
			Tool:      "shapes.at",
			Arguments: map[string]any{"at": "2024-01-02T03:04:05.5+01:00", "within": "1.5s", "fields": "fooBar", "note": "n", "limit": "-3", "strict": false, "weight": 0.5, "blob": "AQ=="},
			want:      map[string]string{"at": `"2024-01-02T02:04:05.500Z"`, "within": `"1.500s"`, "fields": `"fooBar"`, "note": `"n"`, "limit": `"-3"`, "strict": `false`, "weight": `0.5`, "blob": `"AQ=="`},
		},
		{
			Tool:      "shapes.echo",
			Arguments: map[string]any{"by_name": "n", "by_id": "1"},
			refused:   "oneof",
		},
	}
	type wire struct {
		Tool      string           `json:"tool"`
		Arguments map[string]any   `json:"arguments"`
		Doctored  []map[string]any `json:"doctored,omitempty"`
	}
	var w []wire
	for _, c := range calls {
		x := wire{Tool: c.Tool, Arguments: c.Arguments}
		for _, d := range c.Doctored {
			x.Doctored = append(x.Doctored, d.Over)
		}
		w = append(w, x)
	}
	dir := t.TempDir()
	callsFile := filepath.Join(dir, "calls.json")
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(callsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "sdkclient.mjs")
	src, err := os.ReadFile("sdkclient.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(suiteDir, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	f, port := callbackListener(t)
	args := []string{script, fleet.Origin + "/mcp", strconv.Itoa(port), "--callback-fd", "3", "--client-id", publicID, "--calls", callsFile}
	output, signInErr, exitErr := runNode(t, args, func(line string) (string, bool) {
		return strings.CutPrefix(line, "AUTHORIZE ")
	}, callbackURL(port), f)
	f.Close()
	if signInErr != nil || exitErr != nil {
		t.Fatalf("sdkclient: sign-in %v, exit %v:\n%s", signInErr, exitErr, output)
	}
	// Ajv (ajv-formats) logs each format it does not know while listTools
	// compiles the outputSchemas, and refuses it in strict mode: the
	// schemas use none (the OpenAPI Format Registry's uint32 and uint64
	// are the OpenAPI document's only).
	if i := strings.Index(output, "unknown format"); i >= 0 {
		t.Errorf("the SDK's validator does not know a format of the schemas: %s", strings.SplitN(output[i:], "\n", 2)[0])
	}

	// The lines for each call, in order.
	var lines []string
	for _, l := range strings.Split(output, "\n") {
		if strings.HasPrefix(l, "RESULT ") || strings.HasPrefix(l, "TOOLERROR ") || strings.HasPrefix(l, "DOCTORED ") {
			lines = append(lines, l)
		}
	}
	for i, c := range calls {
		if len(lines) == 0 {
			t.Fatalf("call %d (%s): no result:\n%s", i, c.Tool, output)
		}
		line := lines[0]
		lines = lines[1:]
		if c.refused != "" {
			if !strings.HasPrefix(line, "TOOLERROR "+c.Tool+" ") || !strings.Contains(line, c.refused) {
				t.Errorf("call %d (%s): want a tool error with %q, got %s", i, c.Tool, c.refused, line)
			}
			continue
		}
		content, ok := strings.CutPrefix(line, "RESULT "+c.Tool+" ")
		if !ok {
			t.Errorf("call %d (%s): %s", i, c.Tool, line)
			continue
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(content), &got); err != nil {
			t.Fatalf("call %d (%s): %v: %s", i, c.Tool, err, content)
		}
		for k, want := range c.want {
			if !jsonEqual(t, got[k], want) {
				t.Errorf("call %d (%s): %s = %s, want %s", i, c.Tool, k, got[k], want)
			}
		}
		for j, d := range c.Doctored {
			if len(lines) == 0 {
				t.Fatalf("call %d (%s): no judgement of doctored result %d", i, c.Tool, j)
			}
			line, lines = lines[0], lines[1:]
			verdict, ok := strings.CutPrefix(line, "DOCTORED "+c.Tool+" "+strconv.Itoa(j)+" ")
			if !ok {
				t.Fatalf("call %d (%s): want doctored result %d, got %s", i, c.Tool, j, line)
			}
			if valid := verdict == "valid"; valid != d.Valid {
				t.Errorf("call %d (%s): the SDK's validator says %s of the result with %v, want valid=%v", i, c.Tool, verdict, d.Over, d.Valid)
			}
		}
	}
}

// jsonEqual reports whether got and want are the same JSON value.
func jsonEqual(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	if got == nil {
		return false
	}
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
