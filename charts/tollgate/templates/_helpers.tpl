{{/*
Names. Kubernetes names are DNS labels: at most 63 characters, so every name
is truncated and loses a trailing dash.
*/}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: tollgate.componentName (dict "root" $ "name" "auth-server"). */}}
{{- define "tollgate.componentName" -}}
{{- $base := include "tollgate.fullname" .root | trunc (int (sub 62 (len .name))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base .name -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "auth-server"). */}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "tollgate.componentLabels" -}}
{{ include "tollgate.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/*
The fleet components. Each entry: values key, whether it serves public HTTP
and gRPC. Redis is not here: it is no Go service and has its own templates.
*/}}
{{- define "tollgate.components" -}}
auth-server: {key: authServer, http: true, grpc: true}
mcp-gateway: {key: mcpGateway, http: true, grpc: false}
actions-api: {key: actionsApi, http: true, grpc: false}
capability-core: {key: capabilityCore, http: false, grpc: true}
dev-idp: {key: devIdp, http: true, grpc: false, optional: true}
{{- end -}}

{{/*
TRUSTED_PROXIES, comma-separated: trustedProxies when it is a list (even
empty); when it is null, the private ranges if only pods reach the public
ports (tollgate.publicPortsPodsOnly), else nothing.
*/}}
{{- define "tollgate.trustedProxies" -}}
{{- if kindIs "slice" .Values.trustedProxies -}}
{{- join "," .Values.trustedProxies -}}
{{- else if include "tollgate.publicPortsPodsOnly" . -}}
10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7
{{- end -}}
{{- end -}}

{{/*
"true" when the NetworkPolicies admit only pods of chosen namespaces to the
public HTTP ports: networkPolicy.enabled, and every networkPolicy.ingressFrom
peer has no ipBlock and a selector, its namespaceSelector (if any) not empty
(an empty one, or a podSelector with it, admits pods of every namespace; a
podSelector alone, of the release's). Then only those pods (the ingress
controller's) can write the X-Forwarded-For hops a private-range proxy
appends.
*/}}
{{- define "tollgate.publicPortsPodsOnly" -}}
{{- $np := .Values.networkPolicy -}}
{{- $ok := and $np.enabled (not (empty $np.ingressFrom)) -}}
{{- range $np.ingressFrom -}}
{{- if or (hasKey . "ipBlock") (not (or (hasKey . "namespaceSelector") (hasKey . "podSelector"))) -}}
{{- $ok = false -}}
{{- end -}}
{{- if and (hasKey . "namespaceSelector") (not (or .namespaceSelector.matchLabels .namespaceSelector.matchExpressions)) -}}
{{- $ok = false -}}
{{- end -}}
{{- end -}}
{{- if $ok -}}true{{- end -}}
{{- end -}}

{{/* Whether a component is installed: "true" or "". */}}
{{- define "tollgate.componentEnabled" -}}
{{- $c := index (include "tollgate.components" .root | fromYaml) .name -}}
{{- if or (not $c.optional) (index .root.Values $c.key "enabled") -}}true{{- end -}}
{{- end -}}

{{/* Image reference of a component: (dict "root" $ "name" "auth-server"). */}}
{{- define "tollgate.image" -}}
{{- $c := index (include "tollgate.components" .root | fromYaml) .name -}}
{{- $v := index .root.Values $c.key -}}
{{- $repo := default (printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) .name) $v.image.repository -}}
{{- $tag := $v.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/*
The host an Ingress rule and its TLS section name for hosts.<ing>: the name
without a :port. The port belongs to the public URLs (a controller on a
non-standard port); an Ingress host is a DNS name only, and the API server
refuses one with a port. (dict "root" $ "ing" "gateway")
*/}}
{{- define "tollgate.ingressHost" -}}
{{- regexReplaceAll ":[0-9]+$" (index .root.Values.hosts .ing) "" -}}
{{- end -}}

{{/* Public URLs, derived from the hosts unless set. */}}
{{- define "tollgate.issuer" -}}
{{- .Values.publicUrls.issuer | default (printf "%s://%s" .Values.publicUrls.scheme .Values.hosts.gateway) | trimSuffix "/" -}}
{{- end -}}
{{- define "tollgate.mcpResource" -}}
{{- .Values.publicUrls.mcpResource | default (printf "%s://%s/mcp" .Values.publicUrls.scheme .Values.hosts.gateway) | trimSuffix "/" -}}
{{- end -}}
{{- define "tollgate.actionsUrl" -}}
{{- .Values.publicUrls.actions | default (printf "%s://%s" .Values.publicUrls.scheme .Values.hosts.actions) | trimSuffix "/" -}}
{{- end -}}
{{- define "tollgate.actionsAudience" -}}
{{- .Values.publicUrls.actionsAudience | default (printf "%s/actions" (include "tollgate.actionsUrl" .)) | trimSuffix "/" -}}
{{- end -}}

{{- define "tollgate.actionsOAuthBase" -}}
{{- .Values.publicUrls.actionsOAuthBase | default (include "tollgate.actionsUrl" .) | trimSuffix "/" -}}
{{- end -}}

{{/* In-cluster addresses. gRPC clients dial the headless Services (every pod, round-robin). */}}
{{- define "tollgate.authGrpcAddr" -}}
{{- printf "%s:%d" (include "tollgate.componentName" (dict "root" . "name" "auth-server-grpc")) (int .Values.ports.grpc) -}}
{{- end -}}
{{- define "tollgate.coreGrpcAddr" -}}
{{- printf "%s:%d" (include "tollgate.componentName" (dict "root" . "name" "capability-core-grpc")) (int .Values.ports.grpc) -}}
{{- end -}}
{{- define "tollgate.devIdpIssuer" -}}
{{- .Values.devIdp.issuerUrl | default (printf "http://%s:%d" (include "tollgate.componentName" (dict "root" . "name" "dev-idp")) (int .Values.ports.http)) | trimSuffix "/" -}}
{{- end -}}

{{/* Redis. */}}
{{/*
The bundled Redis's name, at most 52 characters: the StatefulSet controller
labels its pods controller-revision-hash=<name>-<10-character hash>, and a
label value longer than 63 characters makes every pod creation fail
(kubernetes/kubernetes#64023), so a longer name installs a Redis that never
starts.
*/}}
{{- define "tollgate.redisName" -}}
{{- printf "%s-redis" (include "tollgate.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}
{{- define "tollgate.redisPasswordSecret" -}}
{{- .Values.redis.bundled.existingSecret | default (include "tollgate.redisName" .) -}}
{{- end -}}
{{/*
The bundled Redis's maxmemory in bytes: 70% of its container's memory
limit, the rest left for the AOF rewrite's copy-on-write pages, client
buffers and fragmentation. Without it noeviction never refuses a write:
Redis grows until the kernel kills it at the limit, and then cannot load
its own append-only file again within it. Empty without a memory limit.
*/}}
{{- define "tollgate.redisMaxmemory" -}}
{{- $l := (.Values.redis.bundled.resources.limits | default dict).memory -}}
{{- if $l -}}
{{- $bytes := 0.0 -}}
{{- if kindIs "string" $l -}}
{{- $num := regexFind "^[0-9.]+" $l -}}
{{- $suffix := trimPrefix $num $l -}}
{{- $mult := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if not (hasKey $mult $suffix) -}}
{{- fail (printf "redis.bundled.resources.limits.memory %q: use a Kubernetes quantity with k, M, G, T, Ki, Mi, Gi or Ti (it also sets Redis's maxmemory)" $l) -}}
{{- end -}}
{{- $bytes = mulf (float64 $num) (index $mult $suffix) -}}
{{- else -}}
{{- $bytes = float64 $l -}}
{{- end -}}
{{- mulf $bytes 0.7 | floor | int64 -}}
{{- end -}}
{{- end -}}

{{/*
A Go duration of the values' form (the schema's ([0-9]+(\.[0-9]+)?(ms|s|m|h))+,
e.g. 1m30s) in seconds, for the bounds the services check at start.
*/}}
{{- define "tollgate.durationSeconds" -}}
{{- $unit := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" (toString .) -1 -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $num) (index $unit (trimPrefix $num .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* Whether capability-core logs in to the bundled Redis as the backends' ACL user. */}}
{{- define "tollgate.coreAsBackendUser" -}}
{{- if and .Values.redis.bundled.enabled .Values.redis.bundled.backendUser.enabled -}}true{{- end -}}
{{- end -}}
{{- define "tollgate.redisBackendSecret" -}}
{{- .Values.redis.bundled.backendUser.existingSecret | default (printf "%s-backend" (include "tollgate.redisName" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{/*
The backend ACL user's rules, one per line: files/redis-backend-acl.txt
without its comments, <prefix> replaced by redis.keyPrefix with its glob
characters escaped (a key pattern must not match more than the prefix's
own keys).
*/}}
{{- define "tollgate.redisBackendRules" -}}
{{- $prefix := regexReplaceAll "([*?\\[\\]\\\\])" .Values.redis.keyPrefix "\\${1}" -}}
{{- range splitList "\n" (.Files.Get "files/redis-backend-acl.txt") -}}
{{- $l := trim . -}}
{{- if and $l (not (hasPrefix "#" $l)) -}}
{{- range splitList " " (replace "<prefix>" $prefix $l) -}}
{{- if . }}{{ . }}{{ "\n" }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Secret names. */}}
{{- define "tollgate.signingKeysSecret" -}}
{{- .Values.authServer.signingKeys.existingSecret | default (printf "%s-signing-keys" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- define "tollgate.clientsSecret" -}}
{{- .Values.authServer.clients.existingSecret | default (printf "%s-clients" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- define "tollgate.upstreamSecret" -}}
{{- if .Values.devIdp.enabled -}}
{{- printf "%s-dev-idp" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- .Values.upstream.existingSecret | default (printf "%s-upstream" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}
{{/* "true" when the auth-server authenticates upstream with a private key
(private_key_jwt, or Sign in with Apple's minted client secret), empty with a
client secret. */}}
{{- define "tollgate.upstreamKeyAuth" -}}
{{- if has .Values.upstream.clientAuth (list "private_key_jwt" "apple_client_secret") -}}true{{- end -}}
{{- end -}}
{{- define "tollgate.upstreamSecretKey" -}}
{{- if .Values.devIdp.enabled -}}upstream-client-secret{{- else if .Values.upstream.existingSecret -}}{{ .Values.upstream.existingSecretKey }}{{- else -}}client-secret{{- end -}}
{{- end -}}

{{/* kid of the active signing key. */}}
{{- define "tollgate.activeKid" -}}
{{- $sk := .Values.authServer.signingKeys -}}
{{- if $sk.active -}}
{{- $sk.active -}}
{{- else if $sk.generate -}}
generated
{{- else if eq (len $sk.keys) 1 -}}
{{- keys $sk.keys | first -}}
{{- end -}}
{{- end -}}

{{/*
A value kept across upgrades: the existing Secret's key when the release
already has it, else a fresh value. (dict "root" $ "secret" NAME "key" KEY "new" VALUE)
*/}}
{{- define "tollgate.keep" -}}
{{- $s := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $s $s.data (hasKey $s.data .key) -}}
{{- index $s.data .key | b64dec -}}
{{- else -}}
{{- .new -}}
{{- end -}}
{{- end -}}

{{/*
What rolls the pods when the values naming their secrets change
(docs/operations/secrets-rollout.md): the values the auth-server, the
upstream, the dev IdP and Redis are configured from, with every inline
secret left out, plus secretsGeneration. A pod annotation is readable by
anyone who can get pods, so nothing in it may be computed from a secret:
an unsalted hash of a weak operator-chosen secret is guessed offline.
Inline secrets are replaced by whether they are set; signing keys by their
kids; a URL's password by "redacted". Changing a secret's value alone rolls
nothing: bump secretsGeneration (or kubectl rollout restart). Each
Deployment's key holds only the values whose Secrets it mounts (part: its
component name): the auth-server's all of them; the dev IdP's devIdp and
Redis; every other one Redis alone, so a new authServer or upstream secret
source rolls the auth-server only. (dict "root" $ "part" "redis" |
a component name)
*/}}
{{- define "tollgate.secretsRollKey" -}}
{{- $v := .root.Values -}}
{{- $r := deepCopy $v.redis -}}
{{- $_ := set $r.bundled "password" (ternary "set" "" (not (empty $r.bundled.password))) -}}
{{- $_ := set $r.bundled.backendUser "password" (ternary "set" "" (not (empty $r.bundled.backendUser.password))) -}}
{{- $url := $r.external.url | default "" -}}
{{- /* As go-redis reads it (net/url): the user info ends at the authority's
LAST '@', the user name at the user info's first ':'; an '@' may sit in
either. RE2's greedy [^/?#]*@ reaches that last '@'. */ -}}
{{- $url = regexReplaceAll "^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#]*):[^/?#]*@" $url "${1}:redacted@" -}}
{{- $url = regexReplaceAll "([?&](sentinel_)?password=)[^&#]*" $url "${1}redacted" -}}
{{- $_ := set $r.external "url" $url -}}
{{- if eq .part "redis" -}}
{{- /* The bundled Redis rolls on its own generation, not on the fleet's
secretsGeneration: a restart of the single Redis is an outage. The JSON
keeps the shape it had with secretsGeneration, so a release that never
bumped it does not restart Redis when it takes this chart. */ -}}
{{- $_ := set $r "bundled" (omit $r.bundled "passwordGeneration") -}}
{{- dict "redis" $r "secretsGeneration" $v.redis.bundled.passwordGeneration | toJson -}}
{{- else -}}
{{- $a := deepCopy $v.authServer -}}
{{- $_ := set $a.signingKeys "keys" (keys ($a.signingKeys.keys | default dict) | sortAlpha) -}}
{{- /* The inline client registry does not roll the auth-server: its Secret is
mounted as a projected volume, updated in place, and re-read every
CLIENTS_FILE_RELOAD_INTERVAL. A reload is what records a removed client
for every verifier of the fleet (its access tokens refused at the
connectors); pods restarted with the client already absent would have
nothing to compare with. */ -}}
{{- $_ := set $a.clients "registry" nil -}}
{{- $u := deepCopy $v.upstream -}}
{{- $_ := set $u "clientSecret" (ternary "set" "" (not (empty $u.clientSecret))) -}}
{{- $d := deepCopy $v.devIdp -}}
{{- $_ := set $d "clientSecret" (ternary "set" "" (not (empty $d.clientSecret))) -}}
{{- $users := list -}}
{{- range $d.users -}}
{{- $users = append $users (omit . "password") -}}
{{- end -}}
{{- $_ := set $d "users" $users -}}
{{- if eq .part "auth-server" -}}
{{- dict "authServer" $a "upstream" $u "devIdp" $d "redis" $r "secretsGeneration" $v.secretsGeneration | toJson -}}
{{- else if eq .part "dev-idp" -}}
{{- dict "devIdp" $d "redis" $r "secretsGeneration" $v.secretsGeneration | toJson -}}
{{- else -}}
{{- dict "redis" $r "secretsGeneration" $v.secretsGeneration | toJson -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The annotation on every chart-made Secret that a pod reads at start: the
secretsGeneration it was written with.
*/}}
{{- define "tollgate.secretsGenerationAnnotation" -}}
tollgate/secrets-generation: {{ .Values.secretsGeneration | toString | quote }}
{{- end -}}

{{/*
The bundled Redis's Secrets (its password, its backend user's) record
redis.bundled.passwordGeneration instead: a change of theirs is rolled by
that value, which restarts Redis.
*/}}
{{- define "tollgate.redisPasswordGenerationAnnotation" -}}
tollgate/redis-password-generation: {{ .Values.redis.bundled.passwordGeneration | toString | quote }}
{{- end -}}

{{/*
The chart-made Secrets (templates/secrets.yaml, those annotated with
.annotation) whose data this upgrade changes while the generation the
annotation records (.generation: secretsGeneration, or
redis.bundled.passwordGeneration) stays as the Secret recorded it (or the
Secret predates the annotation): nothing rolls, and a pod started later
reads the new value (docs/operations/secrets-rollout.md). Comma-separated
names, empty on install and offline (helm template: lookup answers
nothing). (dict "root" $ "annotation" "tollgate/secrets-generation"
"generation" $.Values.secretsGeneration)
*/}}
{{- define "tollgate.secretsChangedWithoutBump" -}}
{{- $root := .root -}}
{{- $ann := .annotation -}}
{{- $gen := toString .generation -}}
{{- $names := list -}}
{{- if $root.Release.IsUpgrade -}}
{{- range $doc := splitList "\n---" (include (print $root.Template.BasePath "/secrets.yaml") $root) -}}
{{- $new := fromYaml $doc -}}
{{- if hasKey (dig "metadata" "annotations" dict $new) $ann -}}
{{- $old := lookup "v1" "Secret" $root.Release.Namespace $new.metadata.name -}}
{{- /* A Redis Secret written before it had its own annotation recorded
secretsGeneration, which restarted Redis then. */ -}}
{{- $recorded := dig "metadata" "annotations" $ann (dig "metadata" "annotations" "tollgate/secrets-generation" $gen $old) $old -}}
{{- if and $old (eq (toString $recorded) $gen) -}}
{{- $oldData := $old.data | default dict -}}
{{- $changed := false -}}
{{- range $k, $v := $new.data | default dict -}}
{{- if ne (toString $v) (toString (index $oldData $k | default "")) -}}
{{- $changed = true -}}
{{- end -}}
{{- end -}}
{{- if $changed -}}
{{- $names = append $names $new.metadata.name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- join ", " $names -}}
{{- end -}}

{{/* REDIS_* variables that point at mounted secret files. */}}
{{- define "tollgate.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if not $r.bundled.enabled }}
- name: REDIS_URL_FILE
  value: /etc/tollgate/secrets/redis-url
{{- end }}
{{- if or $r.bundled.enabled $r.external.existingSecretPasswordKey }}
- name: REDIS_PASSWORD_FILE
  value: /etc/tollgate/secrets/redis-password
{{- end }}
{{- if and (not $r.bundled.enabled) $r.external.existingSecret $r.external.existingSecretSentinelPasswordKey }}
- name: REDIS_SENTINEL_PASSWORD_FILE
  value: /etc/tollgate/secrets/redis-sentinel-password
{{- end }}
{{- if and (not $r.bundled.enabled) $r.external.tlsCASecret }}
- name: REDIS_TLS_CA_FILE
  value: /etc/tollgate/secrets/redis-ca.crt
{{- end }}
{{- end -}}

{{/* Projected-volume sources for the Redis URL and password. */}}
{{- define "tollgate.redisSecretSources" -}}
{{- $r := .Values.redis -}}
{{- if $r.bundled.enabled }}
- secret:
    name: {{ include "tollgate.redisPasswordSecret" . }}
    items:
      - key: {{ ternary $r.bundled.existingSecretKey "redis-password" (not (empty $r.bundled.existingSecret)) }}
        path: redis-password
{{- else if $r.external.existingSecret }}
- secret:
    name: {{ $r.external.existingSecret }}
    items:
      - key: {{ $r.external.existingSecretUrlKey }}
        path: redis-url
      {{- if $r.external.existingSecretPasswordKey }}
      - key: {{ $r.external.existingSecretPasswordKey }}
        path: redis-password
      {{- end }}
      {{- if $r.external.existingSecretSentinelPasswordKey }}
      - key: {{ $r.external.existingSecretSentinelPasswordKey }}
        path: redis-sentinel-password
      {{- end }}
{{- else }}
- secret:
    name: {{ include "tollgate.redisName" . }}-url
    items:
      - key: redis-url
        path: redis-url
{{- end }}
{{- if and (not $r.bundled.enabled) $r.external.tlsCASecret }}
- secret:
    name: {{ $r.external.tlsCASecret }}
    items:
      - key: {{ $r.external.tlsCASecretKey }}
        path: redis-ca.crt
{{- end }}
{{- end -}}

{{/* The auth-server's own Secret (generated token HMAC key). */}}
{{- define "tollgate.authSecret" -}}
{{- .Values.authServer.tokenSecret.existingSecret | default (include "tollgate.componentName" (dict "root" . "name" "auth-server")) -}}
{{- end -}}

{{/* Settings every fleet service reads: the data of the shared ConfigMap. */}}
{{- define "tollgate.envData" -}}
TOLLGATE_ENV: {{ .Values.environment | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
LOG_FORMAT: {{ .Values.logFormat | quote }}
SHUTDOWN_TIMEOUT: {{ .Values.shutdownTimeout | quote }}
ADMIN_ADDR: {{ printf ":%d" (int .Values.ports.admin) | quote }}
PUBLIC_ISSUER_URL: {{ include "tollgate.issuer" . | quote }}
MCP_RESOURCE_URL: {{ include "tollgate.mcpResource" . | quote }}
ACTIONS_PUBLIC_URL: {{ include "tollgate.actionsUrl" . | quote }}
ACTIONS_AUDIENCE: {{ include "tollgate.actionsAudience" . | quote }}
ACTIONS_OAUTH_BASE_URL: {{ include "tollgate.actionsOAuthBase" . | quote }}
ALLOWED_ORIGINS: {{ join "," .Values.publicUrls.allowedOrigins | quote }}
AUTH_GRPC_ADDR: {{ include "tollgate.authGrpcAddr" . | quote }}
CORE_GRPC_ADDR: {{ include "tollgate.coreGrpcAddr" . | quote }}
REDIS_KEY_PREFIX: {{ .Values.redis.keyPrefix | quote }}
REDIS_MODE: {{ ternary "standalone" (.Values.redis.external.mode | default "standalone") .Values.redis.bundled.enabled | quote }}
{{- if .Values.redis.bundled.enabled }}
REDIS_URL: {{ printf "redis://%s:6379/0" (include "tollgate.redisName" .) | quote }}
{{- end }}
{{- /* The bundled Redis serves no TLS, and allowPlaintext is the operator's
opt-out: in production the services refuse a password over plain redis://
without it, and log a warning with it (docs/operations/redis.md#plaintext-passwords). */}}
{{- if and (eq .Values.environment "production") (or .Values.redis.bundled.enabled .Values.redis.external.allowPlaintext) }}
REDIS_ALLOW_PLAINTEXT_PASSWORD: "true"
{{- end }}
{{- end -}}

{{/*
Capability backends (docs/guides/bring-your-own-backend.md): what
mcp-gateway, actions-api and the auth-server read. capability-core comes
first, then .Values.backends in order (the earlier one wins a conflict).
*/}}
{{- define "tollgate.capabilityBackends" -}}
{{- $list := list (printf "capability-core=%s" (include "tollgate.coreGrpcAddr" .)) -}}
{{- range .Values.backends -}}
{{- $list = append $list (printf "%s=%s" .name .target) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}

{{/* Directory of a backend's TLS Secret in the pods. */}}
{{- define "tollgate.backendTLSDir" -}}
{{- printf "/etc/tollgate/backends/%s" . -}}
{{- end -}}

{{/* Environment of the backends' readers: the list, the refresh interval and each backend's TLS settings. */}}
{{- define "tollgate.backendEnv" -}}
- name: CAPABILITY_BACKENDS
  value: {{ include "tollgate.capabilityBackends" . | quote }}
- name: CAPABILITY_REFRESH_INTERVAL
  value: {{ .Values.backendRefreshInterval | quote }}
{{- range .Values.backends }}
{{- $tls := .tls | default dict }}
{{- if $tls.enabled }}
{{- $prefix := printf "CAPABILITY_BACKEND_%s_TLS" (.name | upper | replace "-" "_") }}
{{- $dir := include "tollgate.backendTLSDir" .name }}
- name: {{ $prefix }}
  value: "true"
{{- if $tls.ca }}
- name: {{ $prefix }}_CA_FILE
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- end }}
{{- if $tls.clientCertificate }}
- name: {{ $prefix }}_CERT_FILE
  value: {{ printf "%s/tls.crt" $dir | quote }}
- name: {{ $prefix }}_KEY_FILE
  value: {{ printf "%s/tls.key" $dir | quote }}
{{- end }}
{{- with $tls.serverName }}
- name: {{ $prefix }}_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .keepalive }}
- name: {{ printf "CAPABILITY_BACKEND_%s_KEEPALIVE" (.name | upper | replace "-" "_") }}
  value: {{ .keepalive | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volume mounts of the backends' TLS Secrets (one directory per backend). */}}
{{- define "tollgate.backendMounts" -}}
{{- range .Values.backends }}
{{- if (.tls | default dict).secretName }}
- name: backend-{{ .name }}
  mountPath: {{ include "tollgate.backendTLSDir" .name }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes of the backends' TLS Secrets. */}}
{{- define "tollgate.backendVolumes" -}}
{{- range .Values.backends }}
{{- $tls := .tls | default dict }}
{{- if $tls.secretName }}
- name: backend-{{ .name }}
  secret:
    secretName: {{ $tls.secretName }}
    defaultMode: 0440
    items:
      {{- if $tls.ca }}
      - {key: ca.crt, path: ca.crt}
      {{- end }}
      {{- if $tls.clientCertificate }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}
