package oauth

import (
	"net/http"
	"net/url"
	"slices"
)

// dropEmptyParams removes parameters sent without a value from the query,
// the form and the body form of r: RFC 6749 §3.1 and §3.2 — "Parameters
// sent without a value MUST be treated as if they were omitted from the
// request." So `scope=` asks for the default scopes and `resource=` for
// the default resource, instead of an empty scope or an invalid target.
// Call it after r.ParseForm.
func dropEmptyParams(r *http.Request) {
	// A request without a query (a token request) has nothing to drop
	// there, and parsing "" would still make a map.
	if r.URL.RawQuery != "" {
		if q := r.URL.Query(); dropEmpty(q) {
			u := *r.URL
			u.RawQuery = q.Encode()
			r.URL = &u
		}
	}
	dropEmpty(r.Form)
	dropEmpty(r.PostForm)
}

// dropEmpty deletes empty values from v and reports whether it changed.
// A parameter without an empty value is left as it is (no copy of its
// values).
func dropEmpty(v url.Values) bool {
	changed := false
	for k, vs := range v {
		if !slices.Contains(vs, "") {
			continue
		}
		kept := vs[:0:0]
		for _, s := range vs {
			if s != "" {
				kept = append(kept, s)
			}
		}
		if len(kept) == len(vs) {
			continue
		}
		changed = true
		if len(kept) == 0 {
			delete(v, k)
		} else {
			v[k] = kept
		}
	}
	return changed
}
