// The interop suite: real MCP clients, a real MCP server and a real OpenID
// provider through the gateway built from this checkout. Run by run.sh.
import { runCase, summary } from './lib/check.mjs';
import { fullFlow } from './cases/full-flow.mjs';
import { sharedRedis } from './cases/shared-redis.mjs';
import { apiKeyInjection, disabledTool } from './cases/credentials.mjs';
import { pythonSdk } from './cases/python-sdk.mjs';
import { conformance } from './cases/conformance.mjs';
import { twoUsers } from './cases/two-users.mjs';
import { monitoring } from './cases/monitoring.mjs';
import { stepUp } from './cases/step-up.mjs';
import { urlElicitation } from './cases/elicitation.mjs';

const started = Date.now();
const only = process.argv[2];
const cases = [
  ['1a full flow, gateway tokens, embedded store', () => fullFlow({ mode: 'gateway', redis: false })],
  ['1b full flow, gateway tokens, Redis store', () => fullFlow({ mode: 'gateway', redis: true })],
  ['1c full flow, upstream tokens, embedded store', () => fullFlow({ mode: 'upstream', redis: false })],
  ['1d full flow, upstream tokens, Redis store', () => fullFlow({ mode: 'upstream', redis: true })],
  ['2 two instances share one Redis: token and revocation', sharedRedis],
  ['3 API-key upstream sees the key, never the client token', apiKeyInjection],
  ['4 a disabled tool is refused at the gateway', disabledTool],
  ['5 the Python MCP SDK signs in and calls tools', pythonSdk],
  ['6 conformance server scenarios, direct and through the gateway', conformance],
  ['7 two users: each manages and reaches only what the policy allows', twoUsers],
  ['8 Prometheus scrapes the admin listener: series, alert rules, dashboard queries', monitoring],
  ["9 step-up: a tool's scope is authorized when the tool is first called", stepUp],
  ['10 connect your account: URL-mode elicitation with the TypeScript SDK', urlElicitation],
];
for (const [name, fn] of cases) {
  if (!only || name.startsWith(only)) await runCase(name, fn);
}
process.exit(summary(started) ? 0 : 1);
