// kgate console. Every call goes to the same /v1 API the CLI uses, with the token in an
// Authorization header (kept in sessionStorage: this tab only). No cookies, so another site's
// page cannot act for the operator; the Content-Security-Policy allows no inline script.
'use strict';

const ROLES = { none: 0, viewer: 1, operator: 2, admin: 3 };
const state = { role: 0, token: sessionStorage.getItem('kgate.token') || '', tab: 'overview',
                status: null, history: null, timer: null, switching: null };

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined)
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await resp.text();
  if (text) { try { data = JSON.parse(text); } catch (e) { data = { text }; } }
  if (resp.status === 401 && path !== '/v1/whoami') { signOut('Signed out: ' + (data && data.error)); }
  return { status: resp.status, ok: resp.ok, data };
}

function errorText(r) {
  return (r.data && r.data.error ? r.data.error : 'failed') + ' (HTTP ' + r.status + ')';
}

function banner(msg) {
  const b = $('#banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

// ---- sign in ----

async function start() {
  const r = await api('GET', '/v1/whoami');
  if (r.status === 401) return showLogin(state.token ? 'That token was refused.' : '');
  if (!r.ok) return showLogin(errorText(r));
  state.role = ROLES[r.data.role] || 0;
  $('#whoami').textContent = (r.data.token ? 'token ' + r.data.token : 'open API') + ' · ' + r.data.role;
  $('#logout').hidden = !state.token;
  $('#login').hidden = true;
  $('#tabs').hidden = false;
  document.body.dataset.role = r.data.role;
  applyRole();
  showTab(location.hash.slice(1) || 'overview');
}

function showLogin(msg) {
  $('#tabs').hidden = true;
  $$('.page').forEach(p => { p.hidden = true; });
  $('#login').hidden = false;
  $('#login-error').textContent = msg || '';
  $('#token').focus();
}

function signOut(msg) {
  sessionStorage.removeItem('kgate.token');
  state.token = '';
  clearInterval(state.timer);
  $('#whoami').textContent = '';
  $('#logout').hidden = true;
  showLogin(msg);
}

// Viewers see every page; the controls that change something are hidden (and the API would
// answer 403 anyway).
function applyRole() {
  $$('.needs-operator').forEach(e => { e.hidden = state.role < ROLES.operator; });
  $$('.needs-admin').forEach(e => { e.hidden = state.role < ROLES.admin; });
}

// ---- tabs ----

const loaders = { overview: loadOverview, charts: loadCharts, chaos: loadChaos,
                  experiments: loadExperiments, drills: loadDrills, audit: loadAudit, security: loadSecurity };

function showTab(name) {
  if (!loaders[name]) name = 'overview';
  state.tab = name;
  if (location.hash.slice(1) !== name) history.replaceState(null, '', '#' + name);
  $$('.tab').forEach(t => t.classList.toggle('active', t.dataset.tab === name));
  $$('.page').forEach(p => { p.hidden = p.id !== name; });
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, name === 'charts' ? 5000 : 2000);
}

async function refresh() {
  try {
    await loaders[state.tab]();
    if (!$('#banner').dataset.sticky) banner('');
  } catch (e) {
    banner('kgate is not answering: ' + e.message);
  }
}

// ---- overview ----

function fmt(n, digits = 1) {
  if (n === undefined || n === null) return '-';
  return Number(n).toFixed(digits);
}

function lastPoint(name) {
  const vc = state.history && state.history.vclusters.find(v => v.name === name);
  return vc && vc.points.length ? vc.points[vc.points.length - 1] : null;
}

async function loadOverview() {
  const [s, h] = await Promise.all([api('GET', '/v1/status'), api('GET', '/v1/history?seconds=60')]);
  if (!s.ok) return banner(errorText(s));
  state.status = s.data;
  if (h.ok) state.history = h.data;
  const clusters = Object.fromEntries(s.data.clusters.map(c => [c.name, c]));
  const side = (name, active) => {
    if (!name) return el('td', { text: '-' });
    const c = clusters[name] || {};
    return el('td', {}, el('span', { class: name === active ? 'active-side' : '', text: name }), ' ',
              el('span', { class: c.up ? 'up' : 'down', text: c.up ? 'up' : 'down' }),
              ' ' + fmt(c.probe_ms) + ' ms');
  };
  const body = $('#vc-table tbody');
  body.replaceChildren(...s.data.vclusters.map(vc => {
    const p = lastPoint(vc.name);
    const back = vc.active !== vc.primary;
    const target = back ? vc.primary : vc.secondary;
    const btn = target ? el('button', {
      class: 'switch needs-operator danger', 'data-vcluster': vc.name,
      disabled: state.role < ROLES.operator,
      text: (back ? 'Fail back to ' : 'Fail over to ') + target,
      onclick: () => openSwitch(vc, back, target) }) : '';
    const cells = [
      el('td', { class: 'vc-name', text: vc.name }), el('td', { class: 'active-side', 'data-field': 'active', text: vc.active }),
      el('td', { 'data-field': 'epoch', text: vc.epoch }), side(vc.primary, vc.active),
      side(vc.secondary, vc.active), el('td', { text: vc.client_connections }),
      el('td', { text: p ? fmt(p.requests_per_s) : '-' }), el('td', { text: p ? fmt(p.errors_per_s, 2) : '-' }),
      el('td', { text: vc.cluster_id || '-' }), el('td', { class: 'action' }, btn)];
    // The column names again, for the phone layout (one card per vcluster, app.css).
    const heads = $$('#vc-table thead th').map(th => th.textContent);
    cells.forEach((c, i) => { if (heads[i]) c.dataset.label = heads[i]; });
    return el('tr', { 'data-vcluster': vc.name }, ...cells);
  }));
  applyRole();
  $('#cl-table tbody').replaceChildren(...s.data.clusters.map(c => el('tr', {},
    el('td', { text: c.name }), el('td', { class: c.up ? 'up' : 'down', text: c.up ? 'up' : 'down' }),
    el('td', { text: fmt(c.probe_ms) + ' ms' }), el('td', { class: 'details', text: c.last_error || '-' }))));
  const fleet = s.data.fleet;
  $('#fleet').hidden = !fleet;
  if (fleet) {
    $('#fleet-table tbody').replaceChildren(...fleet.instances.map(i => el('tr', {},
      el('td', { text: i.name }), el('td', { text: i.version }), el('td', { text: i.state }),
      el('td', { text: Object.entries(i.epochs || {}).map(([k, v]) => k + '=' + v).join(' ') }),
      el('td', { text: i.connections }), el('td', { text: fmt(i.lease_age_ms) + ' ms' }))));
  }
}

// ---- failover / failback ----

async function openSwitch(vc, back, target) {
  const verb = back ? 'Fail back' : 'Fail over';
  state.switching = { vc: vc.name, back, target, from: vc.active };
  $('#switch-title').textContent = verb + ' ' + vc.name + ' to ' + target + '?';
  $('#switch-what').textContent = 'Every client connection of ' + vc.name + ' is closed and ' +
    'reconnects to ' + target + ' (now active: ' + vc.active + ', epoch ' + vc.epoch + ').';
  $('#switch-reason').value = '';
  $('#switch-force').checked = false;
  $('#switch-planned').checked = false;
  $('#switch-error').textContent = '';
  const parity = $('#switch-parity');
  parity.className = 'parity';
  parity.textContent = 'Checking parity with ' + target + '…';
  $('#switch-dialog').showModal();
  const r = await api('GET', '/v1/vclusters/' + encodeURIComponent(vc.name) + '/parity?to=' +
                      encodeURIComponent(target));
  if (!r.ok) { parity.className = 'parity bad'; parity.textContent = 'Parity check: ' + errorText(r); return; }
  const d = r.data;
  if (d.error) { parity.className = 'parity bad'; parity.textContent = 'Parity check could not run: ' + d.error; return; }
  parity.className = 'parity ' + (d.count ? 'bad' : 'good');
  parity.replaceChildren(el('div', { text: 'Parity with ' + target + ': ' + d.count + ' difference(s) in ' +
    d.topics + ' topic(s) used recently; configs ' + d.configs }),
    ...(d.differences || []).slice(0, 10).map(x => el('div', { text: '• ' + x.topic + ': ' + x.problem +
      (x.config ? ' ' + x.config : '') + (x.from !== undefined ? ' (' + x.from + ' → ' + x.to + ')' : '') })));
}

function timelineAdd(text, cls) {
  const t = new Date();
  $('#timeline').append(el('li', { class: cls }, el('time', { text: t.toLocaleTimeString() }), text));
}

async function confirmSwitch(ev) {
  ev.preventDefault();
  const sw = state.switching;
  const reason = $('#switch-reason').value.trim();
  if (!reason) { $('#switch-error').textContent = 'Give a reason: it goes into the audit log.'; return; }
  const body = { reason, force: $('#switch-force').checked };
  if ($('#switch-planned').checked) { body.planned = true; delete body.force; }
  if (!sw.back) body.to = sw.target;
  $('#switch-confirm').disabled = true;
  $('#timeline').replaceChildren();
  $('#timeline-box').hidden = false;
  timelineAdd((sw.back ? 'Failback' : 'Failover') + ' of ' + sw.vc + ' to ' + sw.target + ' requested');
  const r = await api('POST', '/v1/vclusters/' + encodeURIComponent(sw.vc) + (sw.back ? '/failback' : '/failover'), body);
  $('#switch-confirm').disabled = false;
  if (!r.ok) {
    $('#switch-error').textContent = errorText(r);
    timelineAdd('Refused: ' + errorText(r), 'error');
    return;
  }
  $('#switch-dialog').close();
  const d = r.data;
  if (!d.changed) { timelineAdd(d.message || 'nothing to do'); loadOverview(); return; }
  timelineAdd('Committed: ' + d.from + ' → ' + d.to + ' at epoch ' + d.epoch + (d.forced ? ' (forced)' : ''));
  if (d.planned) timelineAdd('Planned: producers held ' + d.planned.hold_ms + ' ms (' +
    d.planned.held_requests + ' request(s), sent on to ' + d.to + '), waited for a replication lag of ' +
    d.planned.lag_records_waited + ' record(s)');
  timelineAdd(d.connections_closed + ' connection(s) closed in ' + fmt(d.duration_ms, 2) + ' ms');
  if (d.instances) timelineAdd('Instances acked: ' + (d.instances.acked || []).join(', ') +
    ((d.instances.pending || []).length ? '; pending: ' + d.instances.pending.join(', ') : ''));
  loadOverview();
  watchFirstRequest(sw.vc, d.epoch);
}

// The first request forwarded on the new route, as kgate noted it (status: first_request_at).
async function watchFirstRequest(name, epoch) {
  for (let i = 0; i < 240; i++) {
    const s = await api('GET', '/v1/status');
    const vc = s.ok && s.data.vclusters.find(v => v.name === name);
    if (!vc || vc.epoch !== epoch) return;
    if (vc.first_request_at) {
      timelineAdd('First request on ' + vc.active + ' ' + (vc.first_request_at - vc.switched_at) +
                  ' ms after the switch', 'first-request');
      return;
    }
    await new Promise(res => setTimeout(res, 500));
  }
  timelineAdd('No request on the new side yet (no client has sent one)');
}

// ---- charts ----

const SERIES = [
  ['requests_per_s', 'Requests/s', 1], ['bytes_in_per_s', 'Bytes in/s', 0],
  ['bytes_out_per_s', 'Bytes out/s', 0], ['latency_ms', 'Mean latency (ms)', 2],
  ['errors_per_s', 'Errors/s', 2], ['connections', 'Connections', 0],
];

async function loadCharts() {
  const r = await api('GET', '/v1/history?seconds=3600');
  if (!r.ok) return banner(errorText(r));
  state.history = r.data;
  $('#interval').textContent = r.data.interval_s;
  const list = $('#chart-list');
  list.replaceChildren(...r.data.vclusters.map(vc => el('div', { class: 'chart', 'data-vcluster': vc.name },
    el('h3', { text: vc.name + ' (' + vc.points.length + ' points)' }),
    el('div', { class: 'chart-grid' }, ...SERIES.map(([key, label, digits]) => {
      const last = vc.points.length ? vc.points[vc.points.length - 1][key] : null;
      const canvas = el('canvas', { 'data-series': key });
      const box = el('div', {}, el('div', { class: 'label', text: label + ': ' + (last === null ? '-' : fmt(last, digits)) }), canvas);
      requestAnimationFrame(() => draw(canvas, vc.points, key));
      return box;
    })))));
}

function draw(canvas, points, key) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 120;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#d8dce3'; g.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (points.length < 1) {
    g.fillStyle = '#667085'; g.font = '12px sans-serif'; g.fillText('collecting…', 8, 20); return;
  }
  // The x axis spans what is kept, at least 5 minutes and at most the hour: a kgate that just
  // started shows a readable chart rather than a sliver at the right edge.
  const now = points[points.length - 1].t;
  const span = Math.min(3600 * 1000, Math.max(300 * 1000, now - points[0].t));
  const max = Math.max(1e-9, ...points.map(p => p[key]));
  g.fillStyle = '#667085'; g.font = '11px sans-serif';
  g.fillText('max ' + fmt(max, 2), 6, 12);
  const spanText = 'last ' + Math.round(span / 60000) + ' min';
  g.fillText(spanText, w - 6 - g.measureText(spanText).width, h - 6);
  const at = p => [w - 4 - ((now - p.t) / span) * (w - 8), h - 4 - (p[key] / max) * (h - 24)];
  g.strokeStyle = '#2456c7'; g.fillStyle = '#2456c7'; g.lineWidth = 1.5; g.beginPath();
  points.forEach((p, i) => { const [x, y] = at(p); if (i === 0) g.moveTo(x, y); else g.lineTo(x, y); });
  g.stroke();
  // Dots while there are few points (one point alone draws no line).
  if (points.length < 30) points.forEach(p => { const [x, y] = at(p); g.fillRect(x - 2, y - 2, 4, 4); });
}

// ---- generic tables (chaos rules, experiments, users, ACLs) ----

function cell(v) {
  if (v === null || v === undefined) return '-';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function fillTable(table, rows, columns, actions) {
  $('thead', table).replaceChildren(el('tr', {}, ...columns.map(c => el('th', { text: c })),
                                         actions ? el('th') : null));
  $('tbody', table).replaceChildren(...rows.map(row => el('tr', {},
    ...columns.map(c => el('td', { class: typeof row[c] === 'object' ? 'details' : '', text: cell(row[c]) })),
    actions ? el('td', {}, ...actions(row)) : null)));
  if (!rows.length) $('tbody', table).append(el('tr', {}, el('td', { colspan: columns.length + 1, text: 'none' })));
}

function columnsOf(rows, preferred) {
  const seen = new Set(preferred.filter(c => rows.some(r => c in r)));
  return Array.from(seen);
}

async function act(method, path, body, after) {
  const r = await api(method, path, body);
  if (!r.ok) { banner(errorText(r)); $('#banner').dataset.sticky = '1';
               setTimeout(() => { delete $('#banner').dataset.sticky; }, 8000); return r; }
  if (after) await after();
  return r;
}

// ---- chaos ----

async function loadChaos() {
  const r = await api('GET', '/v1/chaos/rules');
  if (!r.ok) return banner(errorText(r));
  const rules = r.data.rules || [];
  const cols = columnsOf(rules, ['id', 'type', 'vcluster', 'topic', 'rate', 'expires_at', 'matched', 'injected', 'source']);
  fillTable($('#chaos-table'), rules, cols.length ? cols : ['id', 'type'], row => [
    el('button', { class: 'needs-operator', hidden: state.role < ROLES.operator, 'data-rule': row.id, text: 'Remove',
      onclick: () => act('DELETE', '/v1/chaos/rules/' + encodeURIComponent(row.id), undefined, loadChaos) })]);
  const sel = $('#chaos-form select[name=vcluster]');
  if (state.status && sel.options.length === 0) {
    sel.append(el('option', { value: '', text: '(all)' }),
               ...state.status.vclusters.map(v => el('option', { value: v.name, text: v.name })));
  }
}

async function addChaos(ev) {
  ev.preventDefault();
  const f = ev.target;
  let rule;
  try { rule = JSON.parse(f.params.value.trim() || '{}'); } catch (e) { return banner('Parameters: ' + e.message); }
  rule.type = f.type.value.trim();
  for (const k of ['vcluster', 'topic', 'for']) if (f[k].value.trim()) rule[k] = f[k].value.trim();
  if (f.rate.value !== '') rule.rate = Number(f.rate.value);
  await act('POST', '/v1/chaos/rules', rule, loadChaos);
}

// ---- experiments ----

async function loadExperiments() {
  const r = await api('GET', '/v1/experiments');
  if (!r.ok) return banner(errorText(r));
  const rows = r.data.experiments || [];
  fillTable($('#exp-table'), rows, ['id', 'name', 'vcluster', 'status', 'created_at', 'ended_at'], row => [
    el('button', { text: 'Watch', onclick: () => showExperiment(row.id, '') }), ' ',
    el('button', { text: 'Report', onclick: () => showExperiment(row.id, '/report') }), ' ',
    ['pending', 'baseline', 'running'].includes(row.status)
      ? el('button', { class: 'needs-operator danger', hidden: state.role < ROLES.operator, text: 'Stop',
          onclick: () => act('POST', '/v1/experiments/' + encodeURIComponent(row.id) + '/stop', undefined, loadExperiments) })
      : null]);
  // Watching: the open record follows the experiment (this runs every 2 s on this tab).
  if (state.watching && !state.watching.what) await showExperiment(state.watching.id, '');
  const drill = $('#exp-form textarea');
  if (!drill.value && state.status && state.status.vclusters.length) {
    drill.value = JSON.stringify({ name: 'latency drill', hypothesis: 'clients ride out 100 ms of latency',
      vcluster: state.status.vclusters[0].name, duration: '1m', baseline: '10s',
      rules: [{ type: 'latency', delay_ms: 100 }] }, null, 2);
  }
}

async function showExperiment(id, what) {
  state.watching = { id, what };
  const r = await api('GET', '/v1/experiments/' + encodeURIComponent(id) + what);
  $('#exp-detail').hidden = false;
  $('#exp-title').textContent = id + (what ? ' — report' : ' — live');
  $('#exp-body').textContent = r.ok ? JSON.stringify(r.data, null, 2) : errorText(r);
  $('#exp-summary').textContent = r.ok ? experimentSummary(r.data, what) : '';
}

// One line over the record: where the experiment is and what it has seen so far.
function experimentSummary(x, what) {
  if (what) {
    const d = (x.delta_from_expected || {}).summary || {};
    return 'Status ' + x.status + ' · expectations: ' + (d.pass || 0) + ' pass, ' + (d.fail || 0) +
      ' fail, ' + (d['no data'] || 0) + ' no data';
  }
  const live = x.live || {}, during = live.during_so_far || x.during || {};
  return 'Status ' + x.status + (live.phase ? ' (phase ' + live.phase + ')' : '') +
    ' · baseline ' + fmt((x.baseline || {}).requests_per_s) + ' req/s · during ' +
    fmt(during.requests_per_s) + ' req/s · faults injected ' + (during.faults_injected || 0) +
    (x.end_reason ? ' · ended: ' + x.end_reason : '');
}

async function runExperiment(ev) {
  ev.preventDefault();
  let drill;
  try { drill = JSON.parse(ev.target.drill.value); } catch (e) { return banner('Drill: ' + e.message); }
  const r = await act('POST', '/v1/experiments', drill, loadExperiments);
  if (r.ok) showExperiment(r.data.id, '');
}

// ---- drills (recorded by `kgate drill run`) ----

async function loadDrills() {
  const r = await api('GET', '/v1/drills');
  if (!r.ok) return banner(errorText(r));
  fillTable($('#drill-table'), r.data.drills || [],
            ['id', 'name', 'vcluster', 'outcome', 'lost', 'duplicates', 'recorded_at'], row => [
    el('button', { text: 'Report', onclick: () => showDrill(row.id) })]);
}

// The six-field report as kgate renders it (Markdown, shown as text: nothing in it is markup
// the page would interpret).
async function showDrill(id) {
  const r = await api('GET', '/v1/drills/' + encodeURIComponent(id) + '?format=md');
  $('#drill-detail').hidden = false;
  $('#drill-title').textContent = id + ' — report';
  $('#drill-body').textContent = r.ok ? (r.data.text || JSON.stringify(r.data, null, 2)) : errorText(r);
}

// ---- audit ----

function auditSummary(e) {
  const d = e.details || {};
  if (d.vcluster && d.to) return d.vcluster + ': ' + (d.from || '?') + ' → ' + d.to +
    (d.epoch !== undefined ? ' (epoch ' + d.epoch + ')' : '') + (d.actor ? ' by ' + d.actor : '') +
    (d.reason ? ' "' + d.reason + '"' : '') + (d.error ? ' — ' + d.error : '');
  return JSON.stringify(d);
}

async function loadAudit() {
  const [list, verify] = await Promise.all([api('GET', '/v1/audit?limit=200'), api('GET', '/v1/audit/verify')]);
  const v = $('#audit-verify');
  if (verify.ok) {
    v.className = verify.data.intact ? 'up' : 'down';
    v.textContent = verify.data.intact ? 'intact (' + verify.data.entries + ' entries verified)'
                                       : 'BROKEN: ' + (verify.data.message || verify.data.reason);
  } else {
    v.className = 'down'; v.textContent = errorText(verify);
  }
  if (!list.ok) return banner(errorText(list));
  $('#audit-table tbody').replaceChildren(...list.data.entries.slice().reverse().map(e => el('tr', { 'data-type': e.type },
    el('td', { text: e.seq }), el('td', { text: e.ts }), el('td', { text: e.type }),
    el('td', { class: 'details', text: auditSummary(e) }))));
}

// ---- users and ACLs ----

async function loadSecurity() {
  const [u, a] = await Promise.all([api('GET', '/v1/users'), api('GET', '/v1/acls')]);
  const admin = state.role >= ROLES.admin;
  if (u.ok) {
    const users = (u.data.users || []).map(x => ({ name: x.name,
      mechanisms: (x.mechanisms || []).map(m => m.mechanism + (m.iterations ? ' (' + m.iterations +
        ' iterations)' : '')).join(', '),
      updated: (x.mechanisms || []).map(m => m.updated_ts).filter(Boolean).sort().pop() }));
    fillTable($('#users-table'), users, columnsOf(users, ['name', 'mechanisms', 'updated']).concat(users.length ? [] : ['name']), row => [
      el('button', { class: 'needs-admin', hidden: !admin, text: 'Remove', 'data-user': row.name,
        onclick: () => confirm('Remove user ' + row.name + '?') &&
          act('DELETE', '/v1/users/' + encodeURIComponent(row.name), undefined, loadSecurity) })]);
  } else {
    $('#users-table tbody').replaceChildren(el('tr', {}, el('td', { text: errorText(u) })));
  }
  if (a.ok) {
    const acls = a.data.acls || [];
    const cols = columnsOf(acls, ['principal', 'resource_type', 'resource_name', 'pattern_type', 'operation', 'permission', 'host']);
    fillTable($('#acls-table'), acls, cols.length ? cols : ['principal'], row => [
      el('button', { class: 'needs-admin acl-remove', hidden: !admin, text: 'Remove',
        onclick: () => act('DELETE', '/v1/acls?' + new URLSearchParams(
          Object.entries(row).filter(([, v]) => typeof v === 'string')).toString(), undefined, loadSecurity) })]);
  } else {
    $('#acls-table tbody').replaceChildren(el('tr', {}, el('td', { text: errorText(a) })));
  }
}

async function addUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  const r = await act('POST', '/v1/users', { name: f.name.value.trim(), mechanism: f.mechanism.value,
                                             password: f.password.value }, loadSecurity);
  if (r.ok) f.reset();
}

async function addAcl(ev) {
  ev.preventDefault();
  let body;
  try { body = JSON.parse(ev.target.acl.value); } catch (e) { return banner('Binding: ' + e.message); }
  await act('POST', '/v1/acls', body, loadSecurity);
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', ev => {
    ev.preventDefault();
    state.token = $('#token').value.trim();
    sessionStorage.setItem('kgate.token', state.token);
    $('#token').value = '';
    start();
  });
  $('#logout').addEventListener('click', () => signOut(''));
  $$('.tab').forEach(t => t.addEventListener('click', () => showTab(t.dataset.tab)));
  $('#switch-form').addEventListener('submit', confirmSwitch);
  $('#switch-cancel').addEventListener('click', () => $('#switch-dialog').close());
  $('#chaos-form').addEventListener('submit', addChaos);
  $('#exp-form').addEventListener('submit', runExperiment);
  $('#user-form').addEventListener('submit', addUser);
  $('#acl-form').addEventListener('submit', addAcl);
  start().catch(e => showLogin('kgate is not answering: ' + e.message));
});
