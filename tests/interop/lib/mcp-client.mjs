// The official TypeScript MCP SDK client, signing in through the gateway
// exactly as an MCP host would: StreamableHTTPClientTransport with an
// OAuthClientProvider (discovery, dynamic registration, PKCE, refresh are
// the SDK's own); only the browser part is scripted (see browser.mjs).
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  exchangeAuthorization,
  registerClient,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser } from './browser.mjs';

export class MemoryOAuthProvider {
  constructor(redirectUrl = 'http://127.0.0.1:53682/callback') {
    this._redirectUrl = redirectUrl;
    this.authorizationUrl = null;
    this.tokenSaves = 0;
    this.registrations = 0;
  }
  get redirectUrl() {
    return this._redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'drio interop (TypeScript SDK)',
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.lastState = randomUUID();
    return this.lastState;
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
    this.registrations += 1;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.tokenSaves += 1;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/**
 * Connects to `mcpUrl`, signing in first if the gateway asks. Returns the
 * connected client and what the client's redirect URI received.
 * `clientOptions` (e.g. `{ capabilities }`) go to the SDK's Client.
 */
export async function connectWithSignIn(mcpUrl, provider, issuer, clientOptions) {
  const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const first = transport();
  const client = new Client({ name: 'drio-interop', version: '1.0.0' }, clientOptions);
  try {
    await client.connect(first);
    return { client, redirect: null };
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.authorizationUrl) throw new Error('the SDK never asked to open an authorization URL');
  const redirect = await new Browser().authorize(provider.authorizationUrl, provider.redirectUrl);
  if (redirect.error) throw new Error(`authorization failed: ${redirect.error} ${redirect.error_description}`);
  if (redirect.state !== provider.lastState) throw new Error(`state mismatch: ${redirect.state} vs ${provider.lastState}`);
  if (redirect.iss !== issuer) throw new Error(`RFC 9207 iss is ${redirect.iss}, expected ${issuer}`);
  await first.finishAuth(redirect.code);
  const signedIn = new Client({ name: 'drio-interop', version: '1.0.0' }, clientOptions);
  await signedIn.connect(transport());
  return { client: signedIn, redirect };
}

/**
 * A token for the management API, as drio's dashboard gets one (seed 001):
 * register, authorize without `resource`, exchange. The SDK's own OAuth
 * steps; an app's token is never a management credential.
 */
export async function managementToken(gatewayUrl) {
  const provider = new MemoryOAuthProvider('http://127.0.0.1:53683/callback');
  const metadata = await discoverAuthorizationServerMetadata(gatewayUrl);
  const clientInformation = await registerClient(gatewayUrl, { metadata, clientMetadata: provider.clientMetadata });
  const state = randomUUID();
  const { authorizationUrl, codeVerifier } = await startAuthorization(gatewayUrl, {
    metadata,
    clientInformation,
    redirectUrl: provider.redirectUrl,
    scope: 'openid profile email',
    state,
  });
  if (authorizationUrl.searchParams.has('resource')) throw new Error('the management sign-in must not name a resource');
  const redirect = await new Browser().authorize(authorizationUrl, provider.redirectUrl);
  if (redirect.error || redirect.state !== state) throw new Error(`management sign-in failed: ${JSON.stringify(redirect)}`);
  const tokens = await exchangeAuthorization(gatewayUrl, {
    metadata,
    clientInformation,
    authorizationCode: redirect.code,
    codeVerifier,
    redirectUri: provider.redirectUrl,
  });
  return tokens.access_token;
}
