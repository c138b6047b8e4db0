// Case 5: the official Python MCP SDK completes the same sign-in and calls,
// so two independent client implementations pass.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { check, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { gatewayAddress, startEverything, startGateway, suiteDir } from '../lib/services.mjs';

export async function pythonSdk() {
  const everything = await startEverything();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const gw = await startGateway({ mode: 'gateway', idp, apps: [{ slug: 'everything', upstream: everything.url }], proxyPort: address.proxyPort });
  showOnFailure('gateway', gw.proc);
  const python = process.env.INTEROP_PYTHON || join(suiteDir, '.venv', 'bin', 'python');
  const { stdout, stderr, code } = await new Promise((resolve) => {
    execFile(python, [join(suiteDir, 'python', 'client.py'), gw.mcpUrl('everything')], { timeout: 60000 }, (err, stdout, stderr) =>
      resolve({ stdout, stderr, code: err ? (err.code ?? 1) : 0 }),
    );
  });
  check(code === 0, `python client exited ${code}:\n${stdout}\n${stderr.split('\n').slice(-25).join('\n')}`);
  const seen = JSON.parse(stdout.trim().split('\n').pop());
  check(seen.registered && seen.has_refresh_token && seen.echo.includes('from python'), `python saw ${JSON.stringify(seen)}`);
}
