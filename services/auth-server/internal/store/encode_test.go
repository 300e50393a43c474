package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"
)

// testGrantSession is a GrantSession whose grant form is encoding/json's
// of a few fields, as the oauth package's Session writes its own.
type testGrantSession struct {
	*openid.DefaultSession
	Grant map[string]any
}

func (s testGrantSession) MarshalGrant() ([]byte, error) { return json.Marshal(s.Grant) }

func (s testGrantSession) UnmarshalGrant(b []byte) error { return json.Unmarshal(b, &s.Grant) }

// previousEncodeGrant is encodeGrant as it was before the session's JSON
// was appended as it is (main at 7352a1e): encoding/json's Marshal of the
// whole tail, the session a json.RawMessage.
func previousEncodeGrant(r fosite.Requester, h grantHeader) (string, error) {
	var err error
	h.client = r.GetClient().GetID()
	if err = headerValue("client id", h.client, false); err != nil {
		return "", err
	}
	if h.scopes, err = joinList("scope", r.GetGrantedScopes()); err != nil {
		return "", err
	}
	if h.audiences, err = joinList("audience", r.GetGrantedAudience()); err != nil {
		return "", err
	}
	tail := grantTail{RequestedAt: r.GetRequestedAt().Unix(), Form: r.GetRequestForm()}
	if len(tail.Form) == 0 {
		tail.Form = nil
	}
	if rs := r.GetRequestedScopes(); !slices.Equal(rs, r.GetGrantedScopes()) {
		tail.RequestedScope = rs
	}
	if ra := r.GetRequestedAudience(); !slices.Equal(ra, r.GetGrantedAudience()) {
		tail.RequestedAudience = ra
		h.audiences = "!" + h.audiences
	}
	if sess := r.GetSession(); sess != nil {
		if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && h.rt != "" {
			h.refreshExp = strconv.FormatInt(exp.Unix(), 10)
		}
		if gs, ok := sess.(GrantSession); ok {
			tail.Session, err = gs.MarshalGrant()
		} else {
			tail.Session, err = json.Marshal(sess)
		}
		if err != nil {
			return "", err
		}
	}
	if tail.Session == nil {
		tail.Session = json.RawMessage("null")
	}
	b, err := json.Marshal(tail)
	if err != nil {
		return "", err
	}
	return h.String() + string(b), nil
}

// TestEncodeGrantAsEncodingJSON: encodeGrant writes the same record, byte
// for byte, as when encoding/json marshalled the whole tail, over random
// requests and sessions — a GrantSession's grant form and a plain
// session's JSON, strings with what JSON escapes (quotes, backslashes,
// control bytes, <>&, U+2028/2029, bytes that are not UTF-8), forms,
// scopes and audiences that equal or differ from the granted ones, no
// session.
func TestEncodeGrantAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 3000 {
		r, h := randomGrant(rng, i)
		want, errWant := previousEncodeGrant(r, h)
		got, errGot := encodeGrant(r, h)
		if (errWant == nil) != (errGot == nil) || !bytes.Equal(got, []byte(want)) {
			t.Fatalf("request %d:\n got  %q (%v)\n want %q (%v)", i, got, errGot, want, errWant)
		}
	}
}

// randomGrant is the i-th of rng's random grant requests and record
// headers: a GrantSession's grant form, a plain session's JSON or none;
// strings with what JSON escapes (quotes, backslashes, control bytes, <>&,
// U+2028/2029, bytes that are not UTF-8); forms, scopes and audiences
// that equal or differ from the granted ones.
func randomGrant(rng *rand.Rand, i int) (fosite.Requester, grantHeader) {
	pieces := []string{"a", "Zé", "\"", "\\", "\n", "\x00", "\x1f", "<", ">", "&", "\u2028", "\u2029", "\xff", "\xc3", "😀", `"s":`, "null}", "{", "}", "/"}
	str := func() string {
		s := ""
		for range rng.IntN(6) {
			s += pieces[rng.IntN(len(pieces))]
		}
		return s
	}
	word := func() string {
		return []string{"openid", "profile", "email", "offline_access", "https://api.example/mcp"}[rng.IntN(5)]
	}
	words := func() []string {
		if rng.IntN(3) == 0 {
			return nil
		}
		l := make([]string, rng.IntN(4))
		for i := range l {
			l[i] = word()
		}
		return l
	}
	r := fosite.NewRequest()
	r.ID, r.Client = "g-"+strconv.Itoa(i), &fosite.DefaultClient{ID: "c1"}
	r.RequestedAt = time.Unix(rng.Int64N(4e9), 0)
	r.GrantedScope, r.GrantedAudience = words(), words()
	r.RequestedScope, r.RequestedAudience = r.GrantedScope, r.GrantedAudience
	if rng.IntN(2) == 0 {
		r.RequestedScope = words()
	}
	if rng.IntN(2) == 0 {
		r.RequestedAudience = words()
	}
	r.Form = url.Values{}
	for range rng.IntN(4) {
		r.Form[str()] = []string{str(), str()}
	}
	ds := &openid.DefaultSession{Claims: &fjwt.IDTokenClaims{Subject: str(), Extra: map[string]any{str(): str(), "n": rng.Float64() * 1e6}}, Headers: fjwt.NewHeaders(), Subject: str()}
	if rng.IntN(2) == 0 {
		ds.SetExpiresAt(fosite.RefreshToken, time.Unix(rng.Int64N(4e9), 0))
	}
	switch rng.IntN(4) {
	case 0:
		r.Session = ds
	case 1:
		r.Session = nil
	default:
		g := map[string]any{"sub": str(), "p": map[string]any{"name": str(), "email_verified": rng.IntN(2) == 0}}
		if rng.IntN(2) == 0 {
			g["c"] = map[string]any{"ext": map[string]any{str(): []any{str(), 1.5, nil}}}
		}
		r.Session = testGrantSession{ds, g}
	}
	h := grantHeader{indexUntil: strconv.Itoa(rng.IntN(1e9))}
	if rng.IntN(2) == 0 {
		h.rt = "mac" + strconv.Itoa(i)
	}
	return r, h
}
