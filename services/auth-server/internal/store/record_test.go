package store

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// TestGrantTailAsEncodingJSON: decodeTail reads a record's JSON with
// goccy/go-json; it must read every tail as encoding/json did, including
// what earlier builds wrote (live grants during a rolling upgrade) and
// inputs encoding/json tolerates (duplicate, unknown and differently
// cased names, nulls, invalid UTF-8, whitespace), and refuse what
// encoding/json refuses — a session that is not JSON too, which the
// record's read let through until session 41 (the session was split off
// unread, and refused only where it was decoded).
func TestGrantTailAsEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"t":1790000000}`,
		`{"t":1790000000,"rs":["openid","profile"],"ra":["https://api.example/mcp"],"f":{"redirect_uri":["https://chatgpt.com/cb"],"scope":["openid profile"],"nonce":["n"]}}`,
		`{"t":1790000000,"f":{"a":[],"b":null,"c":["\ud800","\xff","\u2028"]},"rs":[],"ra":null}`,
		"{\"t\":1,\"f\":{\"k\xff\":[\"\xed\xa0\x80\",\"\xc3\"]}}",
		`{"t":1,"t":2,"T":3,"RS":["x"],"unknown":[{"s":1}]}`,
		`{"t":1,"s":{"sub":"u","p":{"name":"x"}, "c":{"ext":{"n":1.50}}}}`, `{"t":1,"s":null}`,
		`{"t":null,"f":null}`, `{}`, `null`, ` {"t":1} `, `{"t":-0}`, `{"t":1790000000 }`,
		`{"a":"x","a":null}`, `{"a":"\/\u0000\t"}`, `{"f":{"a":["x"],"a":["y"]}}`, `{"rs":["a","c"],"rs":["b"]}`,
		`{"t":1,"s":{"x":1},"t":2}`, `{"t":1,"s":[1,2,3]}`, `{"t":1,"s":"str"}`, `{"t":1,"s":1e999}`,
		`{"t":1,"unknown":1e999,"deep":[[[[{"x":"\ud83d\ude00"}]]]]}`,
	} {
		var want grantTail
		errStd := json.Unmarshal([]byte(in), &want)
		got, errNew := decodeTail(in)
		if (errStd == nil) != (errNew == nil) || !reflect.DeepEqual(want, got) {
			t.Errorf("%s:\n decodeTail    %+v (%v)\n encoding/json %+v (%v)", in, got, errNew, want, errStd)
		}
	}
	for _, in := range []string{
		`{"t":"1"}`, `{"f":{"a":"x"}}`, `{"t":1.5}`, `{`, ``, `{"t":1e3}`, `{"t":01}`, `{"t":99999999999999999999}`,
		`{"t":true}`, `{"f":{"a":[1]}}`, `{"f":[]}`, `{"a":1}`, `[]`, `"x"`, `{"t":1}x`, `{"t":1}{"t":2}`,
		`{"t":1,,"s":1}`, `{"t":1,"s":1,}`, `{"t":1,"unknown":-}`,
		`{"t":1,"s":{"x":}}`, `{"t":1,"s":tru}`, `{"t":1,"s":{"a":"\x01"}}`, `{"t":1,"s":{"a":"b"}`,
	} {
		var want grantTail
		_, errNew := decodeTail(in)
		if errStd := json.Unmarshal([]byte(in), &want); (errStd == nil) != (errNew == nil) {
			t.Errorf("%q: encoding/json error %v, decodeTail error %v", in, errStd, errNew)
		}
	}
}

// TestGrantTailRoundTrip: every tail encodeGrant writes — over rng's
// random grants (randomGrant), with and without an access stamp, before
// and after a rotation — decodeTail reads as encoding/json reads it.
func TestGrantTailRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 14))
	for i := range 3000 {
		r, h := randomGrant(rng, i)
		if rng.IntN(2) == 0 {
			h.rotated = strconv.FormatInt(rng.Int64N(4e12), 10)
		}
		if s := r.GetSession(); s != nil && rng.IntN(4) > 0 {
			s.SetExpiresAt(fosite.AccessToken, time.Unix(rng.Int64N(4e9), 0))
		}
		rec, err := encodeGrant(r, h)
		if err != nil {
			t.Fatal(err)
		}
		_, js, err := splitRecord(string(rec))
		if err != nil {
			t.Fatal(err)
		}
		var want grantTail
		if err := json.Unmarshal([]byte(js), &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeTail(js)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("grant %d, %s:\n decodeTail    %+v (%v)\n encoding/json %+v", i, js, got, err, want)
		}
		if got.RequestedAt != r.GetRequestedAt().Unix() || len(got.Session) == 0 {
			t.Fatalf("grant %d, %s: read %+v", i, js, got)
		}
	}
}

// TestAccessStamp: the grant record's "a" member, "<rotation>/<access
// expiry ms>", has one reader (accessStamp.end) for what encodeGrant and
// refreshScript write; every stamp it cannot vouch for — none (a record
// written before the member existed), another rotation's (a version
// without the member rotated the grant since), or one malformed — says
// nothing (false), so the revocation falls back to the longest lifetime.
func TestAccessStamp(t *testing.T) {
	const exp = int64(1790003601000)
	for _, c := range []struct {
		stamp, rotated string
		ok             bool
	}{
		{"/1790003601000", "", true},                           // the redemption's (no rotation yet)
		{"1790000000000/1790003601000", "1790000000000", true}, // a rotation's
		{"", "", false}, // a record of a version before "a"
		{"", "1790000000000", false},
		{"/1790003601000", "1790000000000", false},              // rotated since by a version without "a"
		{"1790000000000/1790003601000", "1790000005000", false}, // likewise, after a rotation
		{"1790000000000/1790003601000", "", false},              // a rotation the header does not know
		{"1790003601000", "", false},                            // no "/"
		{"/", "", false},                                        // no expiry
		{"/0", "", false}, {"/-1790003601000", "", false},       // not a time a token expires
		{"/+1790003601000", "", false}, {"/ 1790003601000", "", false}, // not digits only
		{"/1790003601000.5", "", false}, {"/1790003601000/", "", false},
		{"/0x1A", "", false}, {"/99999999999999999999", "", false}, // overflow
		{"1/2/3", "1", false},
	} {
		got, ok := accessStamp(c.stamp).end(c.rotated)
		if ok != c.ok || ok && got.UnixMilli() != exp {
			t.Errorf("stamp %q, record rotated %q: %v %v, want ok %v (%d ms)", c.stamp, c.rotated, got.UnixMilli(), ok, c.ok, exp)
		}
	}
	at := time.UnixMilli(exp)
	for _, rotated := range []string{"", "1790000000000"} {
		if got, ok := newAccessStamp(rotated, at).end(rotated); !ok || !got.Equal(at) {
			t.Errorf("newAccessStamp(%q, %v) = %q, read back %v %v", rotated, at, newAccessStamp(rotated, at), got, ok)
		}
	}
}

// TestAccessTokensEnd: the access expiry of whole records, read from the
// JSON by the decoder decodeGrant uses (decodeTail) and the stamp's one
// reader — records as this version, refreshScript and earlier versions
// write them, and records it cannot read.
func TestAccessTokensEnd(t *testing.T) {
	header := func(rotated string) string {
		return "g2\nrtmac\nprevmac\n" + rotated + "\n1790090000000\n1790086400\nc1\nopenid offline_access\nhttps://api.example/mcp\n"
	}
	const sess = `"s":{"sub":"user-1","p":{"email":"u@example.com"}}}`
	for _, c := range []struct {
		name, rec string
		ok        bool
	}{
		{"written at the redemption", header("") + `{"a":"/1790003601000","t":1790000000,` + sess, true},
		{"rewritten by a rotation", header("1790000000000") + `{"a":"1790000000000/1790003601000","t":1790000000,` + sess, true},
		{"with requested scopes and form", header("1790000000000") + `{"a":"1790000000000/1790003601000","t":1790000000,"rs":["openid"],"f":{"nonce":["n"]},` + sess, true},
		{"written before the member existed", header("") + `{"t":1790000000,` + sess, false},
		{"rotated before the member existed", header("1790000000000") + `{"t":1790000000,` + sess, false},
		{"rotated since by a version without it", header("1790000005000") + `{"a":"1790000000000/1790003601000","t":1790000000,` + sess, false},
		{"no session", header("") + `{"a":"/1790003601000","t":1790000000}`, true},
		{"a signed expiry", header("") + `{"a":"/+1790003601000","t":1790000000,` + sess, false},
		{"not a string", header("") + `{"a":1790003601000,"t":1790000000,` + sess, false},
		{"malformed JSON", header("") + `{"a":"/1790003601000","t":` + sess, false},
		{"truncated header", "g2\nrtmac\n\n\n", false},
		{"another format", strings.Replace(header(""), "g2", "g3", 1) + `{"a":"/1790003601000","t":1790000000,` + sess, false},
	} {
		got, ok := accessTokensEnd(c.rec)
		if ok != c.ok || ok && got.UnixMilli() != 1790003601000 {
			t.Errorf("%s: %v %v, want ok %v", c.name, got.UnixMilli(), ok, c.ok)
		}
	}
}
