// Cases 3 and 4: an app created through the management API whose upstream
// requires an API key. A recording proxy in front of server-everything
// proves the upstream received the key and never the client's token; then
// a tool disabled through the commands API is refused by the gateway and
// never reaches the upstream.
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn, managementToken } from '../lib/mcp-client.mjs';
import { gatewayAddress, startEverything, startGateway, startRecordingProxy } from '../lib/services.mjs';

const API_KEY = 'interop-upstream-key-7f3a';

async function api(gw, token, method, path, body) {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Signs in through the SDK at the `everything` app and creates the keyed app. */
async function keyedApp() {
  const everything = await startEverything();
  const recorder = await startRecordingProxy(everything.url);
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const gw = await startGateway({ mode: 'gateway', idp, apps: [{ slug: 'everything', upstream: everything.url }], proxyPort: address.proxyPort });
  showOnFailure('gateway', gw.proc);
  // The management API takes a token issued for it, not an app's (issue 12).
  const adminToken = await managementToken(gw.url);

  const created = await api(gw, adminToken, 'POST', '/api/v1/apps', { name: 'Keyed', config: { upstreamUrl: recorder.url } });
  equal(created.status, 201, `create app: ${JSON.stringify(created.body)}`);
  const { id, slug } = created.body.app;
  const conn = await api(gw, adminToken, 'POST', `/api/v1/apps/${id}/auth`, {
    name: 'upstream key',
    config: { type: 'api_key', headerName: 'X-Api-Key', headerPrefix: 'Key ', apiKey: API_KEY },
  });
  equal(conn.status, 201, `create auth connection: ${JSON.stringify(conn.body)}`);
  check(!JSON.stringify(conn.body).includes(API_KEY), 'the API key is write-only');

  const user = new MemoryOAuthProvider();
  const { client } = await connectWithSignIn(gw.mcpUrl(slug), user, gw.url);
  return { gw, recorder, client, user, id, adminToken };
}

export async function apiKeyInjection() {
  const { recorder, client, user } = await keyedApp();
  recorder.seen.length = 0;
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'keyed' } });
  check(echo.content?.[0]?.text?.includes('keyed'), `echo: ${JSON.stringify(echo)}`);
  await client.listTools();
  check(recorder.seen.length >= 2, `the upstream saw ${recorder.seen.length} requests`);
  const token = user.tokens().access_token;
  const refresh = user.tokens().refresh_token;
  for (const r of recorder.seen) {
    equal(r.headers['x-api-key'], `Key ${API_KEY}`, `${r.method} ${r.url} carried the key`);
    const everything = JSON.stringify(r.headers) + r.url + r.body;
    check(!everything.includes(token), `the client's access token reached the upstream: ${r.method} ${r.url}`);
    check(!everything.includes(refresh), "the client's refresh token reached the upstream");
    check(r.headers.authorization === undefined, `Authorization reached the upstream: ${r.headers.authorization}`);
  }
  await client.close().catch(() => {});
}

export async function disabledTool() {
  const { gw, recorder, client, id, adminToken } = await keyedApp();
  const commands = await api(gw, adminToken, 'GET', `/api/v1/apps/${id}/commands`);
  equal(commands.status, 200, `commands: ${JSON.stringify(commands.body)}`);
  const names = commands.body.commands.map((c) => c.name);
  check(names.includes('echo') && names.includes('get-sum'), `commands from the upstream: ${names.join(', ')}`);
  const off = await api(gw, adminToken, 'PATCH', `/api/v1/apps/${id}/commands`, { name: 'echo', enabled: false });
  equal(off.status, 200, `disable echo: ${JSON.stringify(off.body)}`);

  recorder.seen.length = 0;
  let refused = null;
  try {
    await client.callTool({ name: 'echo', arguments: { message: 'should not pass' } });
  } catch (e) {
    refused = e;
  }
  check(refused, 'calling a disabled tool fails');
  check(/disabled|not enabled/i.test(refused.message), `the refusal says why: ${refused.message}`);
  check(!recorder.seen.some((r) => r.body.includes('should not pass')), 'the disabled call never reached the upstream');
  const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
  const sumText = (sum.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
  check(!sum.isError && /\b5\b/.test(sumText), `other tools still work (2 + 3 = 5): ${JSON.stringify(sum)}`);
  await client.close().catch(() => {});
}
