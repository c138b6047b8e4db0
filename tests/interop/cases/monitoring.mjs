// Case 8: a real Prometheus server (Debian's `prometheus`, as tests/run.sh
// installs it) scrapes the gateway's admin listener every second with the
// alert rules of deploy/prometheus/alerts.yml loaded. After an MCP client
// signs in and calls tools, and a request hits an app whose upstream is down,
// Prometheus' HTTP API answers queries for the request, token-cache and
// upstream-error series; every alert rule evaluates without error; and every
// query of the Grafana dashboard (deploy/grafana/drio-gateway.json) is valid
// PromQL that Prometheus runs.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, equal, showOnFailure } from '../lib/check.mjs';
import { startIdp } from '../lib/idp.mjs';
import { MemoryOAuthProvider, connectWithSignIn } from '../lib/mcp-client.mjs';
import { freePort, start, tempDir, waitFor } from '../lib/procs.mjs';
import { gatewayAddress, startEverything, startGateway, suiteDir } from '../lib/services.mjs';

const repo = join(suiteDir, '..', '..');

async function startPrometheus(adminUrl) {
  const dir = tempDir('drio-prometheus-');
  const port = await freePort();
  const target = new URL(adminUrl).host;
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ${join(repo, 'deploy', 'prometheus', 'alerts.yml')}
scrape_configs:
  - job_name: drio-gateway
    static_configs:
      - targets: ['${target}']
`,
  );
  const proc = start(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.console.templates=/dev/null',
      '--web.console.libraries=/dev/null',
    ],
    { logPath: join(dir, 'prometheus.log'), cwd: dir },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor('prometheus', async () => {
    if (proc.child.exitCode !== null) throw new Error(`prometheus exited:\n${proc.tail()}`);
    return (await fetch(`${url}/-/ready`).catch(() => null))?.ok;
  }, 30000);
  return { url, proc };
}

/** GET /api/v1/query; the result vector (throws on a PromQL error). */
async function query(prom, expr) {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.errorType}: ${body.error}`);
  return body.data.result;
}

/** Polls until `expr` has a sample whose value satisfies `ok`; returns the samples. */
async function until(prom, expr, ok, what) {
  let last = [];
  await waitFor(what, async () => {
    last = await query(prom, expr);
    return last.some((s) => ok(Number(s.value[1])));
  }, 20000).catch((e) => {
    throw new Error(`${e.message}; last answer to ${expr}: ${JSON.stringify(last)}`);
  });
  return last;
}

/** Every PromQL string in the dashboard (panel targets). */
function dashboardExprs() {
  const dash = JSON.parse(readFileSync(join(repo, 'deploy', 'grafana', 'drio-gateway.json'), 'utf8'));
  const out = [];
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(dash);
  return out;
}

export async function monitoring() {
  const everything = await startEverything();
  const address = await gatewayAddress();
  const idp = await startIdp({ callbackUrls: [address.callback] });
  const deadPort = await freePort();
  const gw = await startGateway({
    mode: 'gateway',
    idp,
    apps: [
      { slug: 'everything', upstream: everything.url },
      { slug: 'down', upstream: `http://127.0.0.1:${deadPort}`, public: true },
    ],
    proxyPort: address.proxyPort,
  });
  showOnFailure('gateway', gw.proc);
  const prom = await startPrometheus(gw.admin);
  showOnFailure('prometheus', prom.proc);
  await until(prom, 'up{job="drio-gateway"}', (v) => v === 1, 'prometheus scrapes the admin listener');

  // Traffic: sign in, call tools (each call validates the token: first
  // verified, then from the cache), and hit the app whose upstream is down.
  const provider = new MemoryOAuthProvider();
  const { client } = await connectWithSignIn(gw.mcpUrl('everything'), provider, gw.url);
  for (let i = 0; i < 5; i++) await client.listTools();
  await client.close().catch(() => {});
  for (let i = 0; i < 3; i++) {
    const res = await fetch(gw.mcpUrl('down'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    equal(res.status, 502, 'an app whose upstream is down');
  }

  const ok2xx = await until(prom, 'sum(drio_requests_total{app="everything", status_class="2xx"})', (v) => v >= 5, 'request series');
  check(Number(ok2xx[0].value[1]) >= 5, 'requests to the app were counted');
  await until(prom, 'sum(drio_token_validations_total{result="valid", source="l1"})', (v) => v >= 1, 'token-cache hits (l1)');
  await until(prom, 'sum(drio_token_validations_total{result="valid"})', (v) => v >= 5, 'token validations');
  await until(prom, 'drio_token_cache_entries', (v) => v >= 1, 'the token cache size');
  const upstream = await until(prom, 'drio_upstream_errors_total{app="down", kind="connect"}', (v) => v >= 3, 'upstream-error series');
  equal(upstream.length, 1, 'one upstream-error series for the app that is down');
  await until(prom, 'sum(drio_requests_total{app="down", status_class="5xx"})', (v) => v >= 3, '502s counted');
  const limits = await query(prom, 'drio_rate_limit_decisions_total');
  equal(limits.length, 8, 'rate-limit decision series (4 limits x allowed/limited) are exported from the start');

  // Every alert rule loaded and evaluated without error.
  let groups = [];
  await waitFor('alert rules evaluated', async () => {
    const res = await (await fetch(`${prom.url}/api/v1/rules`)).json();
    groups = res.data.groups;
    return groups.length > 0 && groups.every((g) => g.rules.every((r) => r.health === 'ok'));
  }, 20000).catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(groups.flatMap((g) => g.rules.map((r) => [r.name, r.health, r.lastError])))}`);
  });
  const rules = groups.flatMap((g) => g.rules);
  check(rules.length >= 10, `alert rules loaded: ${rules.length}`);

  // Every dashboard query is PromQL Prometheus accepts (Grafana's variables
  // replaced as Grafana would), and the traffic panels have data.
  const exprs = dashboardExprs();
  check(exprs.length >= 15, `dashboard queries: ${exprs.length}`);
  for (const expr of exprs) {
    const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$app', '.*');
    await query(prom, promql);
  }
  // A counter's first sample is its baseline for rate(): traffic after it shows.
  for (let i = 0; i < 3; i++) await fetch(gw.mcpUrl('down'), { method: 'POST', body: '{}' }).then((r) => r.arrayBuffer());
  await until(prom, 'sum by (app, status_class) (rate(drio_requests_total{app=~".*"}[1m]))', (v) => v > 0, 'the traffic panel has data');
}
