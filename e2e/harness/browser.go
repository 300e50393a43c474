package harness

import "github.com/tollgate/tollgate/services/platform/devfleet"

// Browser plays the user's browser during account linking; it lives in
// devfleet, where `tollgate-dev token` uses it too.
type Browser = devfleet.Browser

// NewBrowser returns a browser that signs in as username.
func NewBrowser(username, password string) *Browser { return devfleet.NewBrowser(username, password) }
