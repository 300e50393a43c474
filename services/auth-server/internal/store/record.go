package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
)

// A grant's record (format 2, since the previous one stored a grant as a
// hash whose request JSON held the profile twice and a dozen empty ID
// token claims) is one Redis string, as:grant2:{<grant id>}: a header of
// newline-separated fields the Lua scripts read, then JSON only Go reads.
//
//	g2                     format
//	<rt>                   MAC of the current refresh token ("" none)
//	<prev>                 MAC of the token it rotated from ("" none yet)
//	<rotated>              when that rotation happened, Unix ms ("" none)
//	<index until>          until when the subject's grant index is known to
//	                       live, Unix ms ("" unknown: renew it; subjects.go)
//	<refresh expiry>       Unix s ("" no refresh token)
//	<client id>
//	<granted scopes>       space-separated
//	<granted audiences>    space-separated; "!" first when the requested
//	                       audiences differ (they are then in the JSON)
//	<JSON>                 grantTail; its first member "a", when there,
//	                       is "<rotation>/<access expiry>": when the
//	                       latest access token issued with the grant
//	                       expires (Unix ms), and the header's rotation
//	                       field as it was when that was written
//	                       (accessStamp)
//
// Everything a refresh changes is in the header (the scripts rewrite it
// and keep the JSON as it is), so a refresh neither encodes nor sends the
// grant's request; the JSON is written once, by the code redemption.
const recordFormat = "g2"

// grantTail is the part of a grant only Go reads.
type grantTail struct {
	// Access is when the grant's latest access token expires (accessStamp):
	// written with the record at the redemption (rotation "") and a
	// migration, and rewritten by every rotation (refreshScript).
	Access accessStamp `json:"a,omitempty"`
	// RequestedAt is when the grant was created (Unix s); a refresh's time
	// is the header's rotated field.
	RequestedAt int64 `json:"t"`
	// Requested scopes and audiences, when they differ from the granted ones.
	RequestedScope    []string   `json:"rs,omitempty"`
	RequestedAudience []string   `json:"ra,omitempty"`
	Form              url.Values `json:"f,omitempty"`
	// Session is the session in its grant form (GrantSession), else its JSON.
	Session json.RawMessage `json:"s"`
}

// GrantSession is a session with a compact form for grant records: what
// a grant must remember of it, without what each token issue recomputes
// (the oauth package's Session drops per-token ID token claims and keeps
// the profile once). Expiries are not part of it: the record keeps the
// refresh token's, and a token's own expiry is the token's.
type GrantSession interface {
	fosite.Session
	// MarshalGrant returns JSON as encoding/json's Marshal writes it
	// (compact, HTML-escaped): it is stored as it is (encodeGrant).
	MarshalGrant() ([]byte, error)
	UnmarshalGrant([]byte) error
}

// grantHeader is a record's header.
type grantHeader struct {
	rt, prev, rotated, indexUntil, refreshExp string
	client, scopes, audiences                 string
}

func (h grantHeader) String() string { return string(h.append(nil)) }

func (h grantHeader) fields() [headerFields]string {
	return [...]string{recordFormat, h.rt, h.prev, h.rotated, h.indexUntil, h.refreshExp, h.client, h.scopes, h.audiences}
}

// len is the length of the header's lines.
func (h grantHeader) len() int {
	n := 0
	for _, f := range h.fields() {
		n += len(f) + 1
	}
	return n
}

// append appends the header's lines to b.
func (h grantHeader) append(b []byte) []byte {
	for _, f := range h.fields() {
		b = append(append(b, f...), '\n')
	}
	return b
}

// headerFields is the number of newline-terminated lines before the JSON.
const headerFields = 9

// splitRecord splits a format-2 record into its header and JSON.
func splitRecord(s string) (grantHeader, string, error) {
	var f [headerFields]string
	rest := s
	for i := range f {
		line, r, ok := strings.Cut(rest, "\n")
		if !ok {
			return grantHeader{}, "", errors.New("grant record: truncated header")
		}
		f[i], rest = line, r
	}
	if f[0] != recordFormat {
		return grantHeader{}, "", fmt.Errorf("grant record: format %q", f[0])
	}
	return grantHeader{rt: f[1], prev: f[2], rotated: f[3], indexUntil: f[4], refreshExp: f[5],
		client: f[6], scopes: f[7], audiences: f[8]}, rest, nil
}

// headerValue refuses what would break the header's lines or lists.
func headerValue(what, v string, list bool) error {
	if strings.ContainsAny(v, "\n\r") || list && strings.ContainsAny(v, " \t") || list && strings.HasPrefix(v, "!") {
		return fmt.Errorf("grant record: %s %q cannot be stored", what, v)
	}
	return nil
}

func joinList(what string, l []string) (string, error) {
	for _, v := range l {
		if err := headerValue(what, v, true); err != nil {
			return "", err
		}
	}
	return strings.Join(l, " "), nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// encodeGrant is r as a format-2 record with the given header state (rt,
// prev, rotated, index until; client, scopes, audiences and the refresh
// expiry are r's).
//
// The session's JSON, most of the record, is appended as its encoder wrote
// it: encoding/json would scan a json.RawMessage again to compact and
// HTML-escape it, which its own output already is (GrantSession). The
// rest is written by github.com/goccy/go-json, whose encoder compiled per
// type writes encoding/json's bytes with fewer instructions
// (docs/benchmarks/auth-server-history.md, session 42 perf16). The bytes
// are those of encoding/json's Marshal of the whole grantTail
// (TestEncodeGrantAsEncodingJSON, on random grants).
func encodeGrant(r fosite.Requester, h grantHeader) ([]byte, error) {
	var err error
	h.client = r.GetClient().GetID()
	if err = headerValue("client id", h.client, false); err != nil {
		return nil, err
	}
	if h.scopes, err = joinList("scope", r.GetGrantedScopes()); err != nil {
		return nil, err
	}
	if h.audiences, err = joinList("audience", r.GetGrantedAudience()); err != nil {
		return nil, err
	}
	tail := grantTail{RequestedAt: r.GetRequestedAt().Unix(), Form: r.GetRequestForm()}
	if rs := r.GetSession(); rs != nil {
		if exp := rs.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
			tail.Access = newAccessStamp(h.rotated, exp)
		}
	}
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
	var sess []byte
	if rs := r.GetSession(); rs != nil {
		if exp := rs.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && h.rt != "" {
			h.refreshExp = strconv.FormatInt(exp.Unix(), 10)
		}
		if gs, ok := rs.(GrantSession); ok {
			sess, err = gs.MarshalGrant()
		} else {
			sess, err = json.Marshal(rs)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(sess) == 0 {
		sess = []byte("null")
	}
	// The tail with "s":null (Session is its last member), then null
	// replaced by the session.
	tail.Session = json.RawMessage("null")
	b, err := gojson.Marshal(tail)
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-len("null}")]
	rec := make([]byte, 0, h.len()+len(b)+len(sess)+1)
	rec = h.append(rec)
	rec = append(rec, b...)
	rec = append(rec, sess...)
	return append(rec, '}'), nil
}

// decodeGrant reads a format-2 record of grant id; the session is decoded
// into session (nil: not decoded).
func (s *Store) decodeGrant(ctx context.Context, id, rec string, session fosite.Session) (*fosite.Request, grantHeader, error) {
	h, js, err := splitRecord(rec)
	if err != nil {
		return nil, h, err
	}
	tail, err := decodeTail(js)
	if err != nil {
		return nil, h, err
	}
	c, err := s.clients.GetClient(ctx, h.client)
	if err != nil {
		return nil, h, err
	}
	req := &fosite.Request{
		ID: id, RequestedAt: time.Unix(tail.RequestedAt, 0).UTC(), Client: c,
		GrantedScope: splitList(h.scopes), Form: tail.Form,
	}
	aud, differ := strings.CutPrefix(h.audiences, "!")
	req.GrantedAudience = splitList(aud)
	req.RequestedScope, req.RequestedAudience = req.GrantedScope, req.GrantedAudience
	if tail.RequestedScope != nil {
		req.RequestedScope = tail.RequestedScope
	}
	if differ {
		req.RequestedAudience = tail.RequestedAudience
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if session != nil {
		if gs, ok := session.(GrantSession); ok {
			err = gs.UnmarshalGrant(tail.Session)
		} else {
			err = json.Unmarshal(tail.Session, session)
		}
		if err != nil {
			return nil, h, fmt.Errorf("grant record session: %w", err)
		}
		if h.refreshExp != "" {
			if n, err := strconv.ParseInt(h.refreshExp, 10, 64); err == nil {
				session.SetExpiresAt(fosite.RefreshToken, time.Unix(n, 0).UTC())
			}
		}
		req.Session = session
	}
	return req, h, nil
}

// decodeTail decodes a format-2 record's JSON (grantTail), the session
// kept as its JSON for the session's own decoder (UnmarshalGrant).
//
// It uses github.com/goccy/go-json, which decodes the same JSON into the
// same Go values as encoding/json (TestGrantTailAsEncodingJSON) with a
// decoder compiled per type, scanning the input once: jsonv1 (encoding/json's
// rules on the json/v2 decoder) took ~16 k instructions per refresh here,
// after a split of the session (splitLast, ~6 k) that spared encoding/json
// scanning it twice more (docs/benchmarks/auth-server-history.md,
// session 41 perf14).
func decodeTail(js string) (grantTail, error) {
	var tail grantTail
	if err := gojson.Unmarshal([]byte(js), &tail); err != nil {
		return grantTail{}, fmt.Errorf("grant record: %w", err)
	}
	return tail, nil
}

// accessStamp is a grant record's "a" member, "<rotation>/<access expiry>":
// when the latest access token issued with the grant expires (Unix ms,
// positive), and the record's rotation field (Unix ms, "" before the
// first rotation) as it was when that was written. encodeGrant writes it
// (newAccessStamp) and refreshScript rewrites it in Lua on each rotation
// (ARGV[3] .. '/' .. ARGV[14]); end is the one reader of its format.
type accessStamp string

// newAccessStamp is the stamp of an access token expiring at exp, issued
// under the record's rotation field rotated.
func newAccessStamp(rotated string, exp time.Time) accessStamp {
	return accessStamp(rotated + "/" + strconv.FormatInt(exp.UnixMilli(), 10))
}

// end is when the access token the stamp counts expires; false when the
// stamp does not say for a record whose rotation field is rotated now:
// none (a record written before the member existed), malformed, or
// written under another rotation (a version without the member rotated
// the grant since, issuing a token the stamp does not count).
func (a accessStamp) end(rotated string) (time.Time, bool) {
	rotation, exp, ok := strings.Cut(string(a), "/")
	if !ok || rotation != rotated || strings.Trim(exp, "0123456789") != "" {
		return time.Time{}, false // ParseInt would take a sign
	}
	ms, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// accessTokensEnd is when the latest access token issued with the grant
// of the format-2 record rec expires, from the record's "a" member
// (accessStamp.end); false when the record does not say, or cannot be
// read. Access tokens issued by a refresh of the previous token within
// the grace window (no write) are not counted: the caller adds the
// window.
func accessTokensEnd(rec string) (time.Time, bool) {
	h, js, err := splitRecord(rec)
	if err != nil {
		return time.Time{}, false
	}
	tail, err := decodeTail(js)
	if err != nil {
		return time.Time{}, false
	}
	return tail.Access.end(h.rotated)
}

// lastUsed is when tokens were last issued with a grant: its last
// rotation, else its creation.
func (h grantHeader) lastUsed(created time.Time) time.Time {
	if ms, err := strconv.ParseInt(h.rotated, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC()
	}
	return created
}
