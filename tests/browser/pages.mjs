// The gateway's pages in a real browser (issue 18): Debian's Chromium,
// driven by puppeteer-core, against a real gateway with the dev identity
// provider. Sign-in -> consent -> redirect at 1280 and 360 px, light and
// dark; the error pages; the connect-your-account confirmation and its
// result; the e-mail step of enterprise SSO (WorkOS). Every page is screenshotted into out/ and checked with axe-core
// (0 serious or critical violations). A client with a hostile client_name
// and logo_uri must load nothing and run nothing.
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { freePort, start, tempDir, waitFor, onCleanup, cleanupAll } from '../interop/lib/procs.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const out = join(here, 'out');
mkdirSync(out, { recursive: true });
const gatewayBin = process.env.DRIO_GATEWAY_BIN || join(repo, 'target', 'debug', 'drio-gateway');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const HOSTILE_NAME = '<img src=x onerror=alert(document.domain)><script>alert(1)</script>Evil';

let failures = 0;
const check = (ok, what) => {
  if (!ok) {
    failures++;
    console.log(`  FAIL ${what}`);
  }
};

/** A small real PNG (the app's logo, inline as a data: URI). */
function logoPng() {
  const size = 48;
  const row = (y) => {
    const px = [];
    for (let x = 0; x < size; x++) {
      const inside = (x - 24) ** 2 + (y - 24) ** 2 < 18 ** 2;
      px.push(...(inside ? [0x0f, 0x7b, 0x3c, 255] : [0, 0, 0, 0]));
    }
    return Buffer.from([0, ...px]);
  };
  const raw = Buffer.concat(Array.from({ length: size }, (_, y) => row(y)));
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** An HTTP server on loopback recording every request; `handler` answers. */
async function server(handler) {
  const hits = [];
  const srv = createServer((req, res) => {
    hits.push(req.url);
    handler(req, res);
  });
  // Counted per connection too: an https:// attempt never becomes a request.
  srv.on('connection', () => hits.push('(connection)'));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise((r) => srv.close(() => r())));
  return { url: `http://127.0.0.1:${srv.address().port}`, hits };
}

const DEV_IDP = '[idp]\nkind = "dev"\n';

async function startGateway(upstream, idp = DEV_IDP) {
  const dir = tempDir('drio-browser-gw-');
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const base = `http://127.0.0.1:${proxyPort}`;
  const toml = `public_url = "${base}"

[listen]
proxy = "127.0.0.1:${proxyPort}"
admin = "127.0.0.1:${adminPort}"

[server]
threads = 2
grace_period_seconds = 0

[storage]
backend = "embedded"
path = "${join(dir, 'gw.redb')}"

[security]
allow_upstream_cidrs = ["127.0.0.0/8"]

[oauth]
token_mode = "gateway"
# Client metadata documents on loopback http (the CIMD consent page below).
allow_private_cimd = true
scopes = ["tools:call"]
scope_descriptions = { "tools:call" = "Run the app's tools for you" }

${idp}
[[apps]]
id = "app_everything"
slug = "everything"
name = "everything"
description = "Example tools: echo, add, long-running operations and sample resources."
upstream = "${upstream}"
branding = { display_name = "Everything (example)", accent_color = "#0f7b3c", company_url = "https://example.com/", logo_url = "${logoPng()}" }
`;
  const config = join(dir, 'gateway.toml');
  writeFileSync(config, toml);
  const proc = start(gatewayBin, ['--config', config], {
    env: { DRIO_SECRETS_KEY: Buffer.alloc(32, 9).toString('base64'), WORKOS_API_KEY: 'sk_test_browser', RUST_LOG: 'warn' },
    logPath: join(dir, 'gateway.log'),
    cwd: dir,
  });
  await waitFor('gateway', async () => {
    if (proc.child.exitCode !== null) throw new Error(`gateway exited:\n${proc.tail()}`);
    // Ready: the proxy listener accepts and the store answers.
    const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => null);
    return r?.ok === true;
  });
  return { url: base, proc };
}

const b64url = (buf) => buf.toString('base64url');

async function register(gw, metadata) {
  const r = await fetch(`${gw.url}/api/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], ...metadata }),
  });
  if (r.status !== 201) throw new Error(`register: ${r.status} ${await r.text()}`);
  return r.json();
}

function authorizeUrl(gw, client, redirectUri, { resource, scope = 'openid profile email tools:call' } = {}) {
  const verifier = b64url(randomBytes(32));
  const u = new URL(`${gw.url}/api/v1/auth/authorize`);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope,
    state: b64url(randomBytes(12)),
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    ...(resource ? { resource } : {}),
  }).toString();
  return { url: u.toString(), verifier };
}

/** Runs axe on the page; returns serious/critical violations. */
async function axe(page) {
  // Evaluated over the DevTools protocol, which the page's CSP does not
  // govern: the page itself still runs no script.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Screenshot + axe for the page now shown. */
async function inspect(page, name, variant) {
  const file = join(out, `${name}-${variant}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const bad = await axe(page);
  for (const v of bad) console.log(`  axe ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`);
  check(bad.length === 0, `${name} ${variant}: ${bad.length} serious/critical axe violations`);
  // Horizontal overflow at 360 px would mean a hidden part of the page.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check(!overflow, `${name} ${variant}: the page scrolls sideways`);
  return file;
}

/** A fresh browser context with a viewport and colour scheme; records requests. */
async function context(browser, width, scheme) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width, height: 900, deviceScaleFactor: 1 });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
  const requests = [];
  const dialogs = [];
  const cspErrors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
  });
  return { ctx, page, requests, dialogs, cspErrors };
}

async function signInFlow(browser, gw, sink, width, scheme) {
  const variant = `${width}-${scheme}`;
  const { ctx, page, requests, cspErrors } = await context(browser, width, scheme);
  const redirect = `${sink.url}/callback`;
  const client = await register(gw, { client_name: 'Notes Desktop', redirect_uris: [redirect] });
  const { url } = authorizeUrl(gw, client, redirect, { resource: `${gw.url}/apps/everything/mcp` });
  await page.goto(url);
  check(page.url().startsWith(`${gw.url}/api/v1/auth/dev/login`), `${variant}: at the dev sign-in (${page.url()})`);
  await inspect(page, 'signin', variant);
  // Keyboard only: the e-mail field has focus, Enter submits.
  const focused = await page.evaluate(() => document.activeElement?.id);
  check(focused === 'email', `${variant}: the e-mail field has focus (${focused})`);
  await page.keyboard.type('ada@example.com');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  const consent = await inspect(page, 'consent', variant);
  const text = await page.evaluate(() => document.body.innerText);
  for (const says of ['Everything (example)', 'Example tools', 'example.com', 'Notes Desktop', '127.0.0.1', 'See your e-mail address', "Run the app's tools for you", 'ada@example.com', 'Not you?', 'runs on your own computer']) {
    check(text.includes(says), `${variant}: consent shows "${says}"`);
  }
  // The README's screenshot, refreshed on request only (the page shows a
  // random port, so every run would change the file).
  if (width === 1280 && scheme === 'light' && process.env.UPDATE_DOCS === '1') {
    copyFileSync(consent, join(repo, 'docs', 'consent.png'));
  }
  // Tab to Allow and press it: keyboard usable.
  let onAllow = false;
  for (let i = 0; i < 12 && !onAllow; i++) {
    await page.keyboard.press('Tab');
    onAllow = await page.evaluate(() => document.activeElement?.getAttribute('value') === 'approve');
  }
  check(onAllow, `${variant}: Allow is reachable with Tab`);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  const back = new URL(page.url());
  check(back.origin === sink.url && back.searchParams.has('code'), `${variant}: redirected to the client with a code (${page.url()})`);
  const foreign = requests.filter((u) => !u.startsWith(gw.url) && !u.startsWith('data:') && !u.startsWith(redirect));
  check(foreign.length === 0, `${variant}: pages loaded nothing from elsewhere: ${foreign.join(', ')}`);
  check(cspErrors.length === 0, `${variant}: no CSP violations: ${cspErrors.join(' | ')}`);
  await ctx.close();
}

/** A client identified by a metadata document (CIMD): the consent page
 * names the host that publishes it beside the host its tokens go to. */
async function metadataDocumentClient(browser, gw, docs, sink, width, scheme) {
  const variant = `${width}-${scheme}`;
  const { ctx, page, requests, cspErrors } = await context(browser, width, scheme);
  const clientId = `${docs.url}/clients/notes-web.json`;
  const redirect = `${sink.url}/callback`;
  const { url } = authorizeUrl(gw, { client_id: clientId }, redirect, { resource: `${gw.url}/apps/everything/mcp` });
  await page.goto(url);
  check(page.url().startsWith(`${gw.url}/api/v1/auth/dev/login`), `${variant}: CIMD client at the sign-in (${page.url()})`);
  await page.type('#email', 'ada@example.com');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await inspect(page, 'consent-cimd', variant);
  const text = await page.evaluate(() => document.body.innerText);
  check(text.includes('Notes Web') && text.includes('Its details are published by') && text.includes(new URL(docs.url).hostname), `${variant}: the consent names the client and the host that publishes it`);
  const foreign = requests.filter((u) => !u.startsWith(gw.url) && !u.startsWith('data:'));
  check(foreign.length === 0, `${variant}: the browser fetched nothing of the document's: ${foreign.join(', ')}`);
  check(cspErrors.length === 0, `${variant}: no CSP violations: ${cspErrors.join(' | ')}`);
  await ctx.close();
}

async function hostileClient(browser, gw, sink, tracker) {
  const { ctx, page, requests, dialogs, cspErrors } = await context(browser, 1280, 'light');
  const redirect = `${sink.url}/callback`;
  const client = await register(gw, {
    client_name: HOSTILE_NAME,
    // https on the tracker's port: registration wants https, and any
    // attempt to fetch it would still open a connection to the tracker.
    logo_uri: `${tracker.url.replace('http:', 'https:')}/pixel.png`,
    client_uri: `${tracker.url.replace('http:', 'https:')}/`,
    redirect_uris: [redirect],
  });
  const { url } = authorizeUrl(gw, client, redirect, { resource: `${gw.url}/apps/everything/mcp` });
  await page.goto(url);
  await page.type('#email', 'mallory@example.com');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await inspect(page, 'consent-hostile', '1280-light');
  const text = await page.evaluate(() => document.body.innerText);
  check(text.includes('<img src=x onerror'), 'hostile client_name is shown as text');
  const imgs = await page.evaluate(() => [...document.images].map((i) => i.src.slice(0, 30)));
  check(imgs.every((s) => s.startsWith('data:')), `only the app's inline logo is an image: ${imgs.join(', ')}`);
  const scripts = await page.evaluate(() => document.scripts.length);
  check(scripts === 0, `no script element on the page (${scripts})`);
  check(dialogs.length === 0, `nothing executed: ${dialogs.join(', ')}`);
  check(tracker.hits.length === 0, `the client's logo_uri was never requested: ${tracker.hits.join(', ')}`);
  const foreign = requests.filter((u) => !u.startsWith(gw.url) && !u.startsWith('data:'));
  check(cspErrors.length === 0, `no CSP violation either (nothing even tried): ${cspErrors.join(' | ')}`);
  check(foreign.length === 0, `no request left the gateway's origin: ${foreign.join(', ')}`);
  await ctx.close();
}

async function errorPages(browser, gw, width, scheme) {
  const variant = `${width}-${scheme}`;
  const { ctx, page } = await context(browser, width, scheme);
  const cases = [
    ['error-unknown-client', `${gw.url}/api/v1/auth/authorize?client_id=unknown&response_type=code`],
    ['error-callback-expired', `${gw.url}/api/v1/auth/callback?state=gone&code=x`],
    ['error-connect-expired', `${gw.url}/api/v1/connections/callback?state=gone&code=x`],
  ];
  for (const [name, url] of cases) {
    const resp = await page.goto(url);
    check(resp.status() >= 400, `${name}: status ${resp.status()}`);
    await inspect(page, name, variant);
    const text = await page.evaluate(() => document.body.innerText);
    const rid = resp.headers()['x-request-id'];
    check(rid && text.includes(rid), `${name}: shows the request id ${rid}`);
    check(text.includes('What you can do'), `${name}: says what to do`);
  }
  await ctx.close();
}

/** A management token: the gateway's own sign-in without a resource, in the browser. */
async function managementToken(browser, gw, sink) {
  const { ctx, page } = await context(browser, 1280, 'light');
  const redirect = `${sink.url}/callback`;
  const client = await register(gw, { client_name: 'Dashboard', redirect_uris: [redirect] });
  const { url, verifier } = authorizeUrl(gw, client, redirect, { scope: 'openid profile email' });
  await page.goto(url);
  await page.type('#email', 'owner@example.com');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForNavigation(), page.click('button[value=approve]')]);
  const code = new URL(page.url()).searchParams.get('code');
  await ctx.close();
  const r = await fetch(`${gw.url}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: client.client_id, code_verifier: verifier }),
  });
  const body = await r.json();
  if (!body.access_token) throw new Error(`token: ${JSON.stringify(body)}`);
  return body.access_token;
}

async function connectPages(browser, gw, sink, upstream, width, scheme) {
  const variant = `${width}-${scheme}`;
  const token = await managementToken(browser, gw, sink);
  const api = async (method, path, body) => {
    const r = await fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, body: await r.json() };
  };
  // A provider that approves at once and hands out tokens.
  const provider = await server((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/authorize' && u.searchParams.get('client_id') === 'refusing-client') {
      // The person said no at the provider.
      const back = new URL(u.searchParams.get('redirect_uri'));
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'Injected <b>provider</b> words');
      back.searchParams.set('state', u.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (u.pathname === '/authorize') {
      const back = new URL(u.searchParams.get('redirect_uri'));
      back.searchParams.set('code', 'provider-code');
      back.searchParams.set('state', u.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (u.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ access_token: 'up-at', refresh_token: 'up-rt', token_type: 'Bearer', expires_in: 3600 }));
    }
    res.writeHead(404);
    res.end();
  });
  const app = await api('POST', '/api/v1/apps', {
    name: 'Wiki',
    slug: `wiki-${width}-${scheme}`,
    description: 'The team wiki',
    upstreamUrl: upstream,
    branding: { displayName: 'Team Wiki', accentColor: '#6b2fbf' },
  });
  if (app.status !== 201) throw new Error(`create app: ${JSON.stringify(app.body)}`);
  const appId = app.body.app.id;
  const conn = await api('POST', `/api/v1/apps/${appId}/auth`, {
    name: 'Wiki account',
    config: { type: 'oauth', authorizationEndpoint: `${provider.url}/authorize`, tokenEndpoint: `${provider.url}/token`, clientId: 'wiki-client', clientSecret: 'wiki-secret' },
  });
  if (conn.status !== 201) throw new Error(`create connection: ${JSON.stringify(conn.body)}`);
  const authId = conn.body.auth.id;

  // The link the gateway hands out (here through the commands API) opened
  // by someone else: the browser signs in first, as Mallory, and is told.
  const commands = await api('GET', `/api/v1/apps/${appId}/commands`);
  const link = commands.body.error?.details?.connectUrl;
  check(commands.status === 409 && link?.includes('ticket='), `${variant}: a connect link (${commands.status})`);
  {
    const { ctx, page } = await context(browser, width, scheme);
    await page.goto(link);
    check(page.url().startsWith(`${gw.url}/api/v1/auth/dev/login`), `${variant}: the link asks who opens it (${page.url()})`);
    await page.type('#email', 'mallory@example.com');
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    await inspect(page, 'connect-not-yours', variant);
    const text = await page.evaluate(() => document.body.innerText);
    check(text.includes('Not your link') && text.includes('What you can do'), `${variant}: "Not your link"`);
    await ctx.close();
  }

  // A provider that refuses: the error page names the code, not its words.
  const refusing = await api('POST', `/api/v1/apps/${appId}/auth`, {
    name: 'Refusing account',
    config: { type: 'oauth', authorizationEndpoint: `${provider.url}/authorize`, tokenEndpoint: `${provider.url}/token`, clientId: 'refusing-client', clientSecret: 'wiki-secret' },
  });
  if (refusing.status !== 201) throw new Error(`create connection: ${JSON.stringify(refusing.body)}`);
  {
    const { ctx, page } = await context(browser, width, scheme);
    await page.setExtraHTTPHeaders({ authorization: `Bearer ${token}` });
    await page.goto(`${gw.url}/api/v1/apps/${appId}/auth/${refusing.body.auth.id}/connect`);
    await page.setExtraHTTPHeaders({});
    await inspect(page, 'connect-refused', variant);
    const text = await page.evaluate(() => document.body.innerText);
    check(text.includes('access_denied') && !text.includes('Injected'), `${variant}: the refusal names its code only`);
    await ctx.close();
  }

  const { ctx, page } = await context(browser, width, scheme);
  await page.setExtraHTTPHeaders({ authorization: `Bearer ${token}` });
  await page.goto(`${gw.url}/api/v1/apps/${appId}/auth/${authId}/connect`);
  await page.setExtraHTTPHeaders({});
  check(page.url().startsWith(`${gw.url}/api/v1/connections/callback`), `${variant}: at the confirmation (${page.url()})`);
  await inspect(page, 'connect-confirm', variant);
  const text = await page.evaluate(() => document.body.innerText);
  check(text.includes('owner@example.com') && text.includes('Team Wiki'), `${variant}: the confirmation names the account and the app`);
  await Promise.all([page.waitForNavigation(), page.click('button[value=confirm]')]);
  await inspect(page, 'connect-done', variant);
  const done = await page.evaluate(() => document.body.innerText);
  check(/connected/i.test(done), `${variant}: connected`);
  await ctx.close();
}

/** Enterprise SSO's first step (idp.kind = "workos_sso" with organizations
 * by e-mail domain): the work e-mail page, its error state, and the hand-off
 * to WorkOS with the organization of the domain. */
async function ssoEmailPages(browser, gw, sink, workos, width, scheme) {
  const variant = `${width}-${scheme}`;
  const { ctx, page, requests, cspErrors } = await context(browser, width, scheme);
  const redirect = `${sink.url}/callback`;
  const client = await register(gw, { client_name: 'Notes Desktop', redirect_uris: [redirect] });
  const { url } = authorizeUrl(gw, client, redirect, { resource: `${gw.url}/apps/everything/mcp` });
  await page.goto(url);
  check(page.url().startsWith(`${gw.url}/api/v1/auth/sso/email`), `${variant}: at the SSO e-mail step (${page.url()})`);
  await inspect(page, 'sso-email', variant);
  const focused = await page.evaluate(() => document.activeElement?.id);
  check(focused === 'email', `${variant}: the e-mail field has focus (${focused})`);
  await page.keyboard.type('ada@unknown.example');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await inspect(page, 'sso-email-error', variant);
  const text = await page.evaluate(() => document.body.innerText);
  check(text.includes('unknown.example'), `${variant}: the error names the domain`);
  await page.evaluate(() => { document.getElementById('email').value = ''; });
  await page.type('#email', 'ada@acme.com');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  const at = new URL(page.url());
  check(at.origin === workos.url && at.pathname === '/sso/authorize', `${variant}: handed to WorkOS (${page.url()})`);
  check(at.searchParams.get('organization') === 'org_acme', `${variant}: with the domain's organization`);
  const foreign = requests.filter((u) => !u.startsWith(gw.url) && !u.startsWith(workos.url) && !u.startsWith('data:'));
  check(foreign.length === 0, `${variant}: the SSO pages loaded nothing from elsewhere: ${foreign.join(', ')}`);
  check(cspErrors.length === 0, `${variant}: no CSP violations: ${cspErrors.join(' | ')}`);
  await ctx.close();
}

async function main() {
  const started = Date.now();
  const upstream = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  const sink = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('client callback');
  });
  const tracker = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end();
  });
  // Serves client metadata documents: the document's client_id is its own URL.
  const docs = await server((req, res) => {
    const self = `http://127.0.0.1:${req.socket.localPort}${req.url}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ client_id: self, client_name: 'Notes Web', redirect_uris: [`${sink.url}/callback`], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] }));
  });
  const gw = await startGateway(upstream.url);
  const workos = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('WorkOS sign-in (fake)');
  });
  const ssoGw = await startGateway(
    upstream.url,
    `[idp]\nkind = "workos_sso"\nissuer = "${workos.url}"\nclient_id = "client_browser"\nclient_secret_env = "WORKOS_API_KEY"\norganizations_by_domain = { "acme.com" = "org_acme" }\n`,
  );
  const profile = tempDir('drio-chromium-');
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
  });
  onCleanup(() => browser.close());
  try {
    for (const width of [1280, 360]) {
      for (const scheme of ['light', 'dark']) {
        console.log(`== sign-in, consent, errors, connect at ${width} px, ${scheme}`);
        await signInFlow(browser, gw, sink, width, scheme);
        await metadataDocumentClient(browser, gw, docs, sink, width, scheme);
        await errorPages(browser, gw, width, scheme);
        await connectPages(browser, gw, sink, upstream.url, width, scheme);
        await ssoEmailPages(browser, ssoGw, sink, workos, width, scheme);
      }
    }
    console.log('== hostile client_name and logo_uri');
    await hostileClient(browser, gw, sink, tracker);
  } catch (e) {
    failures++;
    console.log(`  FAIL ${e.stack}\n${gw.proc.tail()}`);
  }
  console.log(`${failures === 0 ? 'ok' : `${failures} failed`}: screenshots in ${out} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  await cleanupAll();
  process.exit(failures === 0 ? 0 : 1);
}

main();
