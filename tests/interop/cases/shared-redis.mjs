// Case 2: two gateway instances sharing one Redis behind one public URL: a
// token obtained through instance A works at instance B, and revoking it
// at A stops it at B within a second.
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn } from '../lib/mcp-client.mjs';
import { sleep } from '../lib/procs.mjs';
import { gatewayAddress, startEverything, startGateway, startRedis } from '../lib/services.mjs';
import { exercise } from './full-flow.mjs';

export async function initializeStatus(url, token) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  await res.arrayBuffer();
  return res.status;
}

export async function sharedRedis() {
  const everything = await startEverything();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const redis = { url: (await startRedis()).url, prefix: 'interop-shared:' };
  const apps = [{ slug: 'everything', upstream: everything.url }];
  const a = await startGateway({ mode: 'gateway', idp, redis, apps, proxyPort: address.proxyPort });
  showOnFailure('gateway A', a.proc);
  const b = await startGateway({ mode: 'gateway', idp, redis, apps, publicUrl: a.url });
  showOnFailure('gateway B', b.proc);

  const provider = new MemoryOAuthProvider();
  const { client } = await connectWithSignIn(a.mcpUrl('everything'), provider, a.url);
  await exercise(client);
  const token = provider.tokens().access_token;
  equal(await initializeStatus(b.mcpUrl('everything'), token), 200, 'instance B accepts the token A issued');

  const revoke = await fetch(`${a.url}/api/v1/auth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, client_id: provider.clientInformation().client_id }).toString(),
  });
  equal(revoke.status, 200, 'revocation at A');
  const deadline = Date.now() + 1000;
  let status;
  do {
    status = await initializeStatus(b.mcpUrl('everything'), token);
    if (status === 401) break;
    await sleep(50);
  } while (Date.now() < deadline);
  equal(status, 401, 'instance B refuses the revoked token within one second');
  check((await initializeStatus(a.mcpUrl('everything'), token)) === 401, 'instance A refuses it too');
  await client.close().catch(() => {});
}
