package oauth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// TestClassify: the one map from fosite and store errors to OAuth answers.
func TestClassify(t *testing.T) {
	redisDown := fmt.Errorf("%w: dial tcp 127.0.0.1:6379: connect: connection refused", store.ErrUnavailable)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"redis down inside fosite", fosite.ErrServerError.WithWrap(redisDown), 503, "temporarily_unavailable"},
		{"redis down while resolving a client", fosite.ErrInvalidClient.WithWrap(redisDown), 503, "temporarily_unavailable"},
		{"code lost a race", fosite.ErrServerError.WithWrap(store.ErrCodeReplayed), 400, "invalid_grant"},
		{"code invalidated", fosite.ErrServerError.WithWrap(fosite.ErrInvalidatedAuthorizeCode), 400, "invalid_grant"},
		{"code ended by a disconnect, at its redemption", fosite.ErrServerError.WithWrap(store.ErrCodeEnded), 400, "invalid_grant"},
		{"code ended by a disconnect, at its read", fosite.ErrInvalidGrant.WithWrap(store.ErrCodeEnded), 400, "invalid_grant"},
		{"rotated token after grace", fosite.ErrInvalidRequest.WithWrap(fosite.ErrInactiveToken), 400, "invalid_grant"},
		{"replayed assertion", fosite.ErrJTIKnown, 401, "invalid_client"},
		{"bad client", fosite.ErrInvalidClient, 401, "invalid_client"},
		{"internal", errors.New("boom: secret detail"), 500, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, desc := classify(tc.err)
			if status != tc.status || code != tc.code {
				t.Errorf("classify = %d %s, want %d %s", status, code, tc.status, tc.code)
			}
			if status >= 500 && (desc == "" || strings.Contains(desc, "127.0.0.1") || strings.Contains(desc, "secret")) {
				t.Errorf("description %q leaks internals", desc)
			}
		})
	}
}
