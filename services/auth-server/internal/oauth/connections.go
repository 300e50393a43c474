package oauth

import (
	"context"
	"errors"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// ErrConnectionNotFound means the grant is not one of the subject's live
// grants (revoked, expired, never issued, or another subject's).
var ErrConnectionNotFound = store.ErrGrantNotFound

// Connection is one of a subject's grants with its client's name.
type Connection struct {
	store.Grant
	ClientName string
	ClientURI  string
}

func newStoredSession() fosite.Session { return NewSession() }

// Connections lists sub's live grants, most recently used first (the
// connected-apps capability). A grant whose client no longer resolves is
// listed by its client id.
func (s *Server) Connections(ctx context.Context, sub string) ([]Connection, error) {
	grants, err := s.store.Grants(ctx, sub, newStoredSession)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, len(grants))
	for i, g := range grants {
		out[i] = Connection{Grant: g, ClientName: g.ClientID}
		if c, err := s.store.GetClient(ctx, g.ClientID); err == nil {
			if cc, ok := c.(*clients.Client); ok {
				out[i].ClientName, out[i].ClientURI = cc.Name, cc.ClientURI
			}
		}
	}
	return out, nil
}

// Disconnect revokes grantID if it is one of sub's live grants: the grant
// ends everywhere (store.RevokeGrant: announced to every verifier, audited),
// and the user's remembered consent to its client is forgotten, so the app
// must ask again. Anything else is ErrConnectionNotFound.
func (s *Server) Disconnect(ctx context.Context, sub, grantID string) error {
	clientID, err := s.store.RevokeSubjectGrant(ctx, sub, grantID, newStoredSession)
	if err != nil {
		return err
	}
	if err := s.RevokeConsent(ctx, sub, clientID); err != nil && !errors.Is(err, context.Canceled) {
		s.log.WarnContext(ctx, "grant revoked but its consent could not be forgotten", "grant_id", grantID, "client_id", clientID, "err", err)
	}
	return nil
}
