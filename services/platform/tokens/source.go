package tokens

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"

	authv1 "github.com/tollgate/tollgate/proto/gen/tollgate/auth/v1"
)

// GRPCKeySource fetches the key set from the auth-server's KeySetService.
type GRPCKeySource struct{ client authv1.KeySetServiceClient }

// NewGRPCKeySource uses conn, a connection to the auth-server's gRPC port.
func NewGRPCKeySource(conn grpc.ClientConnInterface) *GRPCKeySource {
	return &GRPCKeySource{client: authv1.NewKeySetServiceClient(conn)}
}

// FetchKeySet implements KeySource.
func (s *GRPCKeySource) FetchKeySet(ctx context.Context) (KeySet, error) {
	resp, err := s.client.GetKeySet(ctx, &authv1.GetKeySetRequest{})
	if err != nil {
		return KeySet{}, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.GetJwksJson(), &set); err != nil {
		return KeySet{}, fmt.Errorf("key set: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return KeySet{}, fmt.Errorf("key set: key %q is not public", k.KeyID)
		}
	}
	return KeySet{Issuer: resp.GetIssuer(), Keys: set}, nil
}
