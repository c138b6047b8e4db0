// The two services benches/fault.sh kills and restarts, in plain Node (no
// packages): a test identity provider and an upstream MCP server.
//
//   node services.mjs idp PORT KEYFILE      OIDC-style provider: ES256 JWT access tokens + JWKS
//   node services.mjs upstream PORT         MCP server answering JSON-RPC (JSON or SSE)
//
// Both print "ready PORT" on stdout once they listen, and exit on SIGTERM/SIGINT.
//
// IdP (RFC 8414 metadata, RFC 7517 JWKS, RFC 7519/9068 JWT access tokens):
//   GET  /.well-known/openid-configuration
//   GET  /jwks
//   POST /token  {"sub","aud","ttl"}  ->  {"access_token","token_type":"Bearer","expires_in"}
// The signing key is kept in KEYFILE so a restarted IdP publishes the same key
// (like a real provider): tokens issued before an outage stay verifiable.
//
// Upstream (MCP Streamable HTTP, JSON-RPC 2.0): POST /mcp answers every request
// with {"jsonrpc":"2.0","id":<id>,"result":{"content":[{"type":"text","text":<echo>}]}}
// where <echo> is params.arguments.marker, so the load driver can tell an answer
// meant for another request. params.arguments.delay_ms delays the answer; with
// params.arguments.sse the answer is an SSE stream of `delay_ms / 250` progress
// notifications, then the result. It also reports whether the client's
// Authorization header reached it (it must not: the gateway strips it).
import { createServer } from 'node:http';
import { createPrivateKey, generateKeyPairSync, createPublicKey, sign } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const [mode, portArg, keyFile] = process.argv.slice(2);
const port = Number(portArg);
if (!['idp', 'upstream'].includes(mode) || !Number.isInteger(port)) {
  console.error('usage: node services.mjs idp PORT KEYFILE | upstream PORT');
  process.exit(2);
}

const json = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function idp() {
  if (!existsSync(keyFile)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  }
  const key = createPrivateKey(readFileSync(keyFile));
  const jwk = { ...createPublicKey(key).export({ format: 'jwk' }), kid: 'fault-1', alg: 'ES256', use: 'sig' };
  const issuer = `http://127.0.0.1:${port}`;
  const mint = ({ sub, aud, ttl }) => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: jwk.kid }));
    const claims = b64url(
      JSON.stringify({ iss: issuer, sub, aud, iat: now, nbf: now, exp: now + (ttl || 600), scope: 'openid' }),
    );
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    return `${header}.${claims}.${b64url(signature)}`;
  };
  return async (req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer, jwks_uri: `${issuer}/jwks`, token_endpoint: `${issuer}/token` });
    }
    if (req.method === 'GET' && req.url === '/jwks') return json(res, 200, { keys: [jwk] });
    if (req.method === 'POST' && req.url === '/token') {
      const body = JSON.parse((await readBody(req)) || '{}');
      if (typeof body.sub !== 'string' || typeof body.aud !== 'string') return json(res, 400, { error: 'invalid_request' });
      return json(res, 200, { access_token: mint(body), token_type: 'Bearer', expires_in: body.ttl || 600 });
    }
    return json(res, 404, { error: 'not_found' });
  };
}

function upstream() {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  return async (req, res) => {
    if (req.method === 'GET' && req.url === '/ready') return json(res, 200, { ok: true });
    if (req.method !== 'POST' || !req.url.startsWith('/mcp')) return json(res, 404, { error: 'not_found' });
    let rpc;
    try {
      rpc = JSON.parse(await readBody(req));
    } catch {
      return json(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
    }
    const args = rpc?.params?.arguments ?? {};
    const delay = Math.min(Number(args.delay_ms) || 0, 30000);
    const result = {
      jsonrpc: '2.0',
      id: rpc.id,
      result: {
        content: [{ type: 'text', text: String(args.marker ?? '') }],
        sawAuthorization: req.headers.authorization !== undefined,
      },
    };
    if (!args.sse) {
      if (delay) await sleep(delay);
      return json(res, 200, result);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const ticks = Math.max(1, Math.floor(delay / 250));
    for (let i = 0; i < ticks; i++) {
      res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: i } })}\n\n`);
      await sleep(delay / ticks);
    }
    res.end(`event: message\ndata: ${JSON.stringify(result)}\n\n`);
  };
}

const server = createServer((req, res) => {
  (mode === 'idp' ? idpHandler : upstreamHandler)(req, res).catch((e) => {
    if (!res.headersSent) json(res, 500, { error: String(e) });
    else res.destroy();
  });
});
const idpHandler = mode === 'idp' ? idp() : null;
const upstreamHandler = mode === 'upstream' ? upstream() : null;
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
