// The real peers of the suite: redis-server, the everything MCP server, a
// recording HTTP proxy, and the gateway binary built from this checkout.
import { createServer, request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, start, tempDir, waitFor, onCleanup } from './procs.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const suiteDir = join(here, '..');
const repo = join(suiteDir, '..', '..');
export const gatewayBin = process.env.DRIO_GATEWAY_BIN || join(repo, 'target', 'debug', 'drio-gateway');
// A fixed AES-256 key for the suite's secrets at rest (auth connections).
const SECRETS_KEY = Buffer.alloc(32, 7).toString('base64');
/** Bearer token of the admin listener's write routes (listen.admin_token_env). */
export const ADMIN_TOKEN = 'interop-admin-token-0123456789';

export async function startRedis() {
  const port = await freePort();
  const dir = tempDir('drio-redis-');
  const proc = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    logPath: join(dir, 'redis.log'),
  });
  await waitFor('redis', async () => {
    const net = await import('node:net');
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write('PING\r\n');
      });
      s.on('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.on('error', () => resolve(false));
    });
  });
  return { url: `redis://127.0.0.1:${port}`, proc };
}

/** @modelcontextprotocol/server-everything in Streamable HTTP mode. */
export async function startEverything() {
  const port = await freePort();
  const dir = tempDir('drio-everything-');
  const entry = join(suiteDir, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
  const proc = start(process.execPath, [entry, 'streamableHttp'], { env: { PORT: String(port) }, logPath: join(dir, 'everything.log') });
  await waitFor('server-everything', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).catch(() => null);
    return r !== null;
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

/**
 * A recording reverse proxy: forwards everything to `target` and keeps the
 * headers and query of every request, so a case can prove what the
 * upstream received (and never received).
 */
export async function startRecordingProxy(target) {
  const seen = [];
  const t = new URL(target);
  const server = createServer((req, res) => {
    const record = { method: req.method, url: req.url, headers: { ...req.headers }, body: '' };
    seen.push(record);
    req.on('data', (chunk) => {
      record.body += chunk.toString();
    });
    const up = httpRequest(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

/** A port for a gateway, and the callback URL the IdP must accept for it. */
export async function gatewayAddress() {
  const proxyPort = await freePort();
  return { proxyPort, callback: `http://127.0.0.1:${proxyPort}/api/v1/auth/callback` };
}

/**
 * The gateway with a generated config. `opts`: mode ('gateway'|'upstream'),
 * idp (the OIDC provider), apps [{slug, upstream, public, extra}], redis
 * ({url, prefix}), accessTtl (gateway mode), extra TOML.
 */
export async function startGateway(opts) {
  const dir = tempDir('drio-gw-');
  const proxyPort = opts.proxyPort ?? (await freePort());
  const adminPort = await freePort();
  const base = `http://127.0.0.1:${proxyPort}`;
  const storage = opts.redis
    ? `backend = "redis"\nurl = "${opts.redis.url}"\nkey_prefix = "${opts.redis.prefix}"\n`
    : `backend = "embedded"\npath = "${join(dir, 'gw.redb')}"\n`;
  let toml = `public_url = "${opts.publicUrl ?? base}"

[listen]
proxy = "127.0.0.1:${proxyPort}"
admin = "127.0.0.1:${adminPort}"
admin_token_env = "DRIO_ADMIN_TOKEN"

[server]
threads = 2
grace_period_seconds = 0

[storage]
${storage}
[logging]
level = "info"
format = "json"

[auth]
leeway_seconds = 0

[management]
admins = ["interop@example.com"]

# Every interop upstream and provider runs on loopback: let users' apps reach it.
[security]
allow_upstream_cidrs = ["127.0.0.0/8", "::1/128"]

[oauth]
token_mode = "${opts.mode}"
access_token_ttl_seconds = ${opts.accessTtl ?? 3600}
registrations_per_minute = 1000

[idp]
kind = "oidc"
issuer = "${opts.idp.issuer}"
client_id = "${opts.idp.clientId}"
client_secret_env = "INTEROP_IDP_SECRET"
scopes = ["openid", "profile", "email"]
`;
  for (const app of opts.apps) {
    toml += `
[[apps]]
id = "app_${app.slug}"
slug = "${app.slug}"
name = "${app.slug}"
upstream = "${app.upstream}"
mcp_path = "/mcp"
public = ${app.public ? 'true' : 'false'}
connect_timeout_ms = 2000
read_timeout_ms = 60000
${app.extra ?? ''}
`;
  }
  toml += opts.extra ?? '';
  const config = join(dir, 'gateway.toml');
  writeFileSync(config, toml);
  const proc = start(gatewayBin, ['--config', config], {
    env: { INTEROP_IDP_SECRET: opts.idp.clientSecret, DRIO_SECRETS_KEY: SECRETS_KEY, DRIO_ADMIN_TOKEN: ADMIN_TOKEN },
    logPath: join(dir, 'gateway.log'),
    cwd: dir,
  });
  await waitFor('gateway', async () => {
    if (proc.child.exitCode !== null) throw new Error(`gateway exited:\n${proc.tail()}`);
    // /readyz answers 200 only once the proxy listener accepts connections
    // (Pingora starts the admin service first) and the store answers.
    const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => null);
    return r?.ok === true;
  });
  return {
    url: base,
    admin: `http://127.0.0.1:${adminPort}`,
    adminToken: ADMIN_TOKEN,
    mcpUrl: (slug) => `${base}/apps/${slug}/mcp`,
    proc,
    config,
  };
}
