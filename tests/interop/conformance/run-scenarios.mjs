// Runs every server scenario of @modelcontextprotocol/conformance against
// an MCP endpoint, one `conformance server --scenario -o DIR` process each
// (60 s cap), and returns [{ scenario, passed, checks, output }] where
// `checks` is the tool's checks.json for that run ([{ id, status, ... }],
// status SUCCESS | FAILURE | WARNING | INFO ...). A scenario passes only
// when the tool exits 0 and its checks.json has at least one SUCCESS and no
// FAILURE or WARNING: the printed "Passed: N/N" line alone also matches
// 0/0 (everything skipped) and ignores warnings.
//   node run-scenarios.mjs URL      prints a table
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/** Every checks.json below `dir` (the tool nests it in a per-run folder). */
function findChecks(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name === 'checks.json') found.push(join(entry.parentPath ?? entry.path, entry.name));
  }
  return found;
}

/** The server scenario names, as `conformance list` prints them. */
export async function serverScenarios(node = process.execPath) {
  const { output } = await run(node, ['list']);
  const section = output.split('Server scenarios')[1]?.split('Client scenarios')[0] ?? '';
  return [...section.matchAll(/^\s*-\s+(\S+)/gm)].map((m) => m[1]);
}

/** Whether a scenario's checks count as a pass (see the header). */
export function checksPass(checks) {
  return checks.some((c) => c.status === 'SUCCESS') && !checks.some((c) => c.status === 'FAILURE' || c.status === 'WARNING');
}

export async function runScenarios(url, { node = process.execPath } = {}) {
  const scenarios = await serverScenarios(node);
  if (scenarios.length === 0) throw new Error('`conformance list` named no server scenario');
  const results = [];
  for (const scenario of scenarios) {
    const out = mkdtempSync(join(tmpdir(), 'drio-conformance-'));
    try {
      const { code, output } = await run(node, ['server', '--url', url, '--scenario', scenario, '--output-dir', out]);
      const files = findChecks(out);
      const checks = files.length === 1 ? JSON.parse(readFileSync(files[0], 'utf8')) : [];
      const passed = code === 0 && files.length === 1 && checksPass(checks);
      results.push({ scenario, passed, checks, output });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  return results;
}

/**
 * Per-check differences between two runs of one scenario: a check id present
 * in one and not the other, or with another status. Empty when the second
 * run saw exactly what the first saw.
 */
export function checkDifferences(direct, through) {
  const byId = (checks) => {
    const m = new Map();
    for (const c of checks) m.set(c.id, [...(m.get(c.id) ?? []), c.status]);
    return m;
  };
  const d = byId(direct);
  const t = byId(through);
  const diffs = [];
  for (const id of new Set([...d.keys(), ...t.keys()])) {
    const a = (d.get(id) ?? []).join(',') || 'absent';
    const b = (t.get(id) ?? []).join(',') || 'absent';
    if (a !== b) diffs.push(`${id}: ${a} directly, ${b} through the gateway`);
  }
  return diffs;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await runScenarios(process.argv[2]);
  for (const r of results) {
    const counts = {};
    for (const c of r.checks) counts[c.status] = (counts[c.status] ?? 0) + 1;
    console.log(`${r.passed ? 'pass' : 'FAIL'}  ${r.scenario.padEnd(40)} ${JSON.stringify(counts)}`);
  }
  console.log(`${results.filter((r) => r.passed).length}/${results.length} passed`);
}
