package config

import (
	"errors"
	"strings"

	"golang.org/x/net/idna"
)

// hostNames is the IDNA profile of a DNS host name: RFC 3986 §3.2.2 sends
// a registered name "intended for lookup in the DNS" to the syntax of RFC
// 1034 §3.5 and RFC 1123 §2.1 (letters, digits and hyphens, no hyphen at
// either end of a label, 63 octets a label, 253 in all), an
// internationalized one to IDNA (RFC 5891 §5, UTS #46 lookup mapping:
// bücher.example and its punycode form xn--bcher-kva.example both pass, a
// malformed xn-- label or one with "--" in its third and fourth places
// does not).
var hostNames = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(true),
	idna.VerifyDNSLength(true), idna.ValidateLabels(true))

// HostName checks that h is a DNS host name (hostNames) and returns its
// ASCII form: lower-cased, each internationalized label as its A-label
// (RFC 5890 §2.3.2.1). A trailing dot (the root) is kept: whether a
// setting takes a fully qualified name is the caller's rule. The error
// says what is wrong, without the "idna:" prefix.
func HostName(h string) (string, error) {
	a, err := hostNames.ToASCII(h)
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "idna: "))
	}
	return a, nil
}
