// Case 1: the whole MCP client journey through the gateway, in one token
// mode on one store: 401 → discovery → registration → PKCE sign-in →
// tools, streamed progress, resources → token expiry → the SDK refreshes
// by itself → more calls.
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn } from '../lib/mcp-client.mjs';
import { sleep } from '../lib/procs.mjs';
import { gatewayAddress, startEverything, startGateway, startRedis } from '../lib/services.mjs';

const SHORT_TTL = 3;

export async function fullFlow({ mode, redis }) {
  const everything = await startEverything();
  showOnFailure('server-everything', everything.proc);
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback], accessTokenTtl: mode === 'upstream' ? SHORT_TTL : 3600 });
  const store = redis ? { url: (await startRedis()).url, prefix: 'interop:' } : null;
  const gw = await startGateway({
    mode,
    idp,
    proxyPort: address.proxyPort,
    redis: store,
    accessTtl: SHORT_TTL,
    apps: [{ slug: 'everything', upstream: everything.url }],
  });
  showOnFailure('gateway', gw.proc);
  const mcpUrl = gw.mcpUrl('everything');

  // The first request an MCP client makes has no token.
  const anon = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
  });
  equal(anon.status, 401, 'status without a token');
  const challenge = anon.headers.get('www-authenticate') ?? '';
  check(challenge.includes(`resource_metadata="${gw.url}/.well-known/oauth-protected-resource/apps/everything/mcp"`), `WWW-Authenticate: ${challenge}`);

  const provider = new MemoryOAuthProvider();
  const { client } = await connectWithSignIn(mcpUrl, provider, gw.url);
  equal(provider.registrations, 1, 'dynamic client registrations');
  check(provider.tokens()?.refresh_token, 'the SDK holds a refresh token');
  await exercise(client);

  // Let the access token expire; the next calls make the SDK refresh by itself.
  const savesBefore = provider.tokenSaves;
  const before = provider.tokens().access_token;
  await sleep((SHORT_TTL + 1.5) * 1000);
  await exercise(client);
  check(provider.tokenSaves > savesBefore, 'the SDK refreshed its tokens');
  check(provider.tokens().access_token !== before, 'a new access token is in use');
  if (mode === 'upstream') check(idp.calls.refresh >= 1, 'upstream mode refreshed at the IdP');
  await client.close();
}

/** tools/list, echo, a tool that streams progress, resources/list. */
export async function exercise(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  check(names.includes('echo') && names.includes('trigger-long-running-operation'), `tools: ${names.join(', ')}`);
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'through drio' } });
  check(echo.content?.[0]?.text?.includes('through drio'), `echo answered ${JSON.stringify(echo)}`);
  // The server sends one progress notification every duration/steps (333 ms);
  // streamed through, they arrive that far apart. A gateway that held them
  // back would deliver several within a few ms of each other.
  const progress = [];
  const started = Date.now();
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push({ step: p.progress, at: Date.now() }) },
  );
  equal(progress.map((p) => p.step).join(','), '1,2,3', 'progress notifications streamed through the gateway');
  const arrivals = [started, ...progress.map((p) => p.at)];
  const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]);
  check(gaps.every((gap) => gap >= 200), `each progress notification arrives on its own (ms since the previous: ${gaps.join(', ')})`);
  check(long.content?.[0]?.text?.includes('completed'), `long operation: ${JSON.stringify(long)}`);
  const { resources } = await client.listResources();
  check(resources.length > 0, 'resources/list returned resources');
}
