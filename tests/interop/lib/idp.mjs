// The upstream identity provider: oidc-provider (a certified OpenID
// Provider) on a loopback port, with an interaction handler that signs the
// test user in and grants consent without a person. RS256 everywhere; JWT
// access tokens for resource indicators (RFC 8707), refresh tokens always.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';
import { onCleanup } from './procs.mjs';

export const USER = { sub: 'user_interop', email: 'interop@example.com', name: 'Interop User', picture: 'https://img.example.com/i.png' };

export async function startIdp({ callbackUrls, accessTokenTtl = 3600 }) {
  // Listen on port 0 first (no free-port race), then build the provider for
  // the issuer that port gives; nobody can call before `handle` is set.
  let handle = (_req, res) => res.writeHead(503).end();
  const server = createServer((req, res) => handle(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  onCleanup(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-rs256', alg: 'RS256', use: 'sig' };
  const client = { client_id: 'drio-gateway', client_secret: 'interop-secret' };
  const calls = { token: 0, refresh: 0 };
  // Who signs in at the next login interaction (setUser switches person).
  const accounts = new Map([[USER.sub, USER]]);
  let current = USER;
  const provider = new Provider(issuer, {
    clients: [
      {
        ...client,
        redirect_uris: callbackUrls,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ['interop-cookie-key'] },
    pkce: { required: () => true },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ ...(accounts.get(sub) ?? USER), sub, email_verified: true }),
    }),
    issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
    ttl: { AccessToken: accessTokenTtl, RefreshToken: 86400, IdToken: 3600, Grant: 86400, Session: 86400, Interaction: 600, AuthorizationCode: 60 },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => ({
          scope: 'openid profile email',
          audience: resource,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.on('grant.success', (ctx) => {
    calls.token += 1;
    if (ctx.oidc.params.grant_type === 'refresh_token') calls.refresh += 1;
  });

  const handler = provider.callback();
  handle = async (req, res) => {
    if (!req.url.startsWith('/interaction/')) return handler(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        await provider.interactionFinished(req, res, { login: { accountId: current.sub } }, { mergeWithLastSubmission: false });
        return;
      }
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${e.message}`);
    }
  };
  const setUser = (user) => {
    accounts.set(user.sub, user);
    current = user;
  };
  return { issuer, clientId: client.client_id, clientSecret: client.client_secret, calls, setUser };
}
