// Singularity dashboard: each page is filled from the JSON API and follows the server-sent
// events (/api/events); nothing polls. Text goes into the page through textContent only.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts });
  if (r.status === 401) {
    location.href = "/login";
    throw new Error("log in first");
  }
  const body = r.headers.get("content-type", "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.detail) || `${r.status} ${r.statusText}`);
  return body;
}

function fmt(v, digits = 2) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const time = (iso) => (iso ? iso.replace("T", " ").replace(/\+00:00$|Z$/, "").slice(0, 19) : "–");

// A table from column specs {key, label, cell?(row) -> Node|string}.
function table(cols, rows, { id, rowAttrs } = {}) {
  const head = h("tr", {}, cols.map((c) => h("th", {}, c.label || c.key)));
  const body = h("tbody", {}, rows.map((r) => row(cols, r, rowAttrs)));
  return h("table", { id }, h("thead", {}, head), body);
}

function row(cols, r, rowAttrs) {
  return h("tr", rowAttrs ? rowAttrs(r) : {},
    cols.map((c) => h("td", { class: c.cls }, c.cell ? c.cell(r) : fmt(r[c.key]))));
}

function section(title, ...kids) {
  return h("section", {}, h("h2", {}, title), ...kids);
}

function setContent(...kids) {
  const c = $("#content");
  c.replaceChildren(...kids);
  return c;
}

function showError(e) {
  setContent(h("p", { class: "error" }, String(e.message || e)));
}

function plot(el, traces, layout = {}) {
  if (!window.Plotly) return;
  const base = {
    margin: { l: 50, r: 20, t: 30, b: 40 }, height: 320, paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)", font: { color: "#cfd6e4", size: 12 },
    xaxis: { gridcolor: "#2a3346" }, yaxis: { gridcolor: "#2a3346" }, legend: { orientation: "h" },
  };
  window.Plotly.newPlot(el, traces, { ...base, ...layout }, { displaylogo: false, responsive: true });
}

// Server-sent events: one EventSource per page; the browser resumes with Last-Event-ID.
function live(handlers) {
  const dot = $("#live");
  const es = new EventSource("/api/events");
  es.onopen = () => dot && dot.classList.replace("off", "on");
  es.onerror = () => dot && dot.classList.replace("on", "off");
  es.addEventListener("ledger", (e) => handlers.ledger && handlers.ledger(JSON.parse(e.data)));
  es.addEventListener("run", (e) => handlers.run && handlers.run(JSON.parse(e.data)));
  window.singularityEvents = es;
  return es;
}

function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

const LEDGER_COLS = [
  { key: "seq" },
  { key: "time", cell: (r) => time(r.time) },
  { key: "kind", cell: (r) => h("span", { class: `kind kind-${r.kind}` }, r.kind) },
  { key: "symbol" },
  { key: "payload", cell: (r) => h("code", {}, JSON.stringify(r.payload)) },
];

function prependEvent(tbl, ev, keep = 200) {
  if (!tbl || tbl.querySelector(`tr[data-seq="${ev.seq}"]`)) return;
  const tbody = tbl.tBodies[0];
  tbody.prepend(row(LEDGER_COLS, ev, (r) => ({ "data-seq": r.seq, class: "fresh" })));
  while (tbody.rows.length > keep) tbody.deleteRow(-1);
}

// -- pages ------------------------------------------------------------------------------------

const pages = {};

pages.overview = async () => {
  const [st, events] = await Promise.all([api("/api/status"), api("/api/ledger?tail=20")]);
  const head = h("p", { id: "engine" });
  const symbols = h("div", { id: "symbols" });
  const chart = h("div", { id: "pnl-plot", class: "plot" });
  const evs = table(LEDGER_COLS, events.slice().reverse(), { id: "events", rowAttrs: (r) => ({ "data-seq": r.seq }) });
  setContent(head, section("Symbols", symbols), section("PnL by symbol", chart), section("Latest events", evs));
  const render = (s) => {
    const lag = s.loop_lag_ms;
    head.replaceChildren(
      h("span", { class: s.running ? "ok" : "muted" }, s.running ? `engine running (${s.mode})` : "engine not running"),
      lag ? ` · loop lag p50 ${fmt(lag.p50, 1)} ms, p99 ${fmt(lag.p99, 1)} ms, max ${fmt(lag.max, 1)} ms` : "",
      ` · ${s.exchange} ${s.timeframe}`);
    symbols.replaceChildren(table([
      { key: "symbol" }, { key: "price", cell: (r) => fmt(r.price, 4) },
      { key: "last_candle", label: "last candle", cell: (r) => time(r.last_candle) },
      { key: "position", cell: (r) => fmt(r.position, 6) }, { key: "equity" }, { key: "pnl", label: "PnL" },
      { key: "champion", cell: (r) => (r.champion ? h("a", { href: `/strategies/${r.champion.id}` }, `#${r.champion.id}`) : "–") },
      { key: "regime" }, { key: "feed", label: "feed", cell: (r) => fmt(r.feed) },
      { key: "paused", cell: (r) => (r.paused ? h("span", { class: "warn" }, "paused") : "") },
    ], s.symbols, { id: "symbol-table" }));
    plot(chart, [{ type: "bar", x: s.symbols.map((r) => r.symbol), y: s.symbols.map((r) => r.pnl || 0), marker: { color: "#4f8cff" } }],
      { yaxis: { title: { text: "PnL" }, gridcolor: "#2a3346" } });
  };
  render(st);
  const refresh = debounce(async () => render(await api("/api/status")), 250);
  live({ ledger: (ev) => { prependEvent(evs, ev, 20); refresh(); } });
};

pages.ledger = async () => {
  const form = h("form", { id: "filters", class: "filters" },
    h("label", {}, "symbol ", h("input", { name: "symbol", placeholder: "BTC/USDT", size: 12 })),
    h("label", {}, "kind ", h("input", { name: "kind", placeholder: "fill", size: 10 })),
    h("button", { type: "submit" }, "Filter"));
  const holder = h("div");
  setContent(form, holder);
  let filter = {};
  const load = async () => {
    const q = new URLSearchParams({ tail: 200, ...filter });
    const events = await api(`/api/ledger?${q}`);
    holder.replaceChildren(table(LEDGER_COLS, events.slice().reverse(), { id: "ledger", rowAttrs: (r) => ({ "data-seq": r.seq }) }));
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    filter = Object.fromEntries([...fd.entries()].filter(([, v]) => v));
    load().catch(showError);
  });
  await load();
  live({ ledger: (ev) => {
    if ((filter.symbol && ev.symbol !== filter.symbol) || (filter.kind && ev.kind !== filter.kind)) return;
    prependEvent($("#ledger"), ev);
  } });
};

pages.equity = async () => {
  const status = await api("/api/status");
  const pick = h("select", { id: "equity-symbol" }, h("option", { value: "" }, "all symbols"),
    status.symbols.map((s) => h("option", { value: s.symbol }, s.symbol)));
  const summary = h("p", { id: "equity-summary" });
  const chart = h("div", { id: "equity-plot", class: "plot tall" });
  setContent(h("div", { class: "filters" }, h("label", {}, "symbol ", pick)), summary, chart);
  const load = async () => {
    const q = pick.value ? `?symbol=${encodeURIComponent(pick.value)}` : "";
    const e = await api(`/api/equity${q}`);
    summary.textContent = e.points ? `${e.points} points · equity ${fmt(e.last_equity)} · max drawdown ${fmt(100 * (e.max_drawdown || 0), 1)} %`
      + (e.shortfall !== null && e.shortfall !== undefined ? ` · shortfall against the backtest ${fmt(e.shortfall, 4)}` : "")
      : "no fills in the ledger yet";
    const traces = [
      { x: e.time, y: e.equity, name: "equity", line: { color: "#4f8cff" } },
      { x: e.time, y: e.buy_hold, name: "buy and hold", line: { color: "#9aa4b8", dash: "dot" } },
    ];
    if (e.backtest && e.backtest.length) traces.push({ x: e.time, y: e.backtest, name: "backtest", line: { color: "#f5b94f", dash: "dash" } });
    traces.push({ x: e.time, y: e.drawdown, name: "drawdown", yaxis: "y2", fill: "tozeroy", line: { color: "#e5534b" } });
    plot(chart, traces, {
      height: 480, grid: { rows: 2, columns: 1, roworder: "top to bottom" },
      yaxis: { domain: [0.35, 1], title: { text: "equity" }, gridcolor: "#2a3346" },
      yaxis2: { domain: [0, 0.25], title: { text: "drawdown" }, tickformat: ".0%", gridcolor: "#2a3346" },
    });
  };
  pick.addEventListener("change", () => load().catch(showError));
  await load();
  const refresh = debounce(() => load().catch(() => {}), 500);
  live({ ledger: (ev) => { if (ev.kind === "fill" || ev.kind === "balance") refresh(); } });
};

pages.strategies = async () => {
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "symbol ", h("input", { name: "symbol", placeholder: "BTC/USDT", size: 12 })),
    h("label", {}, "status ", h("select", { name: "status" }, ["", "champion", "candidate", "retired"].map((s) => h("option", { value: s }, s || "any")))),
    h("button", { type: "submit" }, "Filter"));
  const holder = h("div");
  setContent(form, holder);
  const load = async (q = "") => {
    const rows = await api(`/api/strategies${q}`);
    holder.replaceChildren(rows.length ? table([
      { key: "id", cell: (r) => h("a", { href: `/strategies/${r.id}` }, `#${r.id}`) },
      { key: "symbol" }, { key: "timeframe", label: "tf" },
      { key: "status", cell: (r) => h("span", { class: `status-${r.status}` }, r.status) },
      { key: "fitness", cell: (r) => fmt(r.fitness, 3) }, { key: "holdout_sharpe", label: "holdout Sharpe" },
      { key: "passed", label: "gauntlet", cell: (r) => (r.passed ? h("span", { class: "ok" }, "passed") : h("span", { class: "muted" }, "failed")) },
      { key: "rule", cls: "rule" }, { key: "created_at", label: "created", cell: (r) => time(r.created_at) },
    ], rows, { id: "strategy-table" }) : h("p", { class: "muted" }, "no strategies match"));
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams([...new FormData(form).entries()].filter(([, v]) => v));
    load(`?${q}`).catch(showError);
  });
  await load();
};

function lineageTree(nodes, rootId) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const seen = new Set();
  const item = (id) => {
    const n = byId.get(id);
    if (!n) return h("li", {}, `#${id} (not in the registry)`);
    if (seen.has(id)) return h("li", {}, h("a", { href: `/strategies/${id}` }, `#${id}`), " (above)");
    seen.add(id);
    const kids = n.parents.length ? h("ul", {}, n.parents.map(item)) : null;
    return h("li", {}, h("a", { href: `/strategies/${id}` }, `#${id}`), ` ${n.status} · run ${n.run_id} · `, h("code", {}, n.rule), kids);
  };
  return h("ul", { class: "tree", id: "lineage" }, item(rootId));
}

pages.strategy = async () => {
  const id = Number(location.pathname.split("/").pop());
  const s = await api(`/api/strategies/${id}`);
  const keys = [...new Set([...Object.keys(s.in_sample || {}), ...Object.keys(s.holdout || {})])];
  const metrics = table([{ key: "metric" }, { key: "in_sample", label: "in-sample" }, { key: "holdout" }],
    keys.map((k) => ({ metric: k, in_sample: (s.in_sample || {})[k], holdout: (s.holdout || {})[k] })), { id: "metrics" });
  const gauntlet = table([
    { key: "test" }, { key: "passed", cell: (r) => h("span", { class: r.passed ? "ok" : "bad" }, r.passed ? "pass" : "fail") },
    { key: "detail" },
  ], s.gauntlet || [], { id: "gauntlet" });
  const chart = h("div", { id: "generations-plot", class: "plot" });
  setContent(
    h("p", {}, h("span", { class: `status-${s.status}` }, s.status), ` · ${s.symbol} ${s.timeframe} · run ${s.run_id} · fitness ${fmt(s.fitness, 3)} · `,
      s.report_url ? h("a", { href: s.report_url, id: "report-link", target: "_blank", rel: "noopener" }, "HTML report") : h("span", { class: "muted" }, "no report")),
    h("pre", { class: "rule", id: "rule" }, s.readable || s.expression),
    section("Gauntlet", gauntlet), section("Metrics", metrics),
    section("Explanation", h("p", { class: "explanation", id: "explanation" }, s.explanation || "–")),
    section("Lineage", lineageTree(s.lineage, s.id)),
    section("Evolution of its forge run", chart));
  const run = await api(`/api/runs/${s.run_id}`);
  const g = run.generations || [];
  plot(chart, [
    { x: g.map((r) => r.generation), y: g.map((r) => r.best), name: "best fitness", mode: "lines+markers" },
    { x: g.map((r) => r.generation), y: g.map((r) => r.median), name: "median fitness", mode: "lines" },
  ], { xaxis: { title: { text: "generation" }, gridcolor: "#2a3346" } });
};

pages.forge = async () => {
  const runs = await api("/api/runs?limit=50");
  const cols = [
    { key: "id" }, { key: "symbol" }, { key: "timeframe", label: "tf" },
    { key: "status", cell: (r) => h("span", { class: `run-${r.status}` }, r.status) },
    { key: "stage", cell: (r) => h("span", {}, r.stage, h("progress", { max: 1, value: r.progress })) },
    { key: "stage_detail", label: "detail" }, { key: "generation", label: "gen" },
    { key: "champion_id", label: "champion", cell: (r) => (r.champion_id ? h("a", { href: `/strategies/${r.champion_id}` }, `#${r.champion_id}`) : "–") },
    { key: "seconds", cell: (r) => fmt(r.seconds, 1) }, { key: "started_at", label: "started", cell: (r) => time(r.started_at) },
    { key: "error", cls: "error" },
  ];
  const attrs = (r) => ({ "data-run": r.id });
  const tbl = table(cols, runs, { id: "runs", rowAttrs: attrs });
  const chart = h("div", { id: "stages-plot", class: "plot" });
  const running = h("p", { id: "running" });
  const count = () => { running.textContent = `${[...tbl.tBodies[0].rows].filter((r) => r.querySelector(".run-running")).length} running`; };
  setContent(running, tbl, section("Seconds per stage", chart));
  count();
  const done = runs.filter((r) => r.stage_seconds && Object.keys(r.stage_seconds).length).slice(0, 20).reverse();
  const stages = [...new Set(done.flatMap((r) => Object.keys(r.stage_seconds)))];
  plot(chart, stages.map((st) => ({ type: "bar", name: st, x: done.map((r) => `#${r.id}`), y: done.map((r) => r.stage_seconds[st] || 0) })),
    { barmode: "stack", yaxis: { title: { text: "seconds" }, gridcolor: "#2a3346" } });
  live({ run: (r) => {
    const fresh = row(cols, r, attrs);
    const old = tbl.querySelector(`tr[data-run="${r.id}"]`);
    if (old) old.replaceWith(fresh); else tbl.tBodies[0].prepend(fresh);
    fresh.classList.add("fresh");
    count();
  } });
};

pages.regimes = async () => {
  const r = await api("/api/regimes");
  const chart = h("div", { id: "regimes-plot", class: "plot tall" });
  const current = table([{ key: "symbol" }, { key: "regime" }, { key: "since", cell: (x) => time(x.since) }], r.current, { id: "regimes" });
  setContent(section("Current", current), section("Timeline", chart),
    r.segments.length ? "" : h("p", { class: "muted" }, "no regime events in the ledger yet"));
  const labels = [...new Set(r.segments.map((s) => s.regime))];
  plot(chart, labels.map((lab) => {
    const segs = r.segments.filter((s) => s.regime === lab);
    return { type: "bar", orientation: "h", name: lab, y: segs.map((s) => s.symbol),
      base: segs.map((s) => s.start), x: segs.map((s) => new Date(s.end) - new Date(s.start)) };
  }), { barmode: "stack", height: 120 + 40 * Math.max(1, r.current.length), xaxis: { type: "date", gridcolor: "#2a3346" },
    margin: { l: 100, r: 20, t: 30, b: 40 } });
  live({ ledger: (ev) => { if (ev.kind === "regime") pages.regimes().catch(showError); } });
};

pages.data = async () => {
  const entries = await api("/api/data");
  const chart = h("div", { id: "coverage-plot", class: "plot tall" });
  const gaps = h("div", { id: "gaps" });
  const tbl = table([
    { key: "exchange" }, { key: "symbol" }, { key: "timeframe", label: "tf" }, { key: "rows" },
    { key: "first", cell: (r) => time(r.first) }, { key: "last", cell: (r) => time(r.last) },
    { key: "gaps", cell: (r) => (r.gaps ? h("a", { href: "#gaps", class: "warn", onclick: () => showGaps(r).catch(showError) }, String(r.gaps)) : "0") },
    { key: "missing", label: "missing candles" },
  ], entries, { id: "store" });
  setContent(entries.length ? tbl : h("p", { class: "muted" }, "the store is empty (singularity data import/download)"),
    section("Coverage", chart), gaps);
  const showGaps = async (e) => {
    const q = new URLSearchParams({ exchange: e.exchange, symbol: e.symbol, timeframe: e.timeframe });
    const g = await api(`/api/data/gaps?${q}`);
    gaps.replaceChildren(section(`Gaps of ${e.symbol} ${e.timeframe} (${g.total_gaps})`, table([
      { key: "after", cell: (r) => time(r.after) }, { key: "before", cell: (r) => time(r.before) }, { key: "missing" },
    ], g.gaps, { id: "gap-table" })));
  };
  const label = (e) => `${e.symbol} ${e.timeframe}`;
  const traces = [{ type: "bar", orientation: "h", name: "stored", y: entries.map(label), base: entries.map((e) => e.first),
    x: entries.map((e) => new Date(e.last) - new Date(e.first)), marker: { color: "#4f8cff" } }];
  const withGaps = entries.filter((e) => e.gaps).slice(0, 20);
  const found = await Promise.all(withGaps.map((e) => api(`/api/data/gaps?${new URLSearchParams({ exchange: e.exchange, symbol: e.symbol, timeframe: e.timeframe })}`)));
  const pts = found.flatMap((g, i) => g.gaps.map((x) => ({ y: label(withGaps[i]), x: x.after, n: x.missing })));
  if (pts.length) traces.push({ type: "scatter", mode: "markers", name: "gap", y: pts.map((p) => p.y), x: pts.map((p) => p.x),
    text: pts.map((p) => `${p.n} missing`), marker: { color: "#e5534b", symbol: "line-ns-open", size: 14 } });
  plot(chart, traces, { height: 120 + 30 * Math.max(1, entries.length), xaxis: { type: "date", gridcolor: "#2a3346" }, margin: { l: 140, r: 20, t: 30, b: 40 } });
};

pages.logs = async () => {
  const btn = h("button", { id: "reload" }, "Reload");
  const holder = h("div");
  setContent(btn, holder);
  const load = async () => {
    const logs = await api("/api/logs?lines=300");
    const names = Object.keys(logs);
    holder.replaceChildren(...(names.length ? names.map((n) => section(n, h("pre", { class: "log" }, logs[n].join("\n") || "(empty)")))
      : [h("p", { class: "muted" }, "no log lines yet")]));
  };
  btn.addEventListener("click", () => load().catch(showError));
  await load();
};

pages.controls = async () => {
  const [health, status] = await Promise.all([api("/api/health"), api("/api/status")]);
  if (health.read_only) {
    setContent(h("p", { class: "warn", id: "read-only" }, "Controls are disabled: this dashboard runs with --read-only."));
    return;
  }
  const result = h("p", { id: "control-result" });
  const send = async (body) => {
    try {
      const r = await api("/api/controls", {
        method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf() }, body: JSON.stringify(body),
      });
      result.className = "ok";
      result.textContent = `${r.payload.action} ${r.symbol || ""}: ledger event #${r.seq}`;
    } catch (e) {
      result.className = "error";
      result.textContent = String(e.message || e);
    }
  };
  const sym = h("select", { id: "control-symbol" }, status.symbols.map((s) => h("option", { value: s.symbol }, s.symbol)));
  const sid = h("input", { id: "control-strategy", type: "number", min: 1, placeholder: "strategy id", size: 8 });
  const btn = (action, label, target) => h("button", { id: `control-${action}`, type: "button", onclick: () => send(target(action)) }, label);
  const bySymbol = (action) => ({ action, symbol: sym.value });
  const byStrategy = (action) => ({ action, strategy_id: Number(sid.value) });
  const recent = table(LEDGER_COLS, [], { id: "control-events" });
  setContent(
    health.ledger ? "" : h("p", { class: "warn" }, "No engine ledger in this data directory: controls will be refused until the engine has run."),
    section("Symbol", h("div", { class: "controls" }, sym, btn("pause", "Pause", bySymbol), btn("resume", "Resume", bySymbol),
      btn("flatten", "Flatten", bySymbol), btn("forge", "Start a forge cycle now", bySymbol))),
    section("Strategy", h("div", { class: "controls" }, sid, btn("pin", "Pin", byStrategy), btn("retire", "Retire", byStrategy))),
    result, section("Recent controls", recent));
  const events = await api("/api/ledger?tail=20&kind=control");
  for (const ev of events) prependEvent(recent, ev, 20);
  live({ ledger: (ev) => { if (ev.kind === "control") prependEvent(recent, ev, 20); } });
};

pages.login = async () => {
  const form = $("#login");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await fetch("/api/login", { method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json" }, body: JSON.stringify({ password: form.password.value }) });
    if (r.ok) location.href = "/";
    else $("#login-error").textContent = (await r.json()).detail || "login failed";
  });
};

document.addEventListener("DOMContentLoaded", () => {
  const name = document.body.dataset.page;
  const page = pages[name];
  if (page) page().then(() => document.body.setAttribute("data-ready", "true")).catch(showError);
});
