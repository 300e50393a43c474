package clients

import "unicode/utf8"

// QuoteLimit is how many bytes of a request's value an error description
// quotes (a member name, a header, a key id): enough to recognize it,
// bounded whatever the request sent.
const QuoteLimit = 64

// Truncate is s cut to at most n bytes for an error description or a log,
// with "…" appended when anything was cut. The cut falls on a UTF-8
// character boundary, so a quoted value (strconv.Quote) never ends in
// \x escapes of half a character the request never sent. One helper for
// the auth-server's descriptions (the registration body's, a client id
// metadata document's, the OAuth endpoints' Content-Type), which each cut
// in their own way before.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
