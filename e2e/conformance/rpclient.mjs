// An OpenID Connect relying party made of panva's openid-client (v6, on
// oauth4webapi; pinned in package-lock.json), run by e2e/conformance
// (rp_test.go) against the fleet's auth-server as a new client of it would
// use it: discovery, registration, the authorization code flow with PKCE,
// state and nonce, refresh, userinfo, introspection, revocation and RFC
// 8707 resource indicators, and the refusals openid-client must report.
// openid-client makes every request and every check itself; this file
// only picks the parameters, plays each step and reports what happened.
//
//   node rpclient.mjs <plan.json>
//
// The plan (written by rp_test.go): {"issuer", "resource", "other_resource",
// "clients": [{"name", "client_id", "auth", "secret", "jwk", "redirect_uri",
// "light"}], "dynamic": [{"name", "auth", "redirect_uri"}]}. auth is the
// token_endpoint_auth_method; jwk the private JWK of private_key_jwt;
// light: the flow without the refusals.
//
// The user's browser is the Go test's: for each sign-in this prints
// "AUTHORIZE <json {url, redirect_uri, deny}>" (deny: press the consent
// page's deny button) and reads one line from standard
// input, "CALLBACK <the URL the browser was redirected to>" or
// "SIGNIN-ERROR <text>".
//
// Each step prints one line "STEP <json>": {"client", "step", "want",
// "got", "ok", "detail"}. want and got are "ok" or the refusal as
// openid-client reported it: "ResponseBodyError <error>",
// "AuthorizationResponseError <error>", "WWWAuthenticateChallengeError
// <scheme> <error> body=<error of the JSON body>", "ClientError <code>".
// A step whose prerequisite failed is reported with got "skipped". The
// last line is "SUMMARY <json {steps, failed}>"; the exit status is 1 when
// any step failed, 2 on an error outside the steps.
import { createHash, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import * as oidc from 'openid-client';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const insecure = { execute: [oidc.allowInsecureRequests] }; // the fleet is http://localhost
const SCOPE = 'openid profile email';

setTimeout(() => {
  console.log('rpclient: gave up after 300 s');
  process.exit(2);
}, 300_000).unref();

const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function signIn(url, redirectURI, deny = false) {
  console.log('AUTHORIZE ' + JSON.stringify({ url: url.href, redirect_uri: redirectURI, deny }));
  const { value, done } = await input.next();
  if (done) throw new Error('standard input closed before the callback');
  if (value.startsWith('CALLBACK ')) return new URL(value.slice('CALLBACK '.length));
  throw new Error('sign-in failed: ' + value);
}

let steps = 0;
let failed = 0;
const SKIP = Symbol('skip');

// step runs fn and reports it: want is "ok" (fn must return) or the
// refusal fn must end with (describe). It returns fn's value, or SKIP when
// the step did not go as wanted. A step with a SKIP among needs is
// reported as skipped.
async function step(client, name, want, needs, fn) {
  steps++;
  let got;
  let detail;
  let value = SKIP;
  if (needs.some((n) => n === SKIP || n === undefined)) {
    got = 'skipped';
    detail = 'a step it needs failed';
  } else {
    try {
      value = await fn();
      got = 'ok';
      detail = summary(value);
    } catch (err) {
      got = await describe(err);
      detail = explain(err);
    }
  }
  const ok = got === want;
  if (!ok) {
    failed++;
    value = SKIP;
  }
  console.log('STEP ' + JSON.stringify({ client, step: name, want, got, ok, detail }));
  return value;
}

function summary(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (v.note) return v.note;
  return '';
}

// describe is a refusal as openid-client reports it.
async function describe(err) {
  if (err instanceof oidc.ResponseBodyError) return `ResponseBodyError ${err.error}`;
  if (err instanceof oidc.AuthorizationResponseError) return `AuthorizationResponseError ${err.error}`;
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    const c = err.cause?.[0] ?? {};
    let body = '';
    try {
      body = (await err.response.json()).error ?? '';
    } catch {
      body = '(no JSON)';
    }
    return `WWWAuthenticateChallengeError ${c.scheme} ${c.parameters?.error ?? '-'} body=${body}`;
  }
  if (err instanceof oidc.ClientError) return `ClientError ${err.code}`;
  return `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
}

function explain(err) {
  const parts = [err?.message ?? String(err)];
  if (err?.error_description) parts.push(`error_description=${err.error_description}`);
  if (err instanceof oidc.ClientError && err.cause) {
    const c = err.cause;
    parts.push(c instanceof Error ? c.message : JSON.stringify(c, (k, v) => (k === 'claims' ? undefined : v)).slice(0, 300));
  }
  return parts.join('; ');
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function jwtPayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

// at_hash (OpenID Connect Core §3.1.3.6, RS256): the left half of the
// SHA-256 of the access token, base64url.
function atHash(accessToken) {
  return createHash('sha256').update(accessToken, 'ascii').digest().subarray(0, 16).toString('base64url');
}

async function clientAuth(c, { wrong = false } = {}) {
  switch (c.auth) {
    case 'client_secret_basic':
      return oidc.ClientSecretBasic(wrong ? 'not-' + c.secret : c.secret);
    case 'client_secret_post':
      return oidc.ClientSecretPost(wrong ? 'not-' + c.secret : c.secret);
    case 'none':
      return oidc.None();
    case 'private_key_jwt': {
      let jwk = c.jwk;
      if (wrong) {
        // a key of the right kind that the client did not register
        const pair = await webcrypto.subtle.generateKey(
          { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
          true, ['sign', 'verify']);
        jwk = { ...(await webcrypto.subtle.exportKey('jwk', pair.privateKey)), kid: c.jwk.kid };
      }
      const { kid, ...material } = jwk;
      delete material.alg;
      delete material.use;
      const key = await webcrypto.subtle.importKey('jwk', material, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
      return oidc.PrivateKeyJwt({ key, kid });
    }
    default:
      throw new Error('unknown auth ' + c.auth);
  }
}

function clientMetadata(c) {
  return { client_id: c.client_id, redirect_uris: [c.redirect_uri], token_endpoint_auth_method: c.auth };
}

// authorize signs in for config's client and returns the callback URL and
// the checks of the request.
async function authorize(config, c, { scope = SCOPE, resource = plan.resource, pkce = true, extra = {}, deny = false, openid = true } = {}) {
  const pkceCodeVerifier = oidc.randomPKCECodeVerifier();
  const expectedState = oidc.randomState();
  const expectedNonce = openid ? oidc.randomNonce() : undefined;
  const params = { redirect_uri: c.redirect_uri, scope, state: expectedState, ...extra };
  if (openid) params.nonce = expectedNonce;
  if (pkce) {
    params.code_challenge = await oidc.calculatePKCECodeChallenge(pkceCodeVerifier);
    params.code_challenge_method = 'S256';
  }
  if (resource) params.resource = resource;
  const callback = await signIn(oidc.buildAuthorizationUrl(config, params), c.redirect_uri, deny);
  return { callback, checks: openid ? { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true } : { pkceCodeVerifier, expectedState } };
}

// redeem is authorizationCodeGrant with every check: RFC 9207 iss, state,
// PKCE, the ID token (signature, iss, aud, exp, iat, nonce), then at_hash,
// the access token's audience (RFC 8707) and a refresh token.
async function redeem(config, a, resource = plan.resource) {
  const tokens = await oidc.authorizationCodeGrant(config, a.callback, a.checks, resource ? { resource } : undefined);
  const claims = tokens.claims();
  check(claims && typeof claims.sub === 'string' && claims.sub !== '', 'the ID token has a sub');
  check(claims.nonce === a.checks.expectedNonce, 'the ID token carries the nonce');
  check(typeof claims.at_hash === 'string', 'the ID token has at_hash');
  check(claims.at_hash === atHash(tokens.access_token), `at_hash ${claims.at_hash} is the access token's (${atHash(tokens.access_token)})`);
  check(tokens.token_type === 'bearer', `token_type ${tokens.token_type}`);
  check(typeof tokens.refresh_token === 'string', 'a refresh token');
  check(tokens.expiresIn() > 0, 'expires_in');
  if (resource) {
    const aud = jwtPayload(tokens.access_token).aud;
    check(aud === resource || (Array.isArray(aud) && aud.length === 1 && aud[0] === resource), `access token aud ${JSON.stringify(aud)} is ${resource}`);
  }
  return { tokens, claims, note: `sub ${claims.sub}, scope ${tokens.scope}` };
}

// flow plays a client's whole life with config: sign-in and code grant,
// userinfo, refreshes, an MCP call, introspection, revocation, end
// session, then (unless c.light) the refusals.
async function flow(name, c, config) {
  const meta = config === SKIP ? SKIP : config.serverMetadata();
  const confidential = c.auth !== 'none';

  const first = await step(name, 'authorization-code-grant', 'ok', [config], async () => redeem(config, await authorize(config, c)));
  const sub = first === SKIP ? SKIP : first.claims.sub;
  await step(name, 'userinfo', 'ok', [first], async () => {
    const info = await oidc.fetchUserInfo(config, first.tokens.access_token, sub);
    check(info.sub === sub, 'userinfo sub');
    return `sub ${info.sub}, ${Object.keys(info).sort().join(' ')}`;
  });
  const refreshed = await step(name, 'refresh', 'ok', [first], async () => {
    const t = await oidc.refreshTokenGrant(config, first.tokens.refresh_token, { resource: plan.resource });
    check(typeof t.refresh_token === 'string' && t.refresh_token !== first.tokens.refresh_token, 'a new refresh token (rotation)');
    check(jwtPayload(t.access_token).aud === plan.resource || jwtPayload(t.access_token).aud?.[0] === plan.resource, 'the refreshed token keeps the audience');
    check(jwtPayload(t.access_token).sub === sub, 'the refreshed token keeps the subject');
    return { tokens: t, note: `scope ${t.scope}` };
  });
  // Refused refreshes leave the refresh token usable (the next step uses
  // it): another resource (RFC 8707 §2.2) and a scope the grant lacks
  // (RFC 6749 §6).
  await step(name, 'refused-refresh-other-resource', 'ResponseBodyError invalid_target', [refreshed], () =>
    oidc.refreshTokenGrant(config, refreshed.tokens.refresh_token, { resource: plan.other_resource }));
  await step(name, 'refused-refresh-wider-scope', 'ResponseBodyError invalid_scope', [refreshed], () =>
    oidc.refreshTokenGrant(config, refreshed.tokens.refresh_token, { scope: SCOPE + ' offline_access', resource: plan.resource }));
  // OpenID Connect Core §12.2: a refresh asking for openid may return an
  // ID token; openid-client validates it (iss, aud, sub, exp, iat).
  const refreshedID = await step(name, 'refresh-with-id-token', 'ok', [refreshed], async () => {
    const t = await oidc.refreshTokenGrant(config, refreshed.tokens.refresh_token, { scope: 'openid', resource: plan.resource });
    const claims = t.claims();
    check(claims !== undefined, 'an ID token for scope=openid');
    check(claims.sub === sub, 'the ID token keeps sub (OIDC Core §12.2)');
    check(claims.aud === first.claims.aud || JSON.stringify(claims.aud) === JSON.stringify(first.claims.aud), 'the ID token keeps aud');
    check(claims.auth_time === first.claims.auth_time, 'auth_time is the original authentication time (OIDC Core §12.2)');
    check(claims.azp === first.claims.azp, 'azp as in the original ID token (OIDC Core §12.2)');
    check(claims.nonce === undefined || claims.nonce === first.claims.nonce, 'no nonce, or the original one');
    check(claims.at_hash === undefined || claims.at_hash === atHash(t.access_token), 'at_hash, if present, is the new access token\'s');
    return { tokens: t, note: `scope ${t.scope}, nonce ${claims.nonce === undefined ? 'absent' : 'kept'}, at_hash ${claims.at_hash === undefined ? 'absent' : 'matches'}` };
  });
  const live = refreshedID === SKIP ? SKIP : refreshedID.tokens;
  // The MCP authorization spec's use of the token: a bearer at the
  // resource it was issued for (RFC 8707), here an MCP initialize.
  await step(name, 'mcp-with-access-token', 'ok', [live], () => callMCP(config, live.access_token));
  if (meta !== SKIP && meta.introspection_endpoint) {
    if (confidential) {
      await step(name, 'introspection', 'ok', [live], async () => {
        const r = await oidc.tokenIntrospection(config, live.access_token);
        check(r.active === true, 'active');
        check(r.sub === sub, 'introspection sub');
        check(r.client_id === c.client_id, 'introspection client_id');
        check(r.aud === plan.resource || (Array.isArray(r.aud) && r.aud.includes(plan.resource)), `introspection aud ${JSON.stringify(r.aud)}`);
        check(r.token_type === 'Bearer' && r.token_use === 'access_token', `introspection token_type ${r.token_type}, token_use ${r.token_use}`);
        return `active, token_type ${r.token_type}, scope ${r.scope}`;
      });
      await step(name, 'introspection-refresh-token', 'ok', [live], async () => {
        const r = await oidc.tokenIntrospection(config, live.refresh_token, { token_type_hint: 'refresh_token' });
        check(r.active === true, 'active');
        check(r.client_id === c.client_id, 'introspection client_id');
        // A refresh token has no access token type (RFC 7662 §2.2, RFC 6749 §7.1).
        check(r.token_use === 'refresh_token' && r.token_type === undefined, `introspection token_use ${r.token_use}, token_type ${r.token_type}`);
        return `active, token_use ${r.token_use}`;
      });
    } else {
      // RFC 7662 §2.1: the endpoint requires client authentication.
      await step(name, 'introspection-public-client-refused', 'ResponseBodyError invalid_client', [live], () =>
        oidc.tokenIntrospection(config, live.access_token));
    }
  }
  await step(name, 'revocation', 'ok', [live], async () => {
    await oidc.tokenRevocation(config, live.refresh_token);
    return 'revoked the refresh token';
  });
  await step(name, 'refresh-after-revocation', 'ResponseBodyError invalid_grant', [live], () =>
    oidc.refreshTokenGrant(config, live.refresh_token));
  await step(name, 'userinfo-after-revocation', 'WWWAuthenticateChallengeError bearer invalid_token body=invalid_token', [live], () =>
    oidc.fetchUserInfo(config, live.access_token, sub));
  if (confidential && meta !== SKIP && meta.introspection_endpoint) {
    await step(name, 'introspection-after-revocation', 'ok', [live], async () => {
      const r = await oidc.tokenIntrospection(config, live.access_token);
      check(r.active === false, 'inactive after the grant was revoked');
      return 'inactive';
    });
  }
  // RP-Initiated Logout 1.0: the auth-server keeps no login session, so it
  // advertises no end_session_endpoint (docs/reference/oauth.md).
  await step(name, 'end-session', 'ok', [config], async () => {
    if (!meta.end_session_endpoint) {
      let threw = false;
      try {
        oidc.buildEndSessionUrl(config, {});
      } catch {
        threw = true;
      }
      check(threw, 'buildEndSessionUrl refuses without end_session_endpoint');
      return 'not advertised';
    }
    const u = oidc.buildEndSessionUrl(config, { id_token_hint: refreshedID.tokens.id_token });
    const r = await fetch(u, { redirect: 'manual' });
    check(r.status < 400, `end session answered ${r.status}`);
    return `advertised, answered ${r.status}`;
  });

  if (!c.light) await refusals(name, c, config);
}

// callMCP sends an MCP initialize to the resource with the access token
// (openid-client's fetchProtectedResource) and wants a JSON-RPC result.
async function callMCP(config, accessToken) {
  const body = JSON.stringify({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'openid-client-rp', version: '1' } },
  });
  const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
  const r = await oidc.fetchProtectedResource(config, accessToken, new URL(plan.resource), 'POST', body, headers);
  const text = await r.text();
  check(r.status === 200, `POST ${plan.resource} answered ${r.status}: ${text.slice(0, 200)}`);
  check(text.includes('"result"') && text.includes('protocolVersion'), `an initialize result: ${text.slice(0, 200)}`);
  return `initialize answered ${r.status}`;
}

// refusals: what openid-client must refuse, each on an authorization of
// its own.
async function refusals(name, c, config) {
  // Client-side checks of the authorization response (state, RFC 9207
  // iss), then the same code redeemed: it was not spent by them.
  const a = await step(name, 'sign-in', 'ok', [config], () => authorize(config, c));
  await step(name, 'refused-wrong-state', 'ClientError OAUTH_INVALID_RESPONSE', [a], () =>
    oidc.authorizationCodeGrant(config, a.callback, { ...a.checks, expectedState: oidc.randomState() }, { resource: plan.resource }));
  await step(name, 'refused-wrong-iss', 'ClientError OAUTH_INVALID_RESPONSE', [a], () => {
    const u = new URL(a.callback);
    u.searchParams.set('iss', plan.issuer + '/elsewhere');
    return oidc.authorizationCodeGrant(config, u, a.checks, { resource: plan.resource });
  });
  await step(name, 'refused-missing-iss', 'ClientError OAUTH_INVALID_RESPONSE', [a], () => {
    const u = new URL(a.callback);
    u.searchParams.delete('iss');
    return oidc.authorizationCodeGrant(config, u, a.checks, { resource: plan.resource });
  });
  const redeemed = await step(name, 'code-grant-after-client-refusals', 'ok', [a], () => redeem(config, a));
  await step(name, 'refused-reused-code', 'ResponseBodyError invalid_grant', [redeemed], () =>
    oidc.authorizationCodeGrant(config, a.callback, a.checks, { resource: plan.resource }));
  // RFC 6749 §4.1.2, RFC 9700 §4.1.1: a reused code revokes its grant.
  await step(name, 'refused-refresh-after-code-reuse', 'ResponseBodyError invalid_grant', [redeemed], () =>
    oidc.refreshTokenGrant(config, redeemed.tokens.refresh_token));

  // The nonce is checked by the client on the ID token of a successful
  // token response.
  const n = await step(name, 'sign-in-for-nonce', 'ok', [config], () => authorize(config, c));
  await step(name, 'refused-wrong-nonce', 'ClientError OAUTH_JWT_CLAIM_COMPARISON_FAILED', [n], () =>
    oidc.authorizationCodeGrant(config, n.callback, { ...n.checks, expectedNonce: oidc.randomNonce() }, { resource: plan.resource }));

  // RFC 6749 §4.1.3: redirect_uri must be the authorization request's.
  const r = await step(name, 'sign-in-for-redirect-uri', 'ok', [config], () => authorize(config, c));
  await step(name, 'refused-wrong-redirect-uri', 'ResponseBodyError invalid_grant', [r], () => {
    const u = new URL(r.callback);
    u.pathname += '-elsewhere'; // the redirect_uri openid-client sends is the callback URL without its query
    return oidc.authorizationCodeGrant(config, u, r.checks, { resource: plan.resource });
  });

  // RFC 7636 §4.6: the verifier must match the challenge.
  const v = await step(name, 'sign-in-for-verifier', 'ok', [config], () => authorize(config, c));
  await step(name, 'refused-wrong-code-verifier', 'ResponseBodyError invalid_grant', [v], () =>
    oidc.authorizationCodeGrant(config, v.callback, { ...v.checks, pkceCodeVerifier: oidc.randomPKCECodeVerifier() }, { resource: plan.resource }));

  // RFC 8707 §2: another resource than the grant's at the token endpoint,
  // and one the client may not use at the authorization endpoint.
  const t = await step(name, 'sign-in-for-resource', 'ok', [config], () => authorize(config, c));
  await step(name, 'refused-token-resource-not-the-grants', 'ResponseBodyError invalid_target', [t], () =>
    oidc.authorizationCodeGrant(config, t.callback, t.checks, { resource: plan.other_resource }));
  const unknownResource = plan.issuer + '/not-a-resource';
  const ur = await step(name, 'sign-in-unknown-resource', 'ok', [config], () => authorize(config, c, { resource: unknownResource }));
  await step(name, 'refused-authorization-unknown-resource', 'AuthorizationResponseError invalid_target', [ur], () =>
    oidc.authorizationCodeGrant(config, ur.callback, ur.checks, { resource: unknownResource }));

  // An error redirect (RFC 6749 §4.1.2.1) with state and iss, which
  // openid-client checks before it reports the error.
  const s = await step(name, 'sign-in-unknown-scope', 'ok', [config], () => authorize(config, c, { scope: 'openid no-such-scope' }));
  await step(name, 'refused-unknown-scope', 'AuthorizationResponseError invalid_scope', [s], () =>
    oidc.authorizationCodeGrant(config, s.callback, s.checks, { resource: plan.resource }));

  // OAuth 2.1 §4.1.1, RFC 7636: PKCE is required (S256); an error
  // redirect openid-client reports.
  const p = await step(name, 'sign-in-without-pkce', 'ok', [config], () => authorize(config, c, { pkce: false }));
  await step(name, 'refused-without-pkce', 'AuthorizationResponseError invalid_request', [p], () =>
    oidc.authorizationCodeGrant(config, p.callback, p.checks, { resource: plan.resource }));

  // OpenID Connect Core §3.1.2.1: prompt=none, and the auth-server keeps
  // no login session of its own.
  const pn = await step(name, 'sign-in-prompt-none', 'ok', [config], () => authorize(config, c, { extra: { prompt: 'none' } }));
  await step(name, 'refused-prompt-none', 'AuthorizationResponseError login_required', [pn], () =>
    oidc.authorizationCodeGrant(config, pn.callback, pn.checks, { resource: plan.resource }));

  // max_age (OpenID Connect Core §3.1.2.1): openid-client then requires
  // auth_time in the ID token, no older than max_age.
  const ma = await step(name, 'sign-in-max-age', 'ok', [config], () => authorize(config, c, { extra: { max_age: '600' } }));
  const maxAged = await step(name, 'code-grant-max-age', 'ok', [ma], async () => {
    const r = await redeem(config, { ...ma, checks: { ...ma.checks, maxAge: 600 } });
    check(typeof r.claims.auth_time === 'number', 'auth_time');
    return { ...r, note: `auth_time ${r.claims.auth_time}` };
  });
  // RFC 7009 §2.1: revoking the access token (the auth-server revokes
  // its whole grant).
  await step(name, 'revocation-access-token', 'ok', [maxAged], async () => {
    await oidc.tokenRevocation(config, maxAged.tokens.access_token, { token_type_hint: 'access_token' });
    return 'revoked the access token';
  });
  await step(name, 'userinfo-after-access-token-revocation', 'WWWAuthenticateChallengeError bearer invalid_token body=invalid_token', [maxAged], () =>
    oidc.fetchUserInfo(config, maxAged.tokens.access_token, maxAged.claims.sub));
  await step(name, 'refresh-after-access-token-revocation', 'ResponseBodyError invalid_grant', [maxAged], () =>
    oidc.refreshTokenGrant(config, maxAged.tokens.refresh_token));

  // RFC 8707: a token for the other resource does not open /mcp (static
  // clients may use both; a self-registered one the MCP resource only).
  if (!c.dynamic) {
    const ac = await step(name, 'sign-in-for-other-resource', 'ok', [config], () => authorize(config, c, { resource: plan.other_resource }));
    const other = await step(name, 'code-grant-other-resource', 'ok', [ac], () => redeem(config, ac, plan.other_resource));
    await step(name, 'refused-other-resource-token-at-mcp', 'WWWAuthenticateChallengeError bearer invalid_token body=invalid_token', [other], () =>
      callMCP(config, other.tokens.access_token));
  }

  // Plain OAuth 2.1, as an MCP client that asks for no openid scope: no
  // ID token, the token works at /mcp, userinfo answers insufficient_scope
  // (RFC 6750 §3.1).
  const o = await step(name, 'sign-in-without-openid', 'ok', [config], () => authorize(config, c, { scope: 'profile', openid: false }));
  const plain = await step(name, 'code-grant-without-openid', 'ok', [o], async () => {
    const t = await oidc.authorizationCodeGrant(config, o.callback, o.checks, { resource: plan.resource });
    check(t.id_token === undefined, 'no ID token without openid');
    check(t.scope === 'profile', `scope ${t.scope}`);
    check(jwtPayload(t.access_token).aud === plan.resource || jwtPayload(t.access_token).aud?.[0] === plan.resource, 'audience');
    return { tokens: t, note: `scope ${t.scope}` };
  });
  await step(name, 'mcp-without-openid', 'ok', [plain], () => callMCP(config, plain.tokens.access_token));
  await step(name, 'refused-userinfo-without-openid', 'WWWAuthenticateChallengeError bearer insufficient_scope body=insufficient_scope', [plain], () =>
    oidc.fetchUserInfo(config, plain.tokens.access_token, oidc.skipSubjectCheck));

  // RFC 6749 §5.2: a grant type the server does not support.
  await step(name, 'refused-client-credentials-grant', 'ResponseBodyError unsupported_grant_type', [config], () =>
    oidc.clientCredentialsGrant(config, { resource: plan.resource }));

  // A self-registered client gets the consent page for a scope the user
  // has not approved yet; the user refuses (RFC 6749 §4.1.2.1).
  if (c.dynamic) {
    const dn = await step(name, 'sign-in-consent-denied', 'ok', [config], () => authorize(config, c, { scope: SCOPE + ' offline_access', deny: true }));
    await step(name, 'refused-consent-denied', 'AuthorizationResponseError access_denied', [dn], () =>
      oidc.authorizationCodeGrant(config, dn.callback, dn.checks, { resource: plan.resource }));
    // prompt=consent (OpenID Connect Core §3.1.2.1) shows the page although
    // the scope was approved before: refused there, no code.
    const pc = await step(name, 'sign-in-prompt-consent-denied', 'ok', [config], () => authorize(config, c, { extra: { prompt: 'consent' }, deny: true }));
    await step(name, 'refused-prompt-consent-denied', 'AuthorizationResponseError access_denied', [pc], () =>
      oidc.authorizationCodeGrant(config, pc.callback, pc.checks, { resource: plan.resource }));
  }

  // Wrong client credentials at the token endpoint (RFC 6749 §5.2).
  if (c.auth !== 'none') {
    const w = await step(name, 'sign-in-for-credentials', 'ok', [config], () => authorize(config, c));
    // RFC 6749 §5.2: a client that used HTTP Basic gets 401 with a Basic
    // challenge, which oauth4webapi reports as a challenge error.
    const want = c.auth === 'client_secret_basic'
      ? 'WWWAuthenticateChallengeError basic - body=invalid_client'
      : 'ResponseBodyError invalid_client';
    await step(name, 'refused-wrong-client-credentials', want, [w], async () => {
      const wrong = new oidc.Configuration(config.serverMetadata(), c.client_id, clientMetadata(c), await clientAuth(c, { wrong: true }));
      oidc.allowInsecureRequests(wrong);
      return oidc.authorizationCodeGrant(wrong, w.callback, w.checks, { resource: plan.resource });
    });
  }
}

async function discover(name, c) {
  const auth = await clientAuth(c);
  const config = await step(name, 'discovery-openid-configuration', 'ok', [], async () => {
    const cfg = await oidc.discovery(new URL(plan.issuer), c.client_id, clientMetadata(c), auth, insecure);
    const m = cfg.serverMetadata();
    check(m.issuer === plan.issuer, `issuer ${m.issuer}`);
    check(m.code_challenge_methods_supported?.includes('S256'), 'S256 advertised');
    check(m.authorization_response_iss_parameter_supported === true, 'RFC 9207 iss advertised');
    check(m.token_endpoint_auth_methods_supported?.includes(c.auth), `${c.auth} advertised`);
    return cfg;
  });
  await step(name, 'discovery-oauth-authorization-server', 'ok', [config], async () => {
    const cfg = await oidc.discovery(new URL(plan.issuer), c.client_id, clientMetadata(c), auth, { ...insecure, algorithm: 'oauth2' });
    const a = JSON.stringify(sorted(cfg.serverMetadata()));
    const b = JSON.stringify(sorted(config.serverMetadata()));
    check(a === b, 'RFC 8414 metadata is the OpenID configuration');
    return 'same document';
  });
  return config;
}

function sorted(o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function main() {
  const configs = new Map();
  for (const c of plan.clients) {
    const config = await discover(c.name, c);
    configs.set(c.name, config);
    await flow(c.name, c, config);
  }
  // RFC 6749 §4.1.3: a code is redeemed only by the client it was
  // issued to; the same redirect URI, state and verifier, another client.
  const [owner, other] = plan.clients;
  const ownerConfig = configs.get(owner.name);
  const otherConfig = configs.get(other.name);
  const cross = await step('cross-client', 'sign-in', 'ok', [ownerConfig, otherConfig], () => authorize(ownerConfig, owner));
  await step('cross-client', 'refused-code-of-another-client', 'ResponseBodyError invalid_grant', [cross], () =>
    oidc.authorizationCodeGrant(otherConfig, cross.callback, cross.checks, { resource: plan.resource }));
  await step('cross-client', 'code-grant-by-its-client', 'ok', [cross], () => redeem(ownerConfig, cross));

  for (const d of plan.dynamic ?? []) {
    // RFC 7591 through openid-client: discovery, then registration at the
    // advertised registration_endpoint.
    const registered = await step(d.name, 'dynamic-client-registration', 'ok', [], async () => {
      const auth = d.auth === 'none' ? oidc.None() : d.auth === 'client_secret_post' ? oidc.ClientSecretPost() : oidc.ClientSecretBasic();
      const cfg = await oidc.dynamicClientRegistration(new URL(plan.issuer), {
        client_name: `openid-client registered itself (${d.auth})`, redirect_uris: [d.redirect_uri], token_endpoint_auth_method: d.auth,
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], scope: SCOPE,
      }, auth, insecure);
      const m = cfg.clientMetadata();
      check(typeof m.client_id === 'string' && m.client_id !== '', 'a client_id');
      check(d.auth === 'none' ? m.client_secret === undefined : typeof m.client_secret === 'string', 'a secret exactly for a confidential client');
      return { cfg, c: { name: d.name, client_id: m.client_id, auth: d.auth, secret: m.client_secret, redirect_uri: d.redirect_uri, dynamic: true }, note: m.client_id };
    });
    if (registered === SKIP) continue;
    await flow(d.name, registered.c, registered.cfg);
  }
  console.log('SUMMARY ' + JSON.stringify({ steps, failed }));
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((err) => {
  console.log('rpclient: ' + (err?.stack ?? err));
  process.exit(2);
});
