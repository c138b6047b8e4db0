// Two people on one gateway (issue 12): each signs in with the official
// TypeScript SDK, each manages only their own apps with a management token,
// and each reaches only the apps whose access policy lets them in. The
// owner then shares her app with the other by subject, and it opens.
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn, managementToken } from '../lib/mcp-client.mjs';
import { gatewayAddress, startEverything, startGateway } from '../lib/services.mjs';

const ALICE = { sub: 'user_alice', email: 'alice@example.com', name: 'Alice', picture: 'https://img.example.com/a.png' };
const BOB = { sub: 'user_bob', email: 'bob@example.com', name: 'Bob', picture: 'https://img.example.com/b.png' };

async function api(gw, token, method, path, body) {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, challenge: res.headers.get('www-authenticate') };
}

async function echo(client, message) {
  const r = await client.callTool({ name: 'echo', arguments: { message } });
  check(!r.isError && r.content?.[0]?.text?.includes(message), `echo: ${JSON.stringify(r)}`);
}

export async function twoUsers() {
  const everything = await startEverything();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const gw = await startGateway({
    mode: 'gateway',
    idp,
    apps: [{ slug: 'everything', upstream: everything.url }],
    proxyPort: address.proxyPort,
  });
  showOnFailure('gateway', gw.proc);

  idp.setUser(ALICE);
  const aliceAdmin = await managementToken(gw.url);
  const created = await api(gw, aliceAdmin, 'POST', '/api/v1/apps', {
    name: "Alice's tools",
    config: { upstreamUrl: everything.url, public: false },
  });
  equal(created.status, 201, `alice creates her app: ${JSON.stringify(created.body)}`);
  const { id, slug } = created.body.app;
  const alice = await connectWithSignIn(gw.mcpUrl(slug), new MemoryOAuthProvider(), gw.url);
  await echo(alice.client, 'from alice');

  idp.setUser(BOB);
  const bobAdmin = await managementToken(gw.url);
  const listed = await api(gw, bobAdmin, 'GET', '/api/v1/apps');
  equal(listed.status, 200);
  check(!listed.body.apps.some((a) => a.id === id), "bob's list does not show alice's app");
  equal((await api(gw, bobAdmin, 'GET', `/api/v1/apps/${id}`)).status, 404, "alice's app is hidden from bob");
  equal((await api(gw, bobAdmin, 'PUT', `/api/v1/apps/${id}/config`, { upstreamUrl: everything.url })).status, 404);

  // Bob can use the shared config app, but his token there manages nothing.
  const bobEverything = new MemoryOAuthProvider();
  const shared = await connectWithSignIn(gw.mcpUrl('everything'), bobEverything, gw.url);
  await echo(shared.client, 'from bob');
  const misuse = await api(gw, bobEverything.tokens().access_token, 'GET', '/api/v1/apps');
  equal(misuse.status, 401, 'an app token is not a management token');
  check(misuse.challenge?.includes('invalid_token'), `challenge: ${misuse.challenge}`);

  // Bob asks for alice's app: the gateway refuses to issue him a code.
  let refused = null;
  try {
    await connectWithSignIn(gw.mcpUrl(slug), new MemoryOAuthProvider(), gw.url);
  } catch (e) {
    refused = e;
  }
  check(refused && /403/.test(refused.message), `bob must not get a token for alice's app: ${refused?.message}`);

  // Alice shares her app with bob by subject; now his SDK signs in and calls it.
  idp.setUser(ALICE);
  const share = await api(gw, aliceAdmin, 'PUT', `/api/v1/apps/${id}/config`, {
    upstreamUrl: everything.url,
    public: false,
    access: { mode: 'list', users: [BOB.sub] },
  });
  equal(share.status, 200, `share: ${JSON.stringify(share.body)}`);
  idp.setUser(BOB);
  const bob = await connectWithSignIn(gw.mcpUrl(slug), new MemoryOAuthProvider(), gw.url);
  await echo(bob.client, 'bob, invited');
  await echo(alice.client, 'alice, still');
  for (const c of [alice.client, shared.client, bob.client]) await c.close();
}
