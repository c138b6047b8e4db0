// Runs every server scenario of @modelcontextprotocol/conformance against
// an MCP endpoint, one `conformance server --scenario` process each (60 s
// cap), and returns [{ scenario, passed, output }].
//   node run-scenarios.mjs URL      prints a table
import { execFile } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');

function run(node, args, timeout = 60000) {
  return new Promise((resolve) => {
    execFile(node, [cli, ...args], { timeout, maxBuffer: 8 << 20, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

/** The server scenario names, as `conformance list` prints them. */
export async function serverScenarios(node = process.execPath) {
  const { output } = await run(node, ['list']);
  const section = output.split('Server scenarios')[1]?.split('Client scenarios')[0] ?? '';
  return [...section.matchAll(/^\s*-\s+(\S+)/gm)].map((m) => m[1]);
}

export async function runScenarios(url, { node = process.execPath } = {}) {
  const results = [];
  for (const scenario of await serverScenarios(node)) {
    const { code, output } = await run(node, ['server', '--url', url, '--scenario', scenario]);
    const passed = code === 0 && /Passed: (\d+)\/\1, 0 failed/.test(output);
    results.push({ scenario, passed, output });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await runScenarios(process.argv[2]);
  for (const r of results) console.log(`${r.passed ? 'pass' : 'FAIL'}  ${r.scenario}`);
  console.log(`${results.filter((r) => r.passed).length}/${results.length} passed`);
}
