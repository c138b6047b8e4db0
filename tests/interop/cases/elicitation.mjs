// Case 8: "connect your account" as a URL-mode elicitation (MCP 2025-11-25).
// An app's upstream credential is per-user OAuth at a small fake provider.
// The official TypeScript SDK client declares `elicitation: { url: {} }`;
// signed in but not connected, its call fails with the SDK's
// UrlElicitationRequiredError (-32042). The test opens the elicitation URL
// as that user (connect link → provider → gateway callback → Confirm), and
// the retried call succeeds with the user's upstream token injected.
import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { Browser } from '../lib/browser.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn, managementToken } from '../lib/mcp-client.mjs';
import { onCleanup } from '../lib/procs.mjs';
import { gatewayAddress, startEverything, startGateway, startRecordingProxy } from '../lib/services.mjs';

const UPSTREAM_TOKEN = 'interop-connected-account-token';
const CAPABILITIES = { capabilities: { elicitation: { url: {} } } };

/** An OAuth provider that approves at once: /authorize redirects back with a code, /token issues the token. */
async function startProvider() {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', 'interop-code');
      back.searchParams.set('state', url.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() }).end();
    } else if (req.method === 'POST' && url.pathname === '/token') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const ok = ['authorization_code', 'refresh_token'].includes(form.get('grant_type'));
        res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(ok ? { access_token: UPSTREAM_TOKEN, token_type: 'Bearer', expires_in: 3600 } : { error: 'invalid_grant' }));
      });
    } else res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

async function api(gw, token, method, path, body) {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

/** Opens a connect link in a browser (signing in at the IdP as the link's user) and answers the confirmation page with Confirm. */
async function openAndConfirm(url) {
  const browser = new Browser();
  let next = url;
  let page;
  // The link first has the browser sign in at the IdP (the gateway checks
  // it is the link's user), then goes on to the provider: about ten hops.
  for (let i = 0; i < 20; i++) {
    page = await browser.request(next);
    if (page.res.status < 300 || page.res.status >= 400) break;
    next = new URL(page.res.headers.get('location'), next).toString();
  }
  equal(page.res.status, 200, `confirmation page: ${page.text.slice(0, 300)}`);
  const fields = {};
  for (const m of page.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]] = m[2];
  fields.decision = 'confirm';
  const action = /action="([^"]+)"/.exec(page.text)[1];
  const done = await browser.request(new URL(action, next).toString(), { method: 'POST', form: fields });
  equal(done.res.status, 200, `confirmed: ${done.text.slice(0, 300)}`);
  return browser;
}

export async function urlElicitation() {
  const everything = await startEverything();
  const recorder = await startRecordingProxy(everything.url);
  const provider = await startProvider();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const gw = await startGateway({ mode: 'gateway', idp, apps: [{ slug: 'everything', upstream: everything.url }], proxyPort: address.proxyPort });
  showOnFailure('gateway', gw.proc);
  const admin = await managementToken(gw.url);
  const created = await api(gw, admin, 'POST', '/api/v1/apps', { name: 'Connected', config: { upstreamUrl: recorder.url } });
  equal(created.status, 201, `create app: ${JSON.stringify(created.body)}`);
  const { id, slug } = created.body.app;
  const conn = await api(gw, admin, 'POST', `/api/v1/apps/${id}/auth`, {
    name: 'Contacts',
    config: { type: 'oauth', authorizationEndpoint: `${provider}/authorize`, tokenEndpoint: `${provider}/token`, clientId: 'interop', clientSecret: 'interop-secret' },
  });
  equal(conn.status, 201, `create connection: ${JSON.stringify(conn.body)}`);

  // Signed in, not connected: the SDK raises UrlElicitationRequiredError.
  const user = new MemoryOAuthProvider();
  let refused = null;
  try {
    await connectWithSignIn(gw.mcpUrl(slug), user, gw.url, CAPABILITIES);
  } catch (e) {
    refused = e;
  }
  check(refused instanceof UrlElicitationRequiredError, `the SDK raised ${refused?.constructor?.name}: ${refused?.message}`);
  equal(refused.code, ErrorCode.UrlElicitationRequired, 'error code');
  const [elicitation] = refused.elicitations;
  equal(elicitation?.mode, 'url', 'elicitation mode');
  check(elicitation.elicitationId && elicitation.message, `elicitation: ${JSON.stringify(elicitation)}`);
  check(elicitation.url.startsWith(`${gw.url}/api/v1/apps/${id}/auth/`), `the URL is the gateway's: ${elicitation.url}`);
  check(!recorder.seen.length, 'nothing reached the upstream');

  // The user opens it, connects, and retries: the call succeeds.
  await openAndConfirm(elicitation.url);
  const client = new Client({ name: 'drio-interop', version: '1.0.0' }, CAPABILITIES);
  await client.connect(new StreamableHTTPClientTransport(new URL(gw.mcpUrl(slug)), { authProvider: user }));
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'connected' } });
  check(echo.content?.[0]?.text?.includes('connected'), `echo: ${JSON.stringify(echo)}`);
  check(recorder.seen.length >= 2, `the upstream saw ${recorder.seen.length} requests`);
  for (const r of recorder.seen) equal(r.headers.authorization, `Bearer ${UPSTREAM_TOKEN}`, `${r.method} ${r.url} carried the user's upstream token`);
  // Single use: the link connects nobody a second time.
  const again = await new Browser().request(elicitation.url);
  equal(again.res.status, 400, 'the used link');
  await client.close().catch(() => {});
}
