{{/*
The environment the chart sets on a fleet container (deployment.yaml), a
YAML list of EnvVar. dict: root, name (the component), c (its
tollgate.components entry), v (its values).
*/}}
{{- define "tollgate.fleetEnv" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := .c -}}
{{- $v := .v -}}
{{- if or (eq $name "auth-server") (eq $name "actions-api") (eq $name "mcp-gateway") }}
{{- /* The fleet's client-address rule (docs/reference/configuration.md#client-address). */}}
- name: TRUSTED_PROXIES
  value: {{ include "tollgate.trustedProxies" $root | quote }}
{{- end }}
{{- if $c.http }}
- name: HTTP_ADDR
  value: {{ printf ":%d" (int $root.Values.ports.http) | quote }}
{{- end }}
{{- if $c.grpc }}
- name: GRPC_ADDR
  value: {{ printf ":%d" (int $root.Values.ports.grpc) | quote }}
{{- end }}
{{- include "tollgate.redisEnv" $root | trim | nindent 0 }}
{{- if and (eq $name "capability-core") (include "tollgate.coreAsBackendUser" $root) }}
{{- /* capability-core only follows revoked grants and pings Redis:
it logs in as the backends' ACL user, and leaves the persistence
check (INFO, CONFIG GET: not the user's) to the fleet
(docs/operations/redis.md#backend-acl-user). */}}
- name: REDIS_URL
  value: {{ printf "redis://%s@%s:6379/0" $root.Values.redis.bundled.backendUser.name (include "tollgate.redisName" $root) | quote }}
- name: REDIS_CHECK_DURABLE
  value: "false"
{{- end }}
{{- if has $name (list "auth-server" "mcp-gateway" "actions-api") }}
{{- /* The capability backends they discover (docs/guides/bring-your-own-backend.md). */}}
{{- include "tollgate.backendEnv" $root | trim | nindent 0 }}
{{- end }}
{{- if eq $name "auth-server" }}
- name: SIGNING_KEYS_DIR
  value: /etc/tollgate/signing-keys
- name: SIGNING_KEY_ACTIVE
  value: {{ include "tollgate.activeKid" $root | quote }}
{{- with $root.Values.authServer.signingKeys.activeES256 }}
- name: SIGNING_KEY_ACTIVE_ES256
  value: {{ . | quote }}
{{- end }}
- name: ACCESS_TOKEN_SIGNING_ALG
  value: {{ $root.Values.authServer.accessTokenSigningAlg | quote }}
- name: CLIENTS_FILE
  value: /etc/tollgate/secrets/clients.yaml
- name: UPSTREAM_ISSUER_URL
  value: {{ ternary (include "tollgate.devIdpIssuer" $root) $root.Values.upstream.issuerUrl $root.Values.devIdp.enabled | quote }}
{{- if and $root.Values.devIdp.enabled $root.Values.devIdp.issuerUrl }}
{{- /* The browser's issuer URL (e.g. a port-forward) does not resolve in the pod: reach the dev IdP through its Service. */}}
- name: UPSTREAM_DIAL_ADDR
  value: {{ printf "%s:%d" (include "tollgate.componentName" (dict "root" $root "name" "dev-idp")) (int $root.Values.ports.http) | quote }}
{{- end }}
- name: UPSTREAM_CLIENT_ID
  value: {{ ternary "tollgate" $root.Values.upstream.clientId $root.Values.devIdp.enabled | quote }}
{{- $up := $root.Values.upstream }}
{{- if and (not $root.Values.devIdp.enabled) (include "tollgate.upstreamKeyAuth" $root) }}
{{- if not $up.existingSecret }}{{ fail (printf "upstream.clientAuth %s: put the PEM private key in a Secret named by upstream.existingSecret, under upstream.existingSecretKey (not upstream.clientSecret)" $up.clientAuth) }}{{ end }}
- name: UPSTREAM_CLIENT_KEY_FILE
  value: /etc/tollgate/secrets/upstream-client-key
{{- if eq $up.clientAuth "apple_client_secret" }}
{{- if not $up.appleTeamId }}{{ fail "upstream.clientAuth apple_client_secret: set upstream.appleTeamId (the Apple Developer team id)" }}{{ end }}
{{- if not $up.clientKeyId }}{{ fail "upstream.clientAuth apple_client_secret: set upstream.clientKeyId (the Sign in with Apple key's Key ID)" }}{{ end }}
{{- if $up.existingSecretCertKey }}{{ fail "upstream.existingSecretCertKey: only with upstream.clientAuth private_key_jwt" }}{{ end }}
- name: UPSTREAM_APPLE_TEAM_ID
  value: {{ $up.appleTeamId | quote }}
{{- else if $up.appleTeamId }}{{ fail "upstream.appleTeamId: only with upstream.clientAuth apple_client_secret" }}
{{- end }}
{{- with $up.clientKeyId }}
- name: UPSTREAM_CLIENT_KEY_ID
  value: {{ . | quote }}
{{- end }}
{{- if $up.existingSecretCertKey }}
- name: UPSTREAM_CLIENT_CERT_FILE
  value: /etc/tollgate/secrets/upstream-client-cert
{{- end }}
{{- else }}
{{- if $up.clientKeyId }}{{ fail "upstream.clientKeyId: only with upstream.clientAuth private_key_jwt or apple_client_secret" }}{{ end }}
{{- if $up.existingSecretCertKey }}{{ fail "upstream.existingSecretCertKey: only with upstream.clientAuth private_key_jwt" }}{{ end }}
{{- if $up.appleTeamId }}{{ fail "upstream.appleTeamId: only with upstream.clientAuth apple_client_secret" }}{{ end }}
- name: UPSTREAM_CLIENT_SECRET_FILE
  value: /etc/tollgate/secrets/upstream-client-secret
{{- end }}
- name: UPSTREAM_SCOPES
  value: {{ join "," $root.Values.upstream.scopes | quote }}
- name: UPSTREAM_FORWARD_PROMPT_LOGIN
  value: {{ $root.Values.upstream.forwardPromptLogin | quote }}
{{- if not $root.Values.devIdp.enabled }}
{{- with $root.Values.upstream.responseMode }}
- name: UPSTREAM_RESPONSE_MODE
  value: {{ . | quote }}
{{- end }}
{{- $tenants := $root.Values.upstream.allowedTenants | default list }}
{{- $multi := regexMatch "/(common|organizations)/v2\\.0/?$" $root.Values.upstream.issuerUrl }}
{{- if and $multi (not $tenants) }}{{ fail (printf "upstream.allowedTenants is required with the Entra ID multi-tenant issuer %s: the tenant ids (GUIDs) whose users may sign in, or [\"*\"] for any tenant" $root.Values.upstream.issuerUrl) }}{{ end }}
{{- if and $tenants (not $multi) }}{{ fail "upstream.allowedTenants is only for an Entra ID multi-tenant issuer (…/common/v2.0 or …/organizations/v2.0)" }}{{ end }}
{{- if and (has "*" $tenants) (gt (len $tenants) 1) }}{{ fail "upstream.allowedTenants: * (any tenant) stands alone" }}{{ end }}
{{- with $tenants }}
- name: UPSTREAM_ALLOWED_TENANTS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.upstream.previousIssuers }}
- name: UPSTREAM_PREVIOUS_ISSUERS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $root.Values.upstream.claimMap }}
- name: UPSTREAM_CLAIM_MAP
  value: {{ range $i, $k := keys . | sortAlpha }}{{ if $i }},{{ end }}{{ $k }}={{ index $root.Values.upstream.claimMap $k }}{{ end }}
{{- end }}
- name: TOKEN_HMAC_SECRET_FILE
  value: /etc/tollgate/secrets/token-hmac-secret
{{- with $root.Values.authServer.tokenSecret.rotatedSecretKey }}
- name: TOKEN_HMAC_SECRETS_ROTATED
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.authSecret" $root }}
      key: {{ . }}
{{- end }}
{{- with $root.Values.authServer.clientSecretKey }}
{{- if .existingSecret }}
- name: CLIENT_SECRET_HMAC_KEY_FILE
  value: /etc/tollgate/secrets/client-secret-hmac-key
{{- end }}
{{- if and .existingSecret .rotatedSecretKey }}
- name: CLIENT_SECRET_HMAC_KEYS_ROTATED
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .rotatedSecretKey }}
{{- end }}
{{- end }}
- name: DCR_ENABLED
  value: {{ $root.Values.authServer.dynamicClientRegistration | quote }}
- name: CIMD_ENABLED
  value: {{ $root.Values.authServer.clientIdMetadataDocuments | quote }}
{{- with $root.Values.authServer.dynamicClientResources }}
{{- /* Rendered only when set: the auth-server's default is the MCP resource. */}}
{{- $dyn := list }}
{{- range . }}
{{- $dyn = append $dyn (ternary (include "tollgate.mcpResource" $root) (include "tollgate.actionsAudience" $root) (eq . "mcp")) }}
{{- end }}
- name: DYNAMIC_CLIENT_RESOURCES
  value: {{ join "," $dyn | quote }}
{{- end }}
{{- with $root.Values.authServer.trustedRedirectOrigins }}
{{- /* Rendered only when set: the auth-server's default is https://chatgpt.com. */}}
- name: TRUSTED_REDIRECT_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- if and (eq $name "mcp-gateway") (ne ($root.Values.mcpGateway.toolNameStyle | default "dotted") "dotted") }}
{{- /* Rendered only when not the gateway's default, dotted. */}}
- name: MCP_TOOL_NAME_STYLE
  value: {{ $root.Values.mcpGateway.toolNameStyle | quote }}
{{- end }}
{{- if and (eq $name "mcp-gateway") (ne ($root.Values.mcpGateway.scopeChallenge | default "auto") "auto") }}
{{- /* Rendered only when not the gateway's default, auto. */}}
- name: SCOPE_CHALLENGE
  value: {{ $root.Values.mcpGateway.scopeChallenge | quote }}
{{- end }}
{{- if eq $name "mcp-gateway" }}
- name: SESSION_LIMIT_PER_SUBJECT
  value: {{ $root.Values.mcpGateway.sessionLimitPerSubject | quote }}
- name: SESSION_EVICT_IDLE_AFTER
  value: {{ $root.Values.mcpGateway.sessionEvictIdleAfter | quote }}
{{- end }}
{{- if and (eq $name "mcp-gateway") $root.Values.mcpGateway.sessionRequired }}
{{- /* Rendered only when not the gateway's default, false. */}}
- name: SESSION_REQUIRED
  value: "true"
{{- end }}
{{- if and (eq $name "actions-api") $root.Values.actionsApi.privacyPolicy }}
- name: PRIVACY_POLICY
  value: {{ $root.Values.actionsApi.privacyPolicy | quote }}
{{- end }}
{{- if eq $name "dev-idp" }}
- name: DEVIDP_ISSUER_URL
  value: {{ include "tollgate.devIdpIssuer" $root | quote }}
- name: DEVIDP_DIR
  value: /etc/tollgate/secrets
{{- end }}
{{- end -}}

{{/*
The container's env: the chart's own (tollgate.fleetEnv), then extraEnv,
then the component's extraEnv. A name set twice keeps only its last entry —
the component's extraEnv over extraEnv over the chart's — so the list never
holds a name twice (server-side apply and Helm 4 refuse that; Helm 3
accepted it, and the last entry won in the container).
*/}}
{{- define "tollgate.containerEnv" -}}
{{- $all := concat (include "tollgate.fleetEnv" . | fromYamlArray) (.root.Values.extraEnv | default list) (.v.extraEnv | default list) -}}
{{- $last := dict -}}
{{- range $i, $e := $all -}}
{{- $_ := set $last $e.name $i -}}
{{- end -}}
{{- $env := list -}}
{{- range $i, $e := $all -}}
{{- if eq (index $last $e.name) $i -}}
{{- $env = append $env $e -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}
