// Portico's admin console. Plain JavaScript, no library: it polls
// /console/api/* and draws the chart on a canvas by hand. Everything the
// server sends is put in the page as text, never as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'portico-console-token';
  const HEADER = 'X-Portico-Console-Token';
  const POLL_MS = 1000;
  const KEEP = 120; // samples on the chart: two minutes at one a second
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let prev = null;         // the previous stats answer
  const samples = [];      // {t, conns, in, out, http}
  let ticks = 0;
  let timer = 0;
  let current = null;      // the connection looked up

  class AuthError extends Error {}

  async function api(method, path, body) {
    const r = await fetch('/console/api/' + path, {
      method, body, cache: 'no-store', credentials: 'omit',
      headers: { [HEADER]: token || '-' },
    });
    if (r.status === 401) {
      showLogin(token ? 'That token was refused.' : '');
      throw new AuthError('unauthorized');
    }
    return r;
  }

  async function message(r) {
    try { return (await r.json()).message || r.statusText; } catch (e) { return r.statusText; }
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function setStatus(text, ok) {
    const s = $('status');
    s.textContent = text;
    s.className = 'pill ' + (ok ? 'ok' : 'bad');
  }

  function showLogin(err) {
    clearTimeout(timer);
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = err || '';
    $('token').focus();
  }

  // ---- numbers ----
  function fmt(v) {
    if (!isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- chart ----
  const chart = $('chart');
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = chart.clientWidth || chart.width, h = chart.clientHeight || chart.height;
    if (chart.width !== Math.round(w * dpr)) { chart.width = Math.round(w * dpr); chart.height = Math.round(h * dpr); }
    const g = chart.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (n) => css.getPropertyValue(n).trim() || '#000';
    const left = 52, right = 12, gap = 26;
    const paneH = (h - gap - 20) / 2;
    const panes = [
      { top: 6, title: 'open connections', series: [['conns', color('--conn')]] },
      { top: 6 + paneH + gap, title: 'per second', series: [['in', color('--in')], ['out', color('--out')], ['http', color('--http')]] },
    ];
    const plotW = w - left - right;
    const x = (i) => left + (KEEP <= 1 ? 0 : plotW * (i + KEEP - samples.length) / (KEEP - 1));
    g.font = '11px system-ui, sans-serif';
    for (const p of panes) {
      let max = 0;
      for (const s of samples) for (const [k] of p.series) max = Math.max(max, s[k]);
      max = niceMax(max / 4) * 4; // four gridlines at round values
      g.strokeStyle = '#e2e6ec'; g.fillStyle = '#6b7586'; g.lineWidth = 1;
      g.textAlign = 'right'; g.textBaseline = 'middle';
      for (let i = 0; i <= 4; i++) {
        const y = Math.round(p.top + paneH - paneH * i / 4) + 0.5;
        g.beginPath(); g.moveTo(left, y); g.lineTo(w - right, y); g.stroke();
        g.fillText(fmt(max * i / 4), left - 6, y);
      }
      g.textAlign = 'left'; g.textBaseline = 'top';
      g.fillText(p.title, left + 4, p.top);
      for (const [k, c] of p.series) {
        if (samples.length < 1) continue;
        g.strokeStyle = c; g.lineWidth = 2; g.lineJoin = 'round';
        g.beginPath();
        samples.forEach((s, i) => {
          const y = p.top + paneH - paneH * (s[k] / max);
          if (i === 0) g.moveTo(x(i), y); else g.lineTo(x(i), y);
        });
        g.stroke();
      }
    }
    g.fillStyle = '#6b7586'; g.textAlign = 'right'; g.textBaseline = 'bottom';
    g.fillText('now', w - right, h);
    g.textAlign = 'left';
    g.fillText('−' + Math.round(KEEP * POLL_MS / 1000) + ' s', left, h);
    chart.dataset.samples = String(samples.length);
  }

  // ---- stats ----
  function rate(now, before, dt) { return before === undefined ? 0 : Math.max(0, (now - before) / dt); }

  function showStats(st) {
    $('node').textContent = 'node ' + st.node.slice(0, 12);
    $('open-connections').textContent = fmt(st.connections);
    if (prev && st.time > prev.time) {
      const dt = (st.time - prev.time) / 1000;
      const s = {
        t: st.time, conns: st.connections,
        in: rate(st.messagesIn, prev.messagesIn, dt),
        out: rate(st.messagesOut, prev.messagesOut, dt),
        http: rate(st.httpRequests, prev.httpRequests, dt),
      };
      samples.push(s);
      if (samples.length > KEEP) samples.shift();
      $('rate-in').textContent = fmt(s.in);
      $('rate-out').textContent = fmt(s.out);
      $('rate-http').textContent = fmt(s.http);
      $('rate-errors').textContent = fmt(rate(st.integrationErrors, prev.integrationErrors, dt));
      $('rate-throttled').textContent = fmt(rate(st.throttled, prev.throttled, dt));
      chart.dataset.lastIn = String(s.in);
      showRoutes(st, prev, dt);
    } else if (!prev) {
      samples.push({ t: st.time, conns: st.connections, in: 0, out: 0, http: 0 });
      showRoutes(st, null, 1);
    }
    draw();
    prev = st;
  }

  function showRoutes(st, before, dt) {
    const old = new Map();
    if (before) for (const r of before.routes) old.set(r.api + '\u0000' + r.stage + '\u0000' + r.route, r);
    const body = $('route-stats').tBodies[0];
    body.replaceChildren();
    if (!st.routes.length) {
      const tr = el('tr', null, 'empty');
      const td = el('td', 'no traffic yet'); td.colSpan = 10; tr.append(td);
      body.append(tr);
      return;
    }
    for (const r of st.routes) {
      const o = before ? (old.get(r.api + '\u0000' + r.stage + '\u0000' + r.route) || {}) : {};
      const tr = el('tr');
      tr.dataset.route = r.route;
      const lc = r.latencyCount - (o.latencyCount || 0), ls = r.latencySeconds - (o.latencySeconds || 0);
      const lat = lc > 0 ? ls / lc : (r.latencyCount > 0 ? r.latencySeconds / r.latencyCount : NaN);
      const errs = rate(r.errors, before ? (o.errors || 0) : undefined, dt);
      tr.append(el('td', r.api), el('td', r.stage), el('td', r.route, 'mono'),
        el('td', fmt(rate(r.in, before ? (o.in || 0) : undefined, dt)), 'n'),
        el('td', fmt(rate(r.out, before ? (o.out || 0) : undefined, dt)), 'n'),
        el('td', fmt(errs), 'n' + (errs > 0 ? ' err' : '')),
        el('td', r.kind === 'http' ? fmt(rate(r.clientErrors, before ? (o.clientErrors || 0) : undefined, dt)) : '', 'n'),
        el('td', isFinite(lat) ? (lat * 1000).toFixed(lat < 0.01 ? 2 : 1) + ' ms' : '–', 'n'),
        el('td', fmt(r.in), 'n'), el('td', fmt(r.errors), 'n' + (r.errors > 0 ? ' err' : '')));
      body.append(tr);
    }
  }

  // ---- nodes ----
  async function loadNodes() {
    const r = await api('GET', 'nodes');
    if (!r.ok) return;
    const n = await r.json();
    $('registry').textContent = n.registry === 'ok' ? '' : 'registry: ' + n.registry;
    const body = $('nodes').tBodies[0];
    body.replaceChildren();
    for (const node of n.nodes) {
      const tr = el('tr');
      const live = node.status === 'live';
      tr.append(el('td', node.id + (node.self ? ' (this node)' : ''), 'mono'), el('td', node.address || '–', 'mono'),
        el('td', node.startedAt ? new Date(node.startedAt).toLocaleString() : '–'),
        el('td', node.self && prev ? fmt(prev.connections) : node.connections >= 0 ? fmt(node.connections) : '–', 'n'),
        el('td', node.status, live ? 'health-ok' : 'health-bad'));
      body.append(tr);
    }
  }

  // ---- route tables ----
  async function loadRoutes() {
    const r = await api('GET', 'routes');
    if (!r.ok) return;
    const { apis } = await r.json();
    const box = $('apis');
    box.replaceChildren();
    for (const a of apis) {
      const div = el('div', null, 'api');
      const h = el('h3', a.name);
      h.append(el('span', a.protocol, 'tag'), el('span', 'id ' + a.id, 'tag'), el('span', 'stages: ' + (a.stages || []).join(', '), 'tag'));
      const t = el('table');
      const head = el('tr');
      for (const c of ['route', 'integration', 'backend', 'authorization', 'two-way']) head.append(el('th', c));
      t.createTHead().append(head);
      const body = t.createTBody();
      for (const rt of a.routes || []) {
        const tr = el('tr');
        tr.append(el('td', rt.key, 'mono'), el('td', rt.integration || '–'), el('td', rt.uri || '', 'mono'),
          el('td', (rt.authorization || 'NONE') + (rt.authorizer ? ' (' + rt.authorizer + ')' : '')),
          el('td', rt.routeResponse ? 'yes' : ''));
        body.append(tr);
      }
      div.append(h, t);
      box.append(div);
    }
  }

  // ---- connection lookup, send, disconnect ----
  function connStatus(text, bad) {
    const s = $('conn-status');
    s.textContent = text;
    s.className = bad ? 'error' : 'muted';
  }

  async function lookup(id) {
    const r = await api('GET', 'connections/' + encodeURIComponent(id));
    if (!r.ok) {
      current = null;
      $('conn').hidden = true;
      connStatus(r.status + ': ' + await message(r), true);
      return;
    }
    const c = await r.json();
    current = c;
    const info = c.connection || {};
    const dl = $('conn-info');
    dl.replaceChildren();
    const add = (k, v) => { dl.append(el('dt', k), el('dd', v === undefined || v === '' ? '–' : v)); };
    add('id', c.id); add('api', c.api); add('stage', c.stage);
    add('node', (c.node || '') + (c.local ? ' (this node)' : ''));
    add('connected', info.connectedAt); add('last active', info.lastActiveAt);
    add('source IP', info.identity && info.identity.sourceIp);
    add('user agent', info.identity && info.identity.userAgent);
    add('channels', (info.channels || []).join(', '));
    const auth = info.authorizer;
    add('authorizer', auth ? auth.type + (auth.principalId ? ' · ' + auth.principalId : '') : 'none');
    const body = $('conn-auth').tBodies[0];
    body.replaceChildren();
    const ctx = (auth && auth.context) || {};
    const keys = Object.keys(ctx).sort();
    if (!keys.length) {
      const tr = el('tr', null, 'empty'); const td = el('td', 'no authorizer context'); td.colSpan = 2; tr.append(td); body.append(tr);
    }
    for (const k of keys) { const tr = el('tr'); tr.append(el('td', k, 'mono'), el('td', ctx[k], 'mono')); body.append(tr); }
    $('conn').hidden = false;
    connStatus('found at ' + new Date().toLocaleTimeString());
  }

  async function sendTo() {
    if (!current) return;
    const r = await api('POST', 'connections/' + encodeURIComponent(current.id), $('send-data').value);
    connStatus(r.ok ? 'sent (' + r.status + ')' : r.status + ': ' + await message(r), !r.ok);
  }

  async function disconnect() {
    if (!current) return;
    const id = current.id;
    const r = await api('DELETE', 'connections/' + encodeURIComponent(id));
    if (r.ok) {
      current = null;
      $('conn').hidden = true;
      connStatus('disconnected ' + id + ' (' + r.status + ')');
    } else {
      connStatus(r.status + ': ' + await message(r), true);
    }
  }

  function guard(f) {
    return (ev) => {
      if (ev) ev.preventDefault();
      f().catch((e) => { if (!(e instanceof AuthError)) connStatus(String(e.message || e), true); });
    };
  }

  // ---- the poll loop ----
  async function tick() {
    try {
      const r = await api('GET', 'stats');
      if (!r.ok) throw new Error(r.status + ': ' + await message(r));
      showStats(await r.json());
      if (ticks % 3 === 0) await loadNodes();
      if (ticks === 0) await loadRoutes();
      ticks++;
      setStatus('live · ' + new Date().toLocaleTimeString(), true);
    } catch (e) {
      if (e instanceof AuthError) return;
      setStatus('unreachable: ' + (e.message || e), false);
    }
    timer = setTimeout(tick, POLL_MS);
  }

  async function start() {
    clearTimeout(timer);
    try {
      const r = await api('GET', 'session');
      const s = await r.json();
      if (!s.authorized) {
        showLogin(token ? 'That token was refused.' : '');
        return;
      }
    } catch (e) {
      if (e instanceof AuthError) return;
      setStatus('unreachable: ' + (e.message || e), false);
      timer = setTimeout(start, POLL_MS);
      return;
    }
    $('login').hidden = true;
    $('main').hidden = false;
    prev = null; ticks = 0; samples.length = 0;
    tick();
  }

  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value;
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $('lookup').addEventListener('submit', guard(() => lookup($('conn-id').value.trim())));
  $('send').addEventListener('submit', guard(sendTo));
  $('disconnect').addEventListener('click', guard(disconnect));
  window.addEventListener('resize', draw);
  start();
})();
