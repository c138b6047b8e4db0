// Child processes, ports and cleanup for the interop suite. Every process
// the suite starts is registered here and killed (its whole process group)
// when the suite ends, whatever the outcome.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set();
const cleanups = [];

export function onCleanup(fn) {
  cleanups.push(fn);
}

export async function cleanupAll() {
  for (const child of children) killTree(child);
  children.clear();
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch {
      // best effort
    }
  }
}

function killTree(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanupAll();
    process.exit(130);
  });
}
process.on('exit', () => {
  for (const child of children) killTree(child);
});

/** A free loopback port (bound to 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a process in its own group, output to `logPath`. */
export function start(cmd, args, { env = {}, logPath, cwd } = {}) {
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return {
    child,
    logPath,
    stop() {
      killTree(child);
      children.delete(child);
    },
    tail(lines = 40) {
      try {
        return readFileSync(logPath, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
}

/** Polls `probe` until it resolves truthy, or throws after `ms`. */
export async function waitFor(what, probe, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`${what} not ready within ${ms} ms${last ? `: ${last.message}` : ''}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
