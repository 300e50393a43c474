// An MCP client made of the official MCP TypeScript SDK and its OAuth
// support, run by e2e/conformance (sdk_test.go) against the fleet's /mcp.
// The SDK does all of the discovery and authorization itself: the 401's
// WWW-Authenticate, RFC 9728 protected resource metadata, RFC 8414
// authorization server metadata, RFC 7591 registration (unless a client id
// is given), PKCE S256 and RFC 8707 resource. This file only keeps the
// state the SDK asks for in memory and receives the redirect.
//
//   node sdkclient.mjs <MCP URL> <callback port> [--callback-fd N] [--client-id ID] [--client-secret S] [--state] [--sse]
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
const callbackFD = flag('--callback-fd');
// --sse: the legacy HTTP+SSE transport (GET <url>, POST to the endpoint it names).
const Transport = rest.includes('--sse') ? SSEClientTransport : StreamableHTTPClientTransport;
const redirectUrl = `http://127.0.0.1:${port}/callback`;

setTimeout(() => {
  console.error('sdkclient: gave up after 60 s');
  process.exit(1);
}, 60_000).unref();

// The redirect: resolves with the code, rejects with the error response.
let server;
const redirected = new Promise((resolve, reject) => {
  server = http.createServer((req, res) => {
    const u = new URL(req.url, redirectUrl);
    if (u.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    server.close();
    const q = u.searchParams;
    if (q.get('error')) {
      reject(new Error(`authorization error response: ${q.get('error')}: ${q.get('error_description') ?? ''}`));
    } else if (withState && q.get('state') !== sentState) {
      reject(new Error(`state ${q.get('state')} is not the one sent (${sentState})`));
    } else if (!q.get('code')) {
      reject(new Error(`redirect without code: ${u}`));
    } else {
      resolve(q.get('code'));
    }
  });
});
redirected.catch(() => {}); // reported where it is awaited

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
    await transport.finishAuth(await redirected);
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
