// Case 8: per-tool scopes and step-up authorization (MCP authorization
// 2025-11-25, "Scope Challenge Handling"; RFC 6750 §3.1) with the official
// TypeScript SDK client. The app's `echo` requires `tools:echo`; the client
// signs in with the basic scopes the 401 names, other tools work, `echo`
// gets 403 insufficient_scope, the SDK starts a new authorization with the
// scope the challenge names (the token's scopes plus the tool's), the
// consent page asks only for the new scope, and the retried call succeeds.
//
// The client keeps no refresh token: SDK 1.32.2 answers a 403
// insufficient_scope by calling auth(), which refreshes when it holds a
// refresh token; a refresh cannot widen the grant (RFC 6749 §6), so the
// retried call meets the same challenge and the SDK gives up ("Server
// returned 403 after trying upscoping") instead of re-authorizing.
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { Browser } from '../lib/browser.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn } from '../lib/mcp-client.mjs';
import { gatewayAddress, startEverything, startGateway } from '../lib/services.mjs';

/** A client that keeps its access token only (see the note above). */
class AccessTokenOnly extends MemoryOAuthProvider {
  saveTokens(tokens) {
    const { refresh_token: _dropped, ...rest } = tokens;
    super.saveTokens(rest);
  }
}

/** The browser, keeping the consent page it was shown. */
class ConsentRecorder extends Browser {
  async approve(pageUrl, html) {
    this.consentHtml = html;
    return super.approve(pageUrl, html);
  }
}

function jwtScopes(token) {
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  return (claims.scope ?? '').split(' ').filter(Boolean).sort();
}

function listItems(html, id) {
  const at = html.indexOf(`id="${id}"`);
  if (at < 0) return [];
  const list = html.slice(at, html.indexOf('</ul>', at));
  return [...list.matchAll(/<li data-scope="([^"]*)"/g)].map((m) => m[1]);
}

export async function stepUp() {
  const everything = await startEverything();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const policy = '[[apps.tools]]\nname = "echo"\nrequired_scopes = ["tools:echo"]\n';
  const gw = await startGateway({
    mode: 'gateway',
    idp,
    apps: [{ slug: 'everything', upstream: everything.url, extra: policy }],
    proxyPort: address.proxyPort,
  });
  showOnFailure('gateway', gw.proc);

  const user = new AccessTokenOnly();
  const { client } = await connectWithSignIn(gw.mcpUrl('everything'), user, gw.url);
  const first = jwtScopes(user.tokens().access_token);
  check(!first.includes('tools:echo'), `the first sign-in asked for the basic scopes only: ${first.join(' ')}`);

  const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
  check(!sum.isError, `a tool without scopes works: ${JSON.stringify(sum)}`);

  user.authorizationUrl = null;
  let refused = null;
  try {
    await client.callTool({ name: 'echo', arguments: { message: 'stepped up' } });
  } catch (e) {
    refused = e;
  }
  check(refused instanceof UnauthorizedError, `echo first fails, the SDK re-authorizes: ${refused}`);
  check(user.authorizationUrl, 'the SDK asked to open an authorization URL');
  const wanted = [...first, 'tools:echo'].sort().join(' ');
  equal(user.authorizationUrl.searchParams.get('scope'), wanted, 'the SDK asks for the scopes the challenge named');
  equal(user.authorizationUrl.searchParams.get('resource'), gw.mcpUrl('everything'), 'for the same resource');

  const browser = new ConsentRecorder();
  const redirect = await browser.authorize(user.authorizationUrl, user.redirectUrl);
  if (redirect.error) throw new Error(`step-up authorization failed: ${redirect.error} ${redirect.error_description}`);
  equal(redirect.state, user.lastState, 'state round-trips');
  check(browser.consentHtml, 'the gateway asked for consent to the new scope');
  equal(listItems(browser.consentHtml, 'requested-scopes').join(' '), 'tools:echo', 'consent asks only for the new scope');
  equal(listItems(browser.consentHtml, 'granted-scopes').sort().join(' '), first.join(' '), 'and shows the rest as granted');

  await client.transport.finishAuth(redirect.code);
  check(jwtScopes(user.tokens().access_token).includes('tools:echo'), 'the new token carries tools:echo');
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'stepped up' } });
  check(echo.content?.[0]?.text?.includes('stepped up'), `the retried call succeeds: ${JSON.stringify(echo)}`);
  await client.close().catch(() => {});
}
