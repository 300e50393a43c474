package clients

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// CheckNameAndURI is the rule for the name and home page a client gives
// itself, the same whether it registered (RFC 7591, 400
// invalid_client_metadata) or is known by its Client ID Metadata Document
// (the document is refused, invalid_client): both reach the consent page
// and the connected-apps list (connections.list, GET
// /actions/connections). name must be at most 200 bytes, hold no control
// or bidirectional formatting character (HasHiddenCharacters) and not be
// the name of a client of operator, the static registry (ByName; nil:
// none); clientURI, when given, an http or https URL with a host of at
// most 2000 bytes — a javascript: or data: URI would be a link that runs
// script. The error is the description the client is given.
func CheckNameAndURI(name, clientURI string, operator *Static) error {
	if len(name) > 200 {
		return errors.New("client_name is too long")
	}
	if HasHiddenCharacters(name) {
		return errors.New("client_name must not contain control or bidirectional formatting characters")
	}
	if _, taken := operator.ByName(name); taken {
		return fmt.Errorf("client_name %s is the name of an app registered by this server's operator; choose another name", strconv.Quote(name))
	}
	if clientURI != "" {
		if u, err := url.Parse(clientURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(clientURI) > 2000 {
			return fmt.Errorf("client_uri %s: must be an http or https URL", strconv.Quote(Truncate(clientURI, 200)))
		}
	}
	return nil
}
