// The Plexus operator's view: plain JavaScript, no build step, no network beyond
// the node. Data comes from /ui/api/* (read, `ops` scope), the live tail from the
// /ui/live WebSocket, and actions (configuration rollback, requeuing dead jobs,
// pausing a queue) go to /rpc as the node's own methods, offered only to a token
// that may call them. Charts are SVG drawn here. Everything shown is set as text,
// never as HTML.
'use strict';

const TOKEN_KEY = 'plexus-token';
const TAIL_MAX = 200000; // rows the live tail keeps; older ones are let go
const ROW = 24; // px, one row of a virtual list
const POLL_MS = 2000;
const HISTORY = 150; // chart points kept: 5 minutes at one per POLL_MS
const PAGE = 1000; // ids per jobs.requeue request when the node does not say (jobs.max_list's default)
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  who: null,
  families: {},
  tail: [], // {kind, text, cells[]} newest last
  tailLost: 0,
  topics: new Map(), // topic -> {count, recent: [ms...]}
  live: null,
  prev: { services: null, bus: null },
  history: [], // {t, calls: {service: calls/s}, p99: {service: ms}}, oldest first
  timer: null,
  flash: null, // a message for the next render of a page
};

// ----- small DOM helpers -----
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const main = () => document.getElementById('main');
function show(...nodes) { main().replaceChildren(...nodes.filter(n => n !== null && n !== undefined)); }
function badge(s) { return el('span', { class: 'badge s-' + String(s || 'unknown').toLowerCase() }, s || 'unknown'); }
function time(us) { return us ? new Date(us / 1000).toISOString().replace('T', ' ').slice(0, 23) : ''; }
function num(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 1 : digits });
}
function table(headers, rows, numeric) {
  const n = new Set(numeric || []);
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { class: n.has(i) ? 'num' : null }, h)))),
    el('tbody', {}, rows.map(r => el('tr', {}, r.map((c, i) => el('td', { class: n.has(i) ? 'num' : null }, c))))));
}
function message(text, error) { return el('p', { class: error ? 'msg error' : 'msg' }, text); }
function absent(what) {
  return el('div', { class: 'absent', 'data-absent': what },
    `absent: the ${what} family is not in this node. Its page appears when the node runs it.`);
}

// ----- talking to the node -----
function authHeaders() { return state.token ? { Authorization: 'Bearer ' + state.token } : {}; }
async function api(path) {
  const r = await fetch(path, { headers: authHeaders() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error?.message || body.error || `${r.status} ${r.statusText}`);
  return body;
}
async function rpc(method, params) {
  const r = await fetch('/rpc', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...authHeaders() },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = await r.json();
  if (body.error) throw new Error(`${body.error.message} (${body.error.code})`);
  return body.result;
}

// ----- a list that renders only the rows in view -----
// Rows are {cells: [text...], kind?, id?}. With `selectable`, each row starts with
// a checkbox bound to its id in `selected` (a Set kept across redraws).
class VirtualList {
  constructor(columns, options) {
    this.columns = columns; // [{title, cls}]
    this.selectable = !!options?.selectable;
    this.onSelect = options?.onSelect || (() => {});
    this.selected = new Set();
    this.rows = [];
    const lead = this.selectable ? [el('span', { class: 'w0' }, '')] : [];
    this.head = el('div', { class: 'vhead' }, lead, columns.map(c => el('span', { class: c.cls }, c.title)));
    this.inner = el('div', { class: 'rows' });
    this.spacer = el('div', { class: 'spacer' }, this.inner);
    this.view = el('div', { class: 'vlist' }, this.spacer);
    this.view.addEventListener('scroll', () => this.schedule());
    this.node = el('div', {}, this.head, this.view);
    this.pending = false;
  }
  set(rows) { this.rows = rows; this.schedule(); }
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }
  check(row) {
    const box = el('input', { type: 'checkbox', class: 'pick', 'data-id': row.id, checked: this.selected.has(row.id) });
    box.addEventListener('change', () => {
      if (box.checked) this.selected.add(row.id); else this.selected.delete(row.id);
      this.onSelect();
    });
    return el('span', { class: 'w0' }, box);
  }
  draw() {
    const n = this.rows.length;
    this.spacer.style.height = (n * ROW) + 'px';
    const first = Math.max(0, Math.floor(this.view.scrollTop / ROW) - 5);
    const count = Math.ceil((this.view.clientHeight || 480) / ROW) + 10;
    const last = Math.min(n, first + count);
    this.inner.style.top = (first * ROW) + 'px';
    const out = [];
    for (let i = first; i < last; i++) {
      const r = this.rows[i];
      out.push(el('div', { class: 'vrow', 'data-kind': r.kind, 'data-id': r.id },
        this.selectable ? this.check(r) : null,
        r.cells.map((c, j) => el('span', { class: this.columns[j].cls, title: c }, c))));
    }
    this.inner.replaceChildren(...out);
  }
}

// Rows matching a search as typed: every word of `query` in the row's text.
function matching(rows, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return rows;
  return rows.filter(r => words.every(w => r.text.includes(w)));
}

// ----- charts: SVG drawn here, no library -----
const PALETTE = ['#2f5fd0', '#c62828', '#1a7f37', '#b26b00', '#7b3fb8', '#00838f', '#6b7280'];
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
// A line chart of `series` ([{name, points: [[t ms, value|null]...]}]) over the
// same time axis; gaps where a value is null.
function lineChart(id, title, unit, series) {
  const W = 640, H = 180, L = 56, R = 10, T = 10, B = 22;
  const all = series.flatMap(s => s.points);
  const values = all.map(p => p[1]).filter(v => v !== null && Number.isFinite(v));
  const times = all.map(p => p[0]);
  const box = el('div', { class: 'chart', id }, el('div', { class: 'chart-title' }, `${title} (${unit})`));
  if (values.length < 2) {
    box.append(el('p', { class: 'msg' }, 'Collecting: a point every 2 s.'));
    return box;
  }
  const max = Math.max(...values) * 1.1 || 1;
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
  const y = v => T + (1 - v / max) * (H - T - B);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
  for (const f of [0, 0.5, 1]) {
    g.append(svg('line', { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), stroke: '#e3e6ec' }));
    g.append(svg('text', { x: L - 6, y: y(max * f) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7280' }, num(max * f, 2)));
  }
  const clock = t => new Date(t).toISOString().slice(11, 19);
  g.append(svg('text', { x: L, y: H - 6, 'font-size': 11, fill: '#6b7280' }, clock(t0)));
  g.append(svg('text', { x: W - R, y: H - 6, 'font-size': 11, fill: '#6b7280', 'text-anchor': 'end' }, clock(t1)));
  const legend = el('div', { class: 'legend' });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    let d = '';
    let pen = 'M';
    for (const [t, v] of s.points) {
      if (v === null || !Number.isFinite(v)) { pen = 'M'; continue; }
      d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
    }
    if (d) g.append(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.5, 'data-series': s.name }));
    legend.append(el('span', { class: 'key', 'data-color': i % PALETTE.length }, s.name));
  });
  box.append(g, legend);
  return box;
}

// histogram_quantile over cumulative [le, count] buckets (as the node does).
function quantile(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (total <= 0) return null;
  const rank = q * total;
  let prev = [0, 0];
  for (const [le, count] of buckets) {
    if (count >= rank) {
      const width = count - prev[1];
      return prev[0] + (le - prev[0]) * (width > 0 ? (rank - prev[1]) / width : 1);
    }
    prev = [le, count];
  }
  return prev[0];
}

// One chart point per service from two readings of /ui/api/services: calls/s,
// and p99 (ms) of the calls that ended between them, from the buckets' growth.
function samplePoint(prev, now) {
  const dt = (now.at_ms - prev.at_ms) / 1000;
  if (dt <= 0) return null;
  const before = new Map(prev.methods.map(m => [m.service + '.' + m.method, m]));
  const calls = {}, grown = {};
  for (const m of now.methods) {
    const p = before.get(m.service + '.' + m.method);
    calls[m.service] = (calls[m.service] || 0) + Math.max(0, m.calls - (p?.calls || 0)) / dt;
    const old = new Map((p?.buckets || []).map(([le, n]) => [le, n]));
    const acc = grown[m.service] || (grown[m.service] = new Map());
    for (const [le, n] of m.buckets || []) acc.set(le, (acc.get(le) || 0) + Math.max(0, n - (old.get(le) || 0)));
  }
  const p99 = {};
  for (const [service, acc] of Object.entries(grown)) {
    const q = quantile(0.99, [...acc.entries()].sort((a, b) => a[0] - b[0]));
    p99[service] = q === null ? null : q * 1000;
  }
  return { t: now.at_ms, calls, p99 };
}

// Reads /ui/api/services and adds a chart point (every POLL_MS, on any page).
async function sampleServices() {
  const s = await api('/ui/api/services');
  const prev = state.prev.services;
  state.prev.services = s;
  state.prevServices = prev;
  const point = prev && samplePoint(prev, s);
  if (point) {
    state.history.push(point);
    if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
  }
  return s;
}

// The busiest services' lines (at most 6, the rest summed as "others").
function serviceSeries(field) {
  const totals = new Map();
  for (const p of state.history) for (const [s, v] of Object.entries(p.calls)) totals.set(s, (totals.get(s) || 0) + v);
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(e => e[0]);
  return top.map(name => ({ name, points: state.history.map(p => [p.t, p[field][name] ?? null]) }));
}

// ----- the live tail: one socket from sign-in on -----
function tailRow(item) {
  let cells;
  if (item.kind === 'call') {
    cells = [time(item.at), 'call', item.method, item.outcome, num(item.duration_us / 1000, 3) + ' ms', item.caller || '', item.correlation_id];
  } else {
    cells = [time(item.at), 'event', item.topic, '', '', item.source || '', item.correlation_id];
  }
  return { kind: item.kind, cells, text: cells.join(' ').toLowerCase() };
}
function noteTopic(topic) {
  let t = state.topics.get(topic);
  if (!t) { t = { count: 0, recent: [] }; state.topics.set(topic, t); }
  t.count++;
  t.recent.push(Date.now());
  if (t.recent.length > 5000) t.recent.splice(0, t.recent.length - 5000);
}
function ingest(items) {
  for (const item of items) {
    if (item.kind === 'lost') { state.tailLost += (item.calls || 0) + (item.events || 0); continue; }
    if (item.kind !== 'call' && item.kind !== 'event') continue;
    if (item.kind === 'event') { noteTopic(item.topic); liveRefresh(item.topic); }
    state.tail.push(tailRow(item));
  }
  if (state.tail.length > TAIL_MAX * 1.1) {
    const over = state.tail.length - TAIL_MAX;
    state.tail.splice(0, over);
    state.tailLost += over;
  }
  if (tailView.onData) tailView.onData();
}
// The node's own change events re-draw the page they concern as they arrive:
// registry and health changes the health and services pages, configuration
// changes the configuration page (which is not polled).
const LIVE_PAGES = [['plexus.registry.', ['health', 'services']], ['plexus.health.', ['health', 'services']],
  ['plexus.config.', ['config']]];
let liveTimer = null;
function liveRefresh(topic) {
  const name = location.hash.replace(/^#\//, '') || 'health';
  // Job events update the jobs page's counts in place (its loaded dead list stays).
  if (name === 'jobs' && topic.startsWith('jobs.')) { jobsView.liveCounts(); return; }
  const hit = LIVE_PAGES.some(([prefix, names]) => topic.startsWith(prefix) && names.includes(name));
  if (!hit || liveTimer) return;
  liveTimer = setTimeout(() => { liveTimer = null; if (state.who) render(); }, 200);
}
function connectLive() {
  if (state.live) return;
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ui/live');
  state.live = ws;
  const mark = on => { document.getElementById('live').className = 'live ' + (on ? 'on' : 'off'); };
  ws.onopen = () => ws.send(JSON.stringify({ token: state.token || null }));
  ws.onmessage = m => {
    let items;
    try { items = JSON.parse(m.data); } catch { return; }
    if (Array.isArray(items)) {
      if (items.length && items[0].kind === 'hello') mark(true);
      ingest(items);
    }
  };
  ws.onclose = () => {
    mark(false);
    state.live = null;
    if (state.who) setTimeout(connectLive, 2000);
  };
}

// ----- pages -----
const pages = {
  async health() {
    const h = await api('/ui/api/health');
    return [
      el('h2', {}, 'System health'),
      el('div', { class: 'cards' }, el('div', { class: 'card', id: 'system-status' }, 'System', el('b', {}, badge(h.status)))),
      table(['Component', 'Kind', 'Criticality', 'Status', 'Verdict', 'Reason'],
        h.components.map(c => [c.component, c.kind, c.criticality, badge(c.status), badge(c.verdict), c.reason])),
    ];
  },

  async services() {
    const s = await sampleServices();
    const prev = state.prevServices;
    const dt = prev ? (s.at_ms - prev.at_ms) / 1000 : 0;
    const before = new Map((prev?.methods || []).map(m => [m.service + '.' + m.method, m]));
    const rate = (now, key, field) => {
      const p = before.get(key);
      return p && dt > 0 ? Math.max(0, now - p[field]) / dt : null;
    };
    return [
      el('h2', {}, 'Services and instances'),
      el('div', { class: 'charts' },
        lineChart('chart-calls', 'Calls per second by service', 'calls/s', serviceSeries('calls')),
        lineChart('chart-p99', 'p99 by service, over each 2 s', 'ms', serviceSeries('p99'))),
      table(['Service', 'Instance', 'Version', 'Status', 'Reason', 'Breaker', 'Failure rate %'],
        s.instances.map(i => [i.service, i.instance, i.version || '', badge(i.status), i.reason || '',
          i.breaker ? el('span', { 'data-breaker': i.instance }, badge(i.breaker.state)) : '–',
          i.breaker ? num(i.breaker.failure_rate) : '–']), [6]),
      el('h3', {}, 'Methods'),
      table(['Method', 'Calls', 'Calls/s', 'Errors', 'Errors/s', 'p99 ms'],
        s.methods.map(m => {
          const key = m.service + '.' + m.method;
          return [key, num(m.calls, 0), num(rate(m.calls, key, 'calls')), num(m.errors, 0),
            num(rate(m.errors, key, 'errors')), num(m.p99_ms, 3)];
        }), [1, 2, 3, 4, 5]),
      el('p', { class: 'msg' }, 'Rates are over the last refresh (every 2 s); the table\'s p99 is since the node started, the chart\'s over each 2 s, both from plexus_call_duration_seconds.'),
    ];
  },

  async bus() {
    const b = await api('/ui/api/bus');
    const prev = state.prev.bus;
    state.prev.bus = b;
    const dt = prev ? (b.at_ms - prev.at_ms) / 1000 : 0;
    const pubRate = prev && dt > 0 ? (b.published - prev.published) / dt : null;
    const now = Date.now();
    const topics = [...state.topics.entries()].sort((a, b2) => b2[1].count - a[1].count).slice(0, 500)
      .map(([topic, t]) => [topic, num(t.count, 0), num(t.recent.filter(x => now - x < 10000).length / 10)]);
    return [
      el('h2', {}, 'Event bus'),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, 'Published', el('b', {}, num(b.published, 0))),
        el('div', { class: 'card' }, 'Published/s', el('b', {}, num(pubRate))),
        el('div', { class: 'card' }, 'Dead-lettered', el('b', { id: 'dead-letters' }, num(b.dead_lettered, 0))),
        el('div', { class: 'card' }, 'Dead letters lost', el('b', {}, num(b.dead_letter_lost, 0))),
        el('div', { class: 'card' }, 'Unmatched', el('b', {}, num(b.unmatched, 0)))),
      el('h3', {}, 'Subscriptions'),
      table(['Subscription', 'Pattern', 'Delivered', 'Lag', 'Dropped', 'Dead-lettered', 'Rejected'],
        b.subscriptions.map(s => [s.name, s.pattern, num(s.delivered, 0), num(s.lag, 0), num(s.dropped, 0),
          num(s.dead_lettered, 0), num(s.rejected, 0)]), [2, 3, 4, 5, 6]),
      el('h3', {}, 'Topics seen by the live tail'),
      topics.length ? table(['Topic', 'Events', 'Events/s (10 s)'], topics, [1, 2])
        : el('p', { class: 'msg' }, 'No events since this page opened.'),
    ];
  },

  async tail() {
    return [el('h2', {}, 'Live tail: calls and events'), tailView.mount()];
  },

  async datastore() {
    if (!state.families.datastore) return [el('h2', {}, 'DataStore'), absent('datastore')];
    const slow = await api('/ui/api/datastore');
    const m = await api('/ui/api/metrics?prefix=plexus_store_');
    const value = (name, label) => m.series.find(x => x.series === name || (label && x.series === `${name}{${label}}`))?.value;
    const queries = (slow.queries || []).slice().reverse();
    return [el('h2', {}, 'DataStore'),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, 'Pool: open', el('b', {}, num(value('plexus_store_pool_connections', 'state="open"'), 0))),
        el('div', { class: 'card' }, 'In use', el('b', {}, num(value('plexus_store_pool_connections', 'state="in_use"'), 0))),
        el('div', { class: 'card' }, 'Idle', el('b', {}, num(value('plexus_store_pool_connections', 'state="idle"'), 0))),
        el('div', { class: 'card' }, 'Waiting', el('b', {}, num(value('plexus_store_pool_waiters'), 0))),
        el('div', { class: 'card' }, 'Acquire timeouts', el('b', {}, num(value('plexus_store_pool_acquire_timeouts_total'), 0)))),
      el('h3', {}, `Slow queries (${queries.length}, newest first)`),
      queries.length ? table(['At', 'Kind', 'Collection', 'Took ms', 'SQL'],
        queries.map(q => [new Date(q.at_unix_ms).toISOString(), q.kind, q.collection, num(q.duration_seconds * 1000, 3), el('code', {}, q.sql)]), [3])
        : message('None over the threshold.'),
      el('h3', {}, 'Statements and transactions'),
      seriesTable(m.series)];
  },
  async jobs() {
    if (!state.families.jobs) return [el('h2', {}, 'Jobs'), absent('jobs')];
    return jobsView.mount();
  },

  async inference() {
    if (!state.families.inference) return [el('h2', {}, 'Inference'), absent('inference')];
    const inf = await api('/ui/api/inference');
    if (inf.absent) return [el('h2', {}, 'Inference'), absent('inference')];
    const usage = inf.usage || [];
    const sum = f => usage.reduce((a, u) => a + (u[f] || 0), 0);
    const tokens = usage.filter(u => u.prompt_tokens || u.completion_tokens || u.cost_usd);
    const requests = usage.filter(u => u.ok || u.cached || u.errors);
    const deployments = (inf.models || []).flatMap(m => (m.deployments || []).map(d => ({ model: m.id, alias: m.alias, ...d })));
    return [el('h2', {}, 'Inference'),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, 'Prompt tokens', el('b', { id: 'inference-prompt' }, num(sum('prompt_tokens'), 0))),
        el('div', { class: 'card' }, 'Completion tokens', el('b', { id: 'inference-completion' }, num(sum('completion_tokens'), 0))),
        el('div', { class: 'card' }, 'Cost (USD)', el('b', { id: 'inference-cost' }, num(sum('cost_usd'), 6))),
        el('div', { class: 'card' }, 'Budget refusals', el('b', {}, num(inf.budget_refusals, 0)))),
      el('h3', {}, 'Tokens and cost per model'),
      tokens.length ? el('table', { id: 'inference-usage' },
        el('thead', {}, el('tr', {}, ['Model', 'Prompt tokens', 'Completion tokens', 'Cost USD']
          .map((h, i) => el('th', { class: i ? 'num' : null }, h)))),
        el('tbody', {}, tokens.map(u => el('tr', { 'data-model': u.model },
          el('td', {}, u.model),
          el('td', { class: 'num', 'data-field': 'prompt' }, num(u.prompt_tokens, 0)),
          el('td', { class: 'num', 'data-field': 'completion' }, num(u.completion_tokens, 0)),
          el('td', { class: 'num' }, num(u.cost_usd, 6))))))
        : message('No tokens yet.'),
      el('p', { class: 'msg' }, 'Per model at its provider, since the node started (plexus_inference_tokens_total, plexus_inference_cost_usd_total).'),
      el('h3', {}, 'Requests per name asked for'),
      requests.length ? table(['Alias or model', 'Answered', 'Cached', 'Failed', 'Fallbacks'],
        requests.map(u => [u.model, num(u.ok, 0), num(u.cached, 0), num(u.errors, 0), num(inf.fallbacks?.[u.model] || 0, 0)]), [1, 2, 3, 4])
        : message('No request yet.'),
      el('h3', {}, 'Models and deployments'),
      deployments.length ? table(['Model', 'Alias', 'Deployment', 'Provider', 'Breaker', 'Failures'],
        deployments.map(d => [d.model, d.alias ? 'yes' : '', d.deployment, d.provider,
          el('span', { 'data-deployment-breaker': d.deployment }, badge(d.breaker)), num(inf.failures?.[d.deployment] || 0, 0)]), [5])
        : message('No model configured.')];
  },

  async config() {
    const c = await api('/ui/api/config');
    const admin = state.who?.admin;
    const out = el('div', { id: 'config-msg' }, state.flash ? message(state.flash) : null);
    state.flash = null;
    const pick = (id, v) => el('select', { id }, c.versions.map(x =>
      el('option', { value: x.version, selected: x.version === v ? true : null }, 'v' + x.version)));
    const older = c.versions.length > 1 ? c.versions[1].version : c.current;
    const from = pick('diff-from', older);
    const to = pick('diff-to', c.current);
    const diffOut = el('div', { id: 'diff' });
    const compare = async () => {
      try {
        const d = await api(`/ui/api/config/diff?from=${from.value}&to=${to.value}`);
        diffOut.replaceChildren(d.changes.length
          ? table(['Path', 'v' + d.from, 'v' + d.to], d.changes.map(x =>
            [el('code', {}, x.path), JSON.stringify(x.before) ?? '(unset)', JSON.stringify(x.after) ?? '(unset)']))
          : message('No difference.'));
      } catch (e) { diffOut.replaceChildren(message(e.message, true)); }
    };
    const rollback = v => confirmAction(`Roll back the configuration to version ${v}? This makes a new version with v${v}'s content and applies it now.`, async () => {
      try {
        const r = await rpc('node.config_rollback', { version: v });
        state.flash = `Rolled back: version ${r.version} now holds v${v}'s content.`;
        await render();
      } catch (e) { out.replaceChildren(message('Rollback refused: ' + e.message, true)); }
    });
    return [
      el('h2', {}, 'Configuration'),
      out,
      el('p', {}, 'In force: ', el('b', { id: 'config-current' }, 'v' + c.current),
        admin ? '' : el('span', { class: 'msg', id: 'read-only' }, ' (read-only: rollback needs an admin token)')),
      table(['Version', 'At', 'Author', 'Reason', 'Changed', ''],
        c.versions.map(v => [
          'v' + v.version + (v.rollback_of ? ` (rollback of v${v.rollback_of})` : ''),
          time(v.at), v.author, v.reason, (v.changed || []).join(', '),
          admin && v.version !== c.current
            ? el('button', { type: 'button', class: 'rollback', 'data-version': v.version, onclick: () => rollback(v.version) }, `Roll back to v${v.version}`)
            : ''])),
      el('h3', {}, 'Difference between two versions'),
      el('div', { class: 'toolbar' }, 'from', from, 'to', to, el('button', { type: 'button', id: 'compare', onclick: compare }, 'Compare')),
      diffOut,
    ];
  },

  async audit() { return auditView.mount(); },
};

// A family's series without histogram buckets (their _sum and _count stay).
function seriesTable(series) {
  const shown = series.filter(s => !s.series.includes('_bucket{'));
  return shown.length ? table(['Series', 'Value'], shown.map(s => [el('code', {}, s.series), num(s.value, 6)]), [1])
    : message('No samples yet.');
}

// The live tail view: newest first, searchable, virtual.
const tailView = {
  list: null, query: '', filtered: null, onData: null, paused: false,
  mount() {
    this.list = new VirtualList([
      { title: 'At', cls: 'w2' }, { title: 'Kind', cls: 'w1' }, { title: 'Method / topic', cls: 'w2' },
      { title: 'Outcome', cls: 'w1' }, { title: 'Took', cls: 'w1' }, { title: 'Caller / source', cls: 'w1' },
      { title: 'Correlation id', cls: 'grow' }]);
    this.count = el('span', { id: 'tail-count' });
    const search = el('input', { type: 'search', id: 'tail-search', placeholder: 'search method, topic, correlation id…', size: 40 });
    search.value = this.query;
    search.addEventListener('input', () => { this.query = search.value.trim().toLowerCase(); this.refresh(); });
    const pause = el('label', {}, el('input', { type: 'checkbox', id: 'tail-pause' }), ' pause');
    pause.firstChild.addEventListener('change', e => { this.paused = e.target.checked; if (!this.paused) this.refresh(); });
    const clear = el('button', { type: 'button', onclick: () => { state.tail = []; state.tailLost = 0; this.refresh(); } }, 'Clear');
    let queued = false;
    this.onData = () => {
      if (this.paused || queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; if (this.onData) this.refresh(); });
    };
    this.refresh();
    return el('div', {}, el('div', { class: 'toolbar' }, search, pause, clear, this.count), this.list.node);
  },
  refresh() {
    const all = state.tail;
    const q = this.query;
    const rows = [];
    for (let i = all.length - 1; i >= 0; i--) if (!q || all[i].text.includes(q)) rows.push(all[i]);
    this.list.set(rows);
    this.count.textContent = `${rows.length.toLocaleString('en-US')} shown of ${all.length.toLocaleString('en-US')}` +
      (state.tailLost ? `, ${state.tailLost.toLocaleString('en-US')} lost` : '');
    this.count.dataset.shown = rows.length;
    this.count.dataset.total = all.length;
  },
  unmount() { this.onData = null; },
};

// The audit trail: pages of 500 from audit.query, appended, searchable, virtual.
const auditView = {
  async mount() {
    const list = new VirtualList([
      { title: 'At', cls: 'w2' }, { title: 'Who', cls: 'w1' }, { title: 'Method', cls: 'w2' },
      { title: 'Outcome', cls: 'w1' }, { title: 'Took', cls: 'w1' }, { title: 'Correlation id', cls: 'grow' }]);
    const filters = { method: el('input', { id: 'audit-method', placeholder: 'method' }),
      who: el('input', { id: 'audit-who', placeholder: 'who' }),
      correlation_id: el('input', { id: 'audit-correlation', placeholder: 'correlation id' }) };
    const count = el('span', { id: 'audit-count' });
    const msg = el('div');
    let rows = [];
    let cursor = null;
    const more = el('button', { type: 'button', id: 'audit-more' }, 'Load more');
    const load = async reset => {
      if (reset) { rows = []; cursor = null; }
      const q = new URLSearchParams({ limit: '500' });
      for (const [k, input] of Object.entries(filters)) if (input.value.trim()) q.set(k, input.value.trim());
      if (cursor) q.set('cursor', cursor);
      try {
        const page = await api('/ui/api/audit?' + q);
        if (page.absent) { msg.replaceChildren(absent('audit')); return; }
        for (const e of page.entries) {
          const cells = [time(e.at), e.who || '', e.method, e.outcome?.status === 'ok' ? 'ok' : (e.outcome?.code || 'error'),
            num((e.duration_us || 0) / 1000, 3) + ' ms', e.correlation_id || ''];
          rows.push({ kind: 'audit', cells });
        }
        cursor = page.next_cursor;
        more.disabled = !cursor;
        list.set(rows);
        count.textContent = `${rows.length} entries loaded` + (cursor ? ' (more on the node)' : '');
      } catch (e) { msg.replaceChildren(message(e.message, true)); }
    };
    more.addEventListener('click', () => load(false));
    const apply = el('button', { type: 'button', id: 'audit-apply', onclick: () => load(true) }, 'Search');
    await load(true);
    return [el('h2', {}, 'Audit trail'), msg,
      el('div', { class: 'toolbar' }, filters.method, filters.who, filters.correlation_id, apply, more, count), list.node];
  },
};

// The jobs page: queues with their counts by state (pause, resume and requeue
// of their dead jobs for a token that may call those methods), and the dead-letter
// list: pages of jobs.max_list from jobs.dead appended (or all of them), searched as typed,
// virtual, with bulk requeue of the selected jobs. A token without `jobs.requeue`
// sees no checkbox and no action button.
const jobsView = {
  countsTimer: null,
  // Re-reads the queues' counts at most once a second while job events come.
  liveCounts() {
    if (this.countsTimer) return;
    this.countsTimer = setTimeout(async () => {
      this.countsTimer = null;
      const stats = await api('/ui/api/jobs').catch(() => null);
      for (const q of stats?.queues || []) {
        const row = document.querySelector(`#job-queues tr[data-queue="${CSS.escape(q.queue)}"]`);
        if (!row) continue;
        for (const cell of row.querySelectorAll('td[data-state]')) {
          cell.dataset.value = q[cell.dataset.state];
          cell.textContent = num(q[cell.dataset.state], 0);
        }
      }
    }, 1000);
  },
  async mount() {
    const may = state.who?.may || {};
    const stats = await api('/ui/api/jobs');
    if (stats.absent) return [el('h2', {}, 'Jobs'), absent('jobs')];
    const queues = stats.queues || [];
    const out = el('div', { id: 'jobs-msg' }, state.flash ? message(state.flash) : null);
    state.flash = null;
    const plural = n => `${num(n, 0)} job${n === 1 ? '' : 's'}`;
    const act = (text, method, params, done) => confirmAction(text, async () => {
      try {
        state.flash = done(await rpc(method, params));
        await render();
      } catch (e) { out.replaceChildren(message(`${method} refused: ${e.message}`, true)); }
    });
    const button = (cls, q, label, onclick) => el('button', { type: 'button', class: cls, 'data-queue': q.queue, onclick }, label);
    const actions = q => [
      may['jobs.pause'] && !q.paused ? button('queue-pause', q, 'Pause', () => act(
        `Pause queue ${q.queue}? Its jobs stop starting, on every node, until it is resumed.`,
        'jobs.pause', { queue: q.queue }, () => `Paused ${q.queue}.`)) : null,
      may['jobs.resume'] && q.paused ? button('queue-resume', q, 'Resume', () => act(
        `Resume queue ${q.queue}?`, 'jobs.resume', { queue: q.queue }, () => `Resumed ${q.queue}.`)) : null,
      may['jobs.requeue'] && q.dead ? button('queue-requeue', q, `Requeue ${num(q.dead, 0)} dead`, () => act(
        `Requeue every dead job of ${q.queue} (${num(q.dead, 0)})? They run again now, attempts counted afresh.`,
        'jobs.requeue', { queue: q.queue }, r => `Requeued ${plural(r.requeued)}.`)) : null,
    ];
    const STATES = ['pending', 'running', 'completed', 'dead', 'cancelled'];
    const canAct = ['jobs.pause', 'jobs.resume', 'jobs.requeue'].some(m => may[m]);
    const queueTable = queues.length ? el('table', { id: 'job-queues' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Queue'), el('th', {}, 'State'),
        STATES.map(st => el('th', { class: 'num' }, st)), canAct ? el('th', {}, '') : null)),
      el('tbody', {}, queues.map(q => el('tr', { 'data-queue': q.queue },
        el('td', {}, q.queue), el('td', {}, badge(q.paused ? 'paused' : 'active')),
        STATES.map(st => el('td', { class: 'num', 'data-state': st, 'data-value': q[st] }, num(q[st], 0))),
        canAct ? el('td', { class: 'actions' }, actions(q)) : null))))
      : message('No queue has a job yet.');

    const msg = el('div');
    const list = new VirtualList([
      { title: 'Id', cls: 'w1' }, { title: 'Queue', cls: 'w1' }, { title: 'Target', cls: 'w2' },
      { title: 'Attempts', cls: 'w1' }, { title: 'Died', cls: 'w2' }, { title: 'Caller', cls: 'w1' },
      { title: 'Last error', cls: 'grow' }], { selectable: !!may['jobs.requeue'], onSelect: () => counts() });
    let rows = [], shown = rows, after = null, complete = false, loading = false;
    const queue = el('select', { id: 'dead-queue' }, el('option', { value: '' }, 'every queue'),
      queues.filter(q => q.dead).map(q => el('option', { value: q.queue }, q.queue)));
    const search = el('input', { type: 'search', id: 'dead-search', placeholder: 'search id, queue, target, error, caller…', size: 36 });
    const count = el('span', { id: 'dead-count' });
    const more = el('button', { type: 'button', id: 'dead-more' }, 'Load more');
    const all = el('button', { type: 'button', id: 'dead-all' }, 'Load all');
    const retry = el('button', { type: 'button', id: 'dead-retry', class: 'danger' }, 'Retry selected');
    const counts = () => {
      const f = n => n.toLocaleString('en-US');
      count.textContent = `${f(shown.length)} shown of ${f(rows.length)} loaded` + (complete ? '' : ' (more on the node)') +
        (list.selectable ? `, ${f(list.selected.size)} selected` : '');
      Object.assign(count.dataset, { shown: shown.length, loaded: rows.length, complete: complete ? '1' : '0', selected: list.selected.size });
      retry.disabled = !list.selected.size;
      retry.textContent = `Retry selected (${f(list.selected.size)})`;
    };
    const refresh = () => { shown = matching(rows, search.value); list.set(shown); counts(); };
    const page = async () => {
      // No limit: pages of the node's jobs.max_list.
      const q = new URLSearchParams();
      if (queue.value) q.set('queue', queue.value);
      if (after !== null) q.set('after', String(after));
      const r = await api('/ui/api/jobs/dead?' + q);
      for (const j of r.jobs || []) {
        const cells = [String(j.id), j.queue, j.target, `${j.attempt}/${j.max_attempts}`,
          j.finished_at ? time(j.finished_at * 1000).slice(0, 19) : '', j.caller || '', j.error || ''];
        rows.push({ id: j.id, kind: 'dead', cells, text: cells.join(' ').toLowerCase() });
      }
      after = r.next ?? null;
      complete = after === null;
    };
    const load = async (reset, toEnd) => {
      if (loading) return;
      loading = true;
      more.disabled = all.disabled = true;
      try {
        if (reset) { rows = []; after = null; complete = false; list.selected.clear(); }
        do { await page(); refresh(); } while (toEnd && !complete && list.node.isConnected);
      } catch (e) { msg.replaceChildren(message(e.message, true)); }
      finally { loading = false; more.disabled = all.disabled = complete; }
    };
    search.addEventListener('input', refresh);
    queue.addEventListener('change', () => load(true, false));
    more.addEventListener('click', () => load(false, false));
    all.addEventListener('click', () => load(false, true));
    retry.addEventListener('click', () => {
      const ids = [...list.selected];
      confirmAction(`Requeue ${plural(ids.length)}? They run again now, attempts counted afresh.`, async () => {
        let done = 0;
        try {
          const chunk = Number(stats.max_list) || PAGE;
          for (let i = 0; i < ids.length; i += chunk) done += (await rpc('jobs.requeue', { ids: ids.slice(i, i + chunk) })).requeued;
          state.flash = `Requeued ${plural(done)}.`;
          await render();
        } catch (e) { out.replaceChildren(message(`Requeued ${plural(done)}, then refused: ${e.message}`, true)); }
      });
    });
    const bulk = list.selectable ? [
      el('button', { type: 'button', id: 'dead-select', onclick: () => { for (const r of shown) list.selected.add(r.id); list.schedule(); counts(); } }, 'Select all shown'),
      el('button', { type: 'button', id: 'dead-unselect', onclick: () => { list.selected.clear(); list.schedule(); counts(); } }, 'Clear selection'),
      retry] : [];
    await load(true, false);
    return [el('h2', {}, 'Jobs'), out,
      canAct ? null : el('p', { class: 'msg', id: 'jobs-read-only' }, 'Read-only: requeue, pause and resume need a token that may call them (admin).'),
      el('h3', {}, 'Queues'), queueTable,
      el('h3', {}, 'Dead letters'), msg,
      el('div', { class: 'toolbar' }, queue, search, more, all, ...bulk, count), list.node];
  },
};

function confirmAction(text, action) {
  const modal = document.getElementById('modal');
  document.getElementById('modal-text').textContent = text;
  modal.hidden = false;
  const ok = document.getElementById('modal-ok');
  const cancel = document.getElementById('modal-cancel');
  const close = () => { modal.hidden = true; ok.onclick = null; cancel.onclick = null; };
  cancel.onclick = close;
  ok.onclick = async () => { close(); await action(); };
}

// ----- routing and sign-in -----
function signIn(reason) {
  state.who = null;
  const input = el('input', { type: 'password', id: 'token', placeholder: 'bearer token', size: 40, autocomplete: 'off' });
  const form = el('form', { id: 'sign-in' }, el('h2', {}, 'Sign in'),
    reason ? message(reason, true) : null,
    el('p', {}, 'This node needs a token with the ops scope to read, and an admin token to act.'),
    input, ' ', el('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    state.token = input.value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    await start();
  });
  show(form);
}

let rendering = 0;
async function render() {
  const name = (location.hash.replace(/^#\//, '') || 'health');
  const page = pages[name] || pages.health;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + name);
  if (name !== 'tail') tailView.unmount();
  const ticket = ++rendering;
  try {
    const nodes = await page();
    if (ticket !== rendering) return; // a newer render started
    show(...[nodes].flat());
    main().dataset.page = name;
  } catch (e) {
    if (ticket === rendering) show(message(e.message, true));
  }
}

async function start() {
  const who = await api('/ui/api/whoami').catch(e => ({ authenticated: false, error: e.message }));
  if (!who.authenticated) return signIn(state.token ? (who.error || 'unknown token') : null);
  if (!who.ops) return signIn(`token "${who.name}" lacks the ops scope`);
  state.who = who;
  document.getElementById('node').textContent = 'node ' + who.node;
  document.getElementById('who').textContent = (who.name || 'open') + (who.admin ? ' (admin)' : ' (read-only)');
  state.families = await api('/ui/api/families').catch(() => ({}));
  connectLive();
  await render();
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.visibilityState !== 'visible') return;
    const name = location.hash.replace(/^#\//, '') || 'health';
    if (['health', 'services', 'bus'].includes(name)) render();
    // The services page samples as it draws; elsewhere the charts' history is
    // kept by sampling here.
    if (name !== 'services') sampleServices().catch(() => {});
  }, POLL_MS);
}

window.addEventListener('hashchange', () => { if (state.who) render(); });
document.addEventListener('DOMContentLoaded', start);
