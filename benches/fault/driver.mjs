// Load driver of benches/fault.sh: steady concurrent MCP POSTs through two
// gateways, tagged by the phase benches/fault.sh is in, checked one by one.
//
//   node driver.mjs CONFIG.json
//
// CONFIG: {"gateways":{"A":url,"B":url}, "admins":{"A":url,"B":url}, "mcpPath":"/apps/fault/mcp", "idp":url, "aud":url,
//          "concurrency":n, "longConcurrency":n, "longDelayMs":ms, "timeoutMs":ms,
//          "phaseFile":path, "reportFile":path, "followReadyz":bool}
// The driver writes each phase it switched to into phaseFile + ".ack".
//
// Like a load balancer, it sends to the gateways whose admin /readyz answered
// 200 at the last poll (every 100 ms), and to all of them when none did (the
// store is down: /readyz fails on every instance, the data plane still works).
//
// The phase is read from phaseFile (fault.sh writes it); "stop" ends the run:
// no new request starts, in-flight ones finish, the report prints, and the
// exit status says whether every goal held (0) or not (1).
//
// Every request is a JSON-RPC tools/call carrying a unique marker and id; the
// upstream echoes both, so an answer meant for another request is caught.
// Columns: new-token = 200s with a token first obtained when the phase began
// (never seen by any cache: verified by JWT); cut = connections that failed
// after the request was sent (allowed only while the upstream is killed);
// dropped = those that were not allowed.
// Outcomes: ok (200, right id and marker), wrong (200 with another answer, an
// error without drio's envelope, or the client's token reaching the upstream),
// a status code (with envelope), hang (no complete answer within timeoutMs),
// refused (connection refused: nothing sent), reset (connection failed after
// the request was sent, before an answer), cut (answer started, never finished).
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const names = Object.keys(cfg.gateways);
const agents = Object.fromEntries(names.map((n) => [n, new http.Agent({ keepAlive: true, maxSockets: 256 })]));

let phase = '';
const ready = Object.fromEntries(names.map((n) => [n, true]));
async function pollReady() {
  await Promise.all(
    names.map(async (n) => {
      try {
        const res = await fetch(`${cfg.admins[n]}/readyz`, { signal: AbortSignal.timeout(500) });
        ready[n] = res.status === 200;
        await res.arrayBuffer();
      } catch {
        ready[n] = false;
      }
    }),
  );
}
const phases = []; // {name, startedAt}
const records = [];
const notes = []; // details of failures worth reading
let seq = 0;
let tokens = []; // tokens obtained before the first phase (cached everywhere by now)
let fresh = []; // tokens obtained when the current phase began (if the IdP answered)

let switching = false;
function readPhase() {
  if (switching) return;
  let p = '';
  try {
    p = readFileSync(cfg.phaseFile, 'utf8').trim();
  } catch {}
  if (!p || p === phase) return;
  phase = p;
  phases.push({ name: p, startedAt: Date.now() });
  const ack = () => writeFileSync(`${cfg.phaseFile}.ack`, p);
  if (p === 'stop') return ack();
  // New tokens for this phase, obtained before fault.sh acts (it waits for
  // the ack): in a "-down" phase they are first used during the outage, so no
  // cache has seen them and they verify by JWT (with the cached JWKS).
  switching = true;
  getTokens(2)
    .then((t) => { fresh = t; }, () => { fresh = []; })
    .finally(() => { switching = false; ack(); });
}

async function getTokens(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${cfg.idp}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: `fault-user-${Date.now()}-${i}`, aud: cfg.aud, ttl: 900 }),
      signal: AbortSignal.timeout(1000),
    });
    if (res.status !== 200) throw new Error(`IdP answered ${res.status}`);
    out.push((await res.json()).access_token);
  }
  return out;
}

// One request; resolves with its record (never rejects).
function send(gw, token, long) {
  const id = ++seq;
  const marker = `m-${id}-${Math.random().toString(36).slice(2)}`;
  const sse = long && id % 2 === 0;
  const args = { marker, ...(long ? { delay_ms: cfg.longDelayMs, sse } : {}) };
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: args } });
  const url = new URL(cfg.mcpPath, cfg.gateways[gw]);
  const rec = { id, gw, long, startPhase: phase, endPhase: '', outcome: '', status: 0, reused: false };
  return new Promise((resolve) => {
    let done = false;
    let headersSeen = false;
    const finish = (outcome, detail) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      rec.outcome = outcome;
      rec.endPhase = phase;
      if (detail && notes.length < 400) notes.push({ id, gw, phase: rec.startPhase, outcome, status: rec.status, detail: String(detail).slice(0, 300) });
      records.push(rec);
      resolve(rec);
    };
    const req = http.request(url, {
      method: 'POST',
      agent: agents[gw],
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        'content-length': Buffer.byteLength(body),
      },
    });
    const timer = setTimeout(() => {
      finish('hang', `no complete answer within ${cfg.timeoutMs} ms (headers ${headersSeen ? 'received' : 'not received'})`);
      req.destroy();
    }, cfg.timeoutMs);
    req.on('socket', (s) => { rec.reused = req.reusedSocket; s.setNoDelay(true); });
    req.on('error', (e) => {
      if (e.code === 'ECONNREFUSED') return finish('refused');
      finish(headersSeen ? 'cut' : 'reset', `${e.code || ''} ${e.message}${req.reusedSocket ? ' (reused keep-alive connection)' : ''}`);
    });
    req.on('response', (res) => {
      headersSeen = true;
      rec.status = res.statusCode;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => finish('cut', 'response aborted'));
      res.on('error', (e) => finish('cut', `${e.code || ''} ${e.message}`));
      res.on('end', () => {
        if (!res.complete) return finish('cut', 'response ended before its end');
        const text = Buffer.concat(chunks).toString('utf8');
        finish(...judge(res, text, id, marker));
      });
    });
    req.end(body);
  });
}

// [outcome, detail?] for a complete response.
function judge(res, text, id, marker) {
  if (res.statusCode !== 200) {
    try {
      const env = JSON.parse(text);
      if (env?.error?.code && env.error.requestId === res.headers['x-request-id']) return [String(res.statusCode)];
    } catch {}
    return ['wrong', `status ${res.statusCode} without drio's envelope: ${text.slice(0, 200)}`];
  }
  let msg;
  if ((res.headers['content-type'] || '').startsWith('text/event-stream')) {
    const datas = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    msg = datas.find((d) => d.id !== undefined);
  } else {
    try { msg = JSON.parse(text); } catch {}
  }
  if (!msg || msg.id !== id || msg.result?.content?.[0]?.text !== marker) {
    return ['wrong', `expected id ${id} marker ${marker}, got ${text.slice(0, 200)}`];
  }
  if (msg.result.sawAuthorization) return ['wrong', 'the client token reached the upstream'];
  return ['ok'];
}

async function worker(i, long) {
  let n = i;
  while (phase !== 'stop') {
    const inRotation = cfg.followReadyz === false ? names : names.filter((g) => ready[g]);
    const choices = inRotation.length ? inRotation : names;
    const gw = choices[n++ % choices.length];
    const useFresh = fresh.length > 0 && n % 2 === 0;
    const pool = useFresh ? fresh : tokens;
    const rec = await send(gw, pool[n % pool.length], long);
    rec.fresh = useFresh;
  }
}

// Which outcomes a phase may produce besides ok. A request counts against
// every phase it was in flight during (start or end).
function allowed(rec) {
  const ph = [rec.startPhase, rec.endPhase];
  const set = new Set(['ok']);
  // The upstream is killed (SIGKILL) and restarted within this phase.
  if (ph.some((p) => p === 'upstream-down')) ['502', '504', 'cut'].forEach((o) => set.add(o));
  // Gateway A stopped: connecting to it is refused (nothing sent; the next request goes to B).
  if (ph.some((p) => p.startsWith('gw-a-'))) set.add('refused');
  return set.has(rec.outcome);
}

function report() {
  const byPhase = new Map(phases.filter((p) => p.name !== 'stop').map((p) => [p.name, []]));
  for (const r of records) (byPhase.get(r.startPhase) || byPhase.set(r.startPhase, []).get(r.startPhase)).push(r);
  const cols = ['phase', 'secs', 'sent', '200', 'new-token', '502', '503', '504', 'other', 'refused', 'cut', 'wrong', 'hang', 'dropped', 'unexpected'];
  const rows = [];
  const totals = Object.fromEntries(cols.slice(2).map((c) => [c, 0]));
  phases.forEach((p, i) => {
    if (p.name === 'stop') return;
    const rs = byPhase.get(p.name) || [];
    const next = phases[i + 1]?.startedAt ?? Date.now();
    const count = (f) => rs.filter(f).length;
    const row = {
      phase: p.name,
      secs: ((next - p.startedAt) / 1000).toFixed(1),
      sent: count((r) => r.outcome !== 'refused'),
      200: count((r) => r.outcome === 'ok'),
      'new-token': count((r) => r.outcome === 'ok' && r.fresh),
      502: count((r) => r.outcome === '502'),
      503: count((r) => r.outcome === '503'),
      504: count((r) => r.outcome === '504'),
      other: count((r) => /^\d+$/.test(r.outcome) && !['502', '503', '504'].includes(r.outcome)),
      refused: count((r) => r.outcome === 'refused'),
      cut: count((r) => r.outcome === 'reset' || r.outcome === 'cut'),
      wrong: count((r) => r.outcome === 'wrong'),
      hang: count((r) => r.outcome === 'hang'),
      dropped: count((r) => (r.outcome === 'reset' || r.outcome === 'cut') && !allowed(r)),
      unexpected: count((r) => !allowed(r)),
    };
    for (const c of cols.slice(2)) totals[c] += row[c];
    rows.push(row);
  });
  rows.push({ phase: 'total', secs: '', ...totals });
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(w[i]) : String(v).padStart(w[i]))).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(cols.map((c) => r[c])));
  const bad = records.filter((r) => !allowed(r));
  if (bad.length) {
    console.log(`\n${bad.length} requests with an unexpected outcome (first 15):`);
    const ids = new Set(bad.map((r) => r.id));
    for (const n of notes.filter((x) => ids.has(x.id)).slice(0, 15)) console.log(`  #${n.id} via ${n.gw} in ${n.phase}: ${n.outcome} ${n.status || ''} ${n.detail}`);
    for (const r of bad.filter((r) => !notes.some((x) => x.id === r.id)).slice(0, 5)) console.log(`  #${r.id} via ${r.gw} in ${r.startPhase}..${r.endPhase}: ${r.outcome} ${r.status || ''}`);
  }
  const longDone = records.filter((r) => r.long && r.outcome === 'ok' && [r.startPhase, r.endPhase].some((p) => p.startsWith('gw-a-'))).length;
  console.log(`\nlong requests (${cfg.longDelayMs} ms, JSON and SSE) completed across the gateway restarts: ${longDone}`);
  writeFileSync(cfg.reportFile, JSON.stringify({ rows, unexpected: bad.length, notes: notes.slice(0, 100) }, null, 1));
  const verdict = totals.wrong === 0 && totals.hang === 0 && totals.dropped === 0 && bad.length === 0;
  console.log(
    `VERDICT: ${verdict ? 'PASS' : 'FAIL'} — sent ${totals.sent}, wrong ${totals.wrong}, hangs ${totals.hang}, ` +
      `in-flight dropped ${totals.dropped}, unexpected outcomes ${bad.length}`,
  );
  return verdict;
}

async function main() {
  tokens = await getTokens(4);
  // Warm both gateways' caches with the long-lived tokens (they must keep
  // working from cache and JWT while Redis or the IdP is down).
  for (const gw of names) for (const t of tokens) {
    const r = await send(gw, t, false);
    if (r.outcome !== 'ok') throw new Error(`warm-up request via ${gw} gave ${r.outcome} ${r.status}: ${JSON.stringify(notes.at(-1))}`);
  }
  records.length = 0;
  notes.length = 0;
  readPhase();
  const poll = setInterval(readPhase, 25);
  const readiness = setInterval(pollReady, 100);
  console.log('driver: running');
  const workers = [];
  for (let i = 0; i < cfg.concurrency; i++) workers.push(worker(i, false));
  for (let i = 0; i < cfg.longConcurrency; i++) workers.push(worker(i, true));
  await Promise.all(workers);
  clearInterval(poll);
  clearInterval(readiness);
  for (const a of Object.values(agents)) a.destroy();
  process.exit(report() ? 0 : 1);
}

main().catch((e) => {
  console.error(`driver: ${e.stack || e}`);
  process.exit(2);
});
