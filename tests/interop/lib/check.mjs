// Assertions that say what was expected, and a tiny sequential runner that
// prints a table, the gateway log tail of a failing case, and exits non-zero
// on any failure or when no case ran.
import { cleanupAll } from './procs.mjs';

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

export function equal(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

const results = [];
let logs = [];

/** Registers a process whose log tail is printed if the running case fails. */
export function showOnFailure(name, proc) {
  logs.push([name, proc]);
}

export async function runCase(name, fn) {
  const started = Date.now();
  logs = [];
  process.stdout.write(`-- ${name} ... `);
  try {
    await fn();
    const ms = Date.now() - started;
    results.push({ name, ok: true, ms });
    console.log(`ok (${(ms / 1000).toFixed(1)} s)`);
  } catch (e) {
    const ms = Date.now() - started;
    results.push({ name, ok: false, ms, error: e });
    console.log(`FAILED (${(ms / 1000).toFixed(1)} s)\n   ${e.stack ?? e}`);
    for (const [n, proc] of logs) console.log(`   --- ${n} log tail ---\n${proc.tail(30)}`);
  } finally {
    await cleanupAll();
  }
}

export function summary(started) {
  console.log('\n== interop summary');
  for (const r of results) console.log(`${r.ok ? 'PASS' : 'FAIL'}  ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.name}`);
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed, ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
  // A filter that matches no case ran nothing and proved nothing.
  if (results.length === 0) console.log('no case ran (does the filter match a case name?)');
  return results.length > 0 && failed === 0;
}
