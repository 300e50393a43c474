package oauth

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// token is the token endpoint: authorization_code and refresh_token grants.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	grant := r.PostForm.Get("grant_type")
	if !slices.Contains(clients.GrantTypes, grant) {
		s.metrics.grants.WithLabelValues("other", "unknown", "unsupported_grant_type").Inc()
		s.metrics.errors.WithLabelValues("token", "unsupported_grant_type").Inc()
		if grant == "" {
			writeJSONError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		}
		writeJSONError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		s.tokenError(w, r, grant, ar, err)
		return
	}
	if rs := r.PostForm["resource"]; len(rs) > 0 {
		// RFC 8707: the token's audience is the grant's resource; a request
		// may name it again but not widen or change it.
		if len(rs) > 1 || !ar.GetRequestedAudience().Has(rs[0]) {
			s.metrics.grants.WithLabelValues(grant, s.clientLabel(ar.GetClient()), "invalid_target").Inc()
			s.metrics.errors.WithLabelValues("token", "invalid_target").Inc()
			writeJSONError(w, http.StatusBadRequest, "invalid_target", "resource does not match the grant's resource")
			return
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.tokenError(w, r, grant, ar, err)
		return
	}
	s.metrics.grants.WithLabelValues(grant, s.clientLabel(ar.GetClient()), "ok").Inc()
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, grant string, ar fosite.AccessRequester, err error) {
	status, code, desc := classify(err)
	client := "unknown"
	if ar != nil && ar.GetClient() != nil {
		client = s.clientLabel(ar.GetClient())
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.Error("token endpoint failed", "grant_type", grant, "err", err)
	} else {
		s.log.Info("token request refused", "grant_type", grant, "client", client, "error", code, "debug", fosite.ErrorToRFC6749Error(err).GetDescription()+" "+fosite.ErrorToRFC6749Error(err).Debug())
	}
	s.metrics.grants.WithLabelValues(grant, client, code).Inc()
	s.metrics.errors.WithLabelValues("token", code).Inc()
	if code == "invalid_client" {
		status = http.StatusUnauthorized
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="tollgate", charset="UTF-8"`)
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSONError(w, status, code, desc)
}

// clientLabel bounds the metrics' client label: self-registered clients
// share one value per kind.
func (s *Server) clientLabel(c fosite.Client) string {
	if cc, ok := c.(*clients.Client); ok && cc.Kind != clients.KindStatic {
		return string(cc.Kind)
	}
	if c == nil {
		return "unknown"
	}
	return c.GetID()
}

// userinfo returns the profile bound to the access token, per its scopes.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	sess, ar, ok := s.bearer(w, r, "userinfo")
	if !ok {
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		s.metrics.errors.WithLabelValues("userinfo", "insufficient_scope").Inc()
		s.bearerError(w, http.StatusForbidden, "insufficient_scope", "the openid scope is required")
		return
	}
	out := profileMap(ScopedProfile(sess.Profile, ar.GetGrantedScopes()))
	out["sub"] = sess.Subject
	writeJSON(w, http.StatusOK, out)
}

// revokeConsent forgets the signed-in user's approval of client_id: the
// next authorization of that client shows the consent page again. The user
// is identified by any valid access token of ours.
func (s *Server) revokeConsent(w http.ResponseWriter, r *http.Request) {
	sess, _, ok := s.bearer(w, r, "consent")
	if !ok {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	if err := s.RevokeConsent(r.Context(), sess.Subject, clientID); err != nil {
		s.unavailable(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bearer authenticates the request's access token (exactly one
// Authorization header, never the query or body) and answers the error.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, endpoint string) (*Session, fosite.AccessRequester, bool) {
	ctx := r.Context()
	raw, err := tokens.FromRequest(r)
	switch {
	case errors.Is(err, tokens.ErrDuplicateAuthorization), errors.Is(err, tokens.ErrQueryToken):
		s.bearerError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return nil, nil, false
	case r.PostForm.Has("access_token"):
		s.bearerError(w, http.StatusBadRequest, "invalid_request", "send the access token in the Authorization header")
		return nil, nil, false
	case errors.Is(err, tokens.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "no bearer token")
		return nil, nil, false
	case err != nil:
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", err.Error())
		return nil, nil, false
	}
	sess := NewSession()
	_, ar, err := s.provider.IntrospectToken(ctx, raw, fosite.AccessToken, sess)
	if err != nil {
		status, code, _ := classify(err)
		if status == http.StatusServiceUnavailable {
			writeJSONError(w, status, code, "the service is temporarily unavailable; retry later")
			return nil, nil, false
		}
		s.metrics.errors.WithLabelValues(endpoint, "invalid_token").Inc()
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return nil, nil, false
	}
	return sess, ar, true
}

func (s *Server) bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate", error="`+code+`", error_description="`+strings.ReplaceAll(desc, `"`, "'")+`"`)
	writeJSONError(w, status, code, desc)
}

// revoke is RFC 7009 token revocation (whole grant).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	err := s.provider.NewRevocationRequest(r.Context(), r)
	if err != nil {
		status, code, desc := classify(err)
		if code == "invalid_client" {
			status = http.StatusUnauthorized
			if _, _, ok := r.BasicAuth(); ok {
				w.Header().Set("WWW-Authenticate", `Basic realm="tollgate", charset="UTF-8"`)
			}
		}
		if status == http.StatusServiceUnavailable || code == "invalid_client" || code == "invalid_request" || code == "unauthorized_client" || code == "unsupported_token_type" {
			s.metrics.errors.WithLabelValues("revoke", code).Inc()
			writeJSONError(w, status, code, desc)
			return
		}
	}
	// RFC 7009: an unknown or already revoked token is a success.
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662 for authenticated clients.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ir, err := s.provider.NewIntrospectionRequest(r.Context(), r, NewSession())
	if err != nil {
		status, code, desc := classify(err)
		if status == http.StatusServiceUnavailable || code == "invalid_client" || code == "invalid_request" {
			if code == "invalid_client" {
				status = http.StatusUnauthorized
			}
			writeJSONError(w, status, code, desc)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	s.provider.WriteIntrospectionResponse(r.Context(), w, ir)
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.ring.PublicJWKSJSON())
}

// discovery serves OpenID Connect discovery and RFC 8414 metadata.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Metadata())
}

// Metadata is the authorization server metadata document.
func (s *Server) Metadata() map[string]any {
	iss := s.issuer
	m := map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + "/oauth/authorize",
		"token_endpoint":                                   iss + "/oauth/token",
		"userinfo_endpoint":                                iss + "/oauth/userinfo",
		"jwks_uri":                                         iss + "/oauth/jwks",
		"revocation_endpoint":                              iss + "/oauth/revoke",
		"introspection_endpoint":                           iss + "/oauth/introspect",
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            clients.GrantTypes,
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            clients.AuthMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256"},
		"revocation_endpoint_auth_methods_supported":       clients.AuthMethods,
		"introspection_endpoint_auth_methods_supported":    []string{clients.AuthBasic, clients.AuthPost, clients.AuthPrivateKeyJWT},
		"scopes_supported":                                 clients.Scopes,
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"name", "given_name", "family_name", "preferred_username", "email", "email_verified"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          s.cfg.CIMDEnabled,
		"resource_indicators_supported":                  true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     false,
	}
	if s.cfg.DCREnabled {
		m["registration_endpoint"] = iss + "/oauth/register"
	}
	return m
}
