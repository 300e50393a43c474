// An MCP client made of the official MCP TypeScript SDK and its OAuth
// support, run by e2e/conformance (sdk_test.go) against the fleet's /mcp.
// The SDK does all of the discovery and authorization itself: the 401's
// WWW-Authenticate, RFC 9728 protected resource metadata, RFC 8414
// authorization server metadata, RFC 7591 registration (unless a client id
// is given), PKCE S256 and RFC 8707 resource. This file only keeps the
// state the SDK asks for in memory and receives the redirect.
//
//   node sdkclient.mjs <MCP URL> <callback port> [--callback-fd N] [--client-id ID] [--client-secret S] [--state] [--sse] [--step-up] [--calls FILE]
//
// --callback-fd N: the callback server accepts on the listening socket the
// parent handed over as file descriptor N (bound to <callback port>), so
// no other process can take the port between its choice and its use.
//
// Prints "AUTHORIZE <url>" when the user must sign in (the Go test plays the
// browser and sends the redirect to http://127.0.0.1:<port>/callback),
// then "TOOLS <json names>" after tools/list and "CALLED <tool>" after a
// successful call of the health check tool, and exits 0; on any error it
// prints "sdkclient: [error=<OAuth error code>: ]<error>" and exits 1.
//
// --step-up: then calls connections.revoke (connections_revoke), whose
// scope the first sign-in did not ask for (a destructive tool's): the
// server answers 403 insufficient_scope (MCP Scope Challenge Handling), the
// SDK's transport authorizes again with the challenge's scope (a second
// "AUTHORIZE <url>"), and the call is sent again with the new token. It
// prints "STEPPED-UP <scope granted>" and "CALLED <tool>" once the call is
// answered with a result (a tool error for the made-up grant id is a
// result: the scope was not refused). The provider hands the SDK no
// refresh token in this mode: @modelcontextprotocol/sdk 1.32.2 refreshes
// instead of authorizing again when it holds one, and a refresh keeps the
// grant's scopes (its issue 2255; docs/reference/mcp.md).
//
// --calls FILE: then calls the tools FILE lists (a JSON array of {"tool":
// "<dotted name>", "arguments": {…}, "doctored": [{…}, …]}) through
// Client.callTool, which validates each result's structuredContent against
// the tool's outputSchema with the SDK's own validator (compiled by
// listTools) and throws when it does not match. It prints "RESULT <tool>
// <structuredContent as JSON>" for each result, or "TOOLERROR <tool>
// <content as JSON>" for a tool error; then, for each object of
// "doctored", the result with that object's members put over it, judged
// by the same validator: "DOCTORED <tool> <index> valid|invalid
// [<error>]" (what the validator lets through that the schema forbids).
import fs from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpURL, port, ...rest] = process.argv.slice(2);
const flag = (name) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
const clientID = flag('--client-id');
const clientSecret = flag('--client-secret');
const withState = rest.includes('--state');
const stepUp = rest.includes('--step-up');
const callbackFD = flag('--callback-fd');
const callsFile = flag('--calls');
// --sse: the legacy HTTP+SSE transport (GET <url>, POST to the endpoint it names).
const Transport = rest.includes('--sse') ? SSEClientTransport : StreamableHTTPClientTransport;
const redirectUrl = `http://127.0.0.1:${port}/callback`;

setTimeout(() => {
  console.error('sdkclient: gave up after 60 s');
  process.exit(1);
}, 60_000).unref();

// The redirects, in order: each resolves with the code, or rejects with
// the error response. The server stays up for a step-up's second one.
const waiting = [];
const arrived = [];
const nextRedirect = () => (arrived.length ? arrived.shift() : new Promise((resolve, reject) => waiting.push({ resolve, reject })));
const server = http.createServer((req, res) => {
  const u = new URL(req.url, redirectUrl);
  if (u.pathname !== '/callback') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
  const q = u.searchParams;
  let outcome;
  if (q.get('error')) {
    outcome = Promise.reject(new Error(`authorization error response: ${q.get('error')}: ${q.get('error_description') ?? ''}`));
  } else if (withState && q.get('state') !== sentState) {
    outcome = Promise.reject(new Error(`state ${q.get('state')} is not the one sent (${sentState})`));
  } else if (!q.get('code')) {
    outcome = Promise.reject(new Error(`redirect without code: ${u}`));
  } else {
    outcome = Promise.resolve(q.get('code'));
  }
  outcome.catch(() => {}); // reported where it is awaited
  const w = waiting.shift();
  if (w) {
    outcome.then(w.resolve, w.reject);
  } else {
    arrived.push(outcome);
  }
});

let sentState;
let info = clientID ? { client_id: clientID, ...(clientSecret ? { client_secret: clientSecret } : {}) } : undefined;
let tokens;
let verifier;
const provider = {
  get redirectUrl() {
    return redirectUrl;
  },
  get clientMetadata() {
    return {
      client_name: 'Tollgate e2e (MCP TypeScript SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: clientSecret ? 'client_secret_basic' : 'none',
    };
  },
  ...(withState
    ? {
        state() {
          sentState = randomBytes(16).toString('base64url');
          return sentState;
        },
      }
    : {}),
  clientInformation: () => info,
  saveClientInformation: (i) => {
    info = i;
  },
  tokens: () => tokens,
  saveTokens: (t) => {
    tokens = t;
    if (stepUp) {
      delete tokens.refresh_token; // see --step-up above
    }
  },
  redirectToAuthorization: (url) => {
    console.log(`AUTHORIZE ${url.href}`);
  },
  saveCodeVerifier: (v) => {
    verifier = v;
  },
  codeVerifier: () => verifier,
};

async function main() {
  // Listen before anything can print AUTHORIZE.
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    if (callbackFD !== undefined) {
      server.listen({ fd: Number(callbackFD) }, resolve);
    } else {
      server.listen(Number(port), '127.0.0.1', resolve);
    }
  });
  let client = new Client({ name: 'tollgate-e2e-sdk', version: '1.0.0' });
  let transport = new Transport(new URL(mcpURL), { authProvider: provider });
  try {
    await client.connect(transport);
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await transport.finishAuth(await nextRedirect());
    // A Client whose SSE transport failed to start still holds it: connect
    // again with a fresh one.
    client = new Client({ name: 'tollgate-e2e-sdk', version: '1.0.0' });
    transport = new Transport(new URL(mcpURL), { authProvider: provider });
    await client.connect(transport);
  }
  const { tools } = await client.listTools();
  console.log(`TOOLS ${JSON.stringify(tools.map((t) => t.name))}`);
  // One tool call with the token: health.check (health_check with
  // MCP_TOOL_NAME_STYLE=underscore) needs no scope beyond the resource.
  const health = tools.find((t) => /^health[._]check$/.test(t.name));
  if (!health) throw new Error('no health check tool in tools/list');
  const result = await client.callTool({ name: health.name, arguments: {} });
  if (result.isError) throw new Error(`${health.name}: ${JSON.stringify(result.content)}`);
  console.log(`CALLED ${health.name}`);
  if (callsFile) {
    for (const call of JSON.parse(fs.readFileSync(callsFile, 'utf8'))) {
      // The gateway may name tools with underscores (MCP_TOOL_NAME_STYLE).
      const tool = tools.find((t) => t.name === call.tool || t.name === call.tool.replaceAll('.', '_'));
      if (!tool) throw new Error(`no tool ${call.tool} in tools/list`);
      const res = await client.callTool({ name: tool.name, arguments: call.arguments });
      if (res.isError) {
        console.log(`TOOLERROR ${call.tool} ${JSON.stringify(res.content)}`);
        continue;
      }
      console.log(`RESULT ${call.tool} ${JSON.stringify(res.structuredContent)}`);
      const validate = client.getToolOutputValidator(tool.name);
      (call.doctored ?? []).forEach((over, i) => {
        const v = validate({ ...res.structuredContent, ...over });
        console.log(`DOCTORED ${call.tool} ${i} ${v.valid ? 'valid' : `invalid ${v.errorMessage}`}`);
      });
    }
  }
  if (stepUp) {
    const revoke = tools.find((t) => /^connections[._]revoke$/.test(t.name));
    if (!revoke) throw new Error('no connections.revoke tool in tools/list');
    const args = { name: revoke.name, arguments: { grant_id: 'sdkclient-no-such-grant' } };
    let res;
    try {
      res = await client.callTool(args);
      throw new Error(`${revoke.name} answered without a step-up: ${JSON.stringify(res)}`);
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
    }
    await transport.finishAuth(await nextRedirect());
    console.log(`STEPPED-UP ${tokens.scope}`);
    res = await client.callTool(args);
    if (JSON.stringify(res).includes('insufficient_scope')) throw new Error(`${revoke.name} still refused: ${JSON.stringify(res)}`);
    console.log(`CALLED ${revoke.name}`);
  }
  server.close();
  await client.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    // OAuth errors carry the server's error code (RFC 6749 §5.2).
    const code = err?.errorCode ? `error=${err.errorCode}: ` : '';
    console.error(`sdkclient: ${code}${err?.stack ?? err}`);
    process.exit(1);
  },
);
