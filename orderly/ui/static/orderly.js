// The seed's page: the orders table, Process All and Reset State. Plain JavaScript, no build step.
// Every value from the store is put in the page as text (never as HTML): order data is hostile input too.
"use strict";

const REFRESH_MS = 5000;   // the table, stock and runs, while nothing runs
const RUN_POLL_MS = 1000;  // the button run's state, while it goes
const BUTTONS = { process: "Process All", reset: "Reset State" };

const state = {
  token: sessionStorage.getItem("orderly-token") || "",
  status: "",
  limit: 50,
  cursor: {},          // {after}, {before} or {last: 1}: which page of the orders table
  page: null,
  stockAfter: null,
  prefectUi: null,
  run: null,
  runTimer: null,
};

const $ = (id) => document.getElementById(id);

// Integers past 2**53 (ids and quantities may go to 2**63-1) stay exact: kept as their digits.
function parseJSON(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)
      ? context.source : value);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const show = (value) => (value === null || value === undefined ? "" : String(value));
const number = (value) => (value === null || value === undefined ? "" :
  typeof value === "number" ? value.toLocaleString("en-US") : String(value));

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
         `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

// `label` is the id as the API shortens it (`run_short`: long enough to tell the listed runs apart, as
// `orderly runs` shows it); the first 8 characters otherwise, as the Prefect UI shows a run id.
function runLink(runId, label) {
  if (!runId) return "";
  const text = label || String(runId).slice(0, 8);
  if (!state.prefectUi || runId === "local") return el("span", { class: "run-id", title: runId, text });
  return el("a", { class: "run-id", href: `${state.prefectUi}/runs/flow-run/${encodeURIComponent(runId)}`, target: "_blank",
                   rel: "noopener noreferrer", title: `${runId} in the Prefect UI`, text });
}

function badge(status) {
  return el("span", { class: `badge ${String(status || "").toLowerCase()}`, text: show(status) });
}

// ---- talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const sent = Boolean(state.token);
  if (sent) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers, credentials: "same-origin", cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "the page cannot reach orderly ui (is it still running?)");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? parseJSON(text) : null; } catch (error) { body = null; }
  if (response.status === 401) {
    askToken(sent ? "That token was not accepted." : "");
    throw new ApiError(401, (body && body.error) || "the access token is needed");
  }
  return { status: response.status, body };
}

async function getJSON(path) {
  const { status, body } = await api(path);
  if (status !== 200) throw new ApiError(status, (body && body.error) || `HTTP ${status}`);
  return body;
}

// ---- the access token -----------------------------------------------------------------------------

function askToken(message) {
  state.token = "";
  sessionStorage.removeItem("orderly-token");
  $("main").hidden = true;
  $("auth").hidden = false;
  if (message) $("auth-error").textContent = message;
  $("token").focus();
}

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("orderly-token", state.token);
  $("token").value = "";
  $("auth-error").textContent = "";
  start();
});

// ---- the orders table ---------------------------------------------------------------------------

function ordersQuery() {
  const params = new URLSearchParams({ limit: String(state.limit) });
  if (state.status) params.set("status", state.status);
  for (const [name, value] of Object.entries(state.cursor)) params.set(name, String(value));
  return `/api/orders?${params}`;
}

function renderStore(store) {
  if (!store) return;
  const line = $("store-line");
  line.replaceChildren();
  if (!store.exists) {
    line.append(el("span", { class: "warn", text: `No store at ${store.path} yet: run \`orderly run\` first.` }));
    return;
  }
  line.append(`Store ${store.path}, as of ${when(store.as_of)}`);
  if (store.stale) line.append(el("span", { class: "warn", text: " (a run is writing: showing the store as of then)" }));
}

function renderCounts(counts, matching) {
  const all = Object.values(counts || {}).reduce((sum, n) => sum + (typeof n === "number" ? n : Number(n)), 0);
  const chip = (label, value, status) => el("button", {
    type: "button", class: `chip ${status === state.status ? "active" : ""}`, "data-status": status || "ALL",
    onclick: () => setStatus(status),
  }, label, " ", el("strong", { text: number(value) }));
  $("counts").replaceChildren(
    chip("All", all, ""),
    ...["NEW", "PROCESSED", "FAILED"].map((status) => chip(status, (counts || {})[status] || 0, status)),
  );
}

function renderOrders(page) {
  state.page = page;
  renderStore(page.store);
  renderCounts(page.counts, page.matching);
  const rows = page.orders.map((order) => el("tr", { "data-order-id": order.order_id },
    el("td", { class: "num" }, el("button", { type: "button", class: "link order-link",
      title: "Explanation and history", onclick: () => openOrder(order.order_id), text: show(order.order_id) })),
    el("td", { class: "status" }, badge(order.status)),
    el("td", { class: "num items", text: number(order.items) }),
    el("td", { class: "num qty", text: number(order.total_qty) }),
    el("td", { class: "reason", text: show(order.reason) }),
  ));
  if (!rows.length) {
    const what = state.status ? `${state.status} orders` : "orders";
    rows.push(el("tr", { class: "empty" }, el("td", { colspan: 5, text: `No ${what} here.` })));
  }
  $("orders").tBodies[0].replaceChildren(...rows);
  const first = page.orders.length ? page.offset + 1 : 0;
  const through = page.offset + page.orders.length;
  $("position").textContent = page.orders.length
    ? `${number(first)}–${number(through)} of ${number(page.matching)}` : `0 of ${number(page.matching)}`;
  $("first").disabled = !page.has_prev && !state.cursor.after && !state.cursor.last;
  $("prev").disabled = !page.has_prev;
  $("next").disabled = !page.has_next;
  $("last").disabled = !page.has_next && !state.cursor.before && !(page.orders.length === 0 && page.matching > 0);
}

async function loadOrders() {
  try {
    renderOrders(await getJSON(ordersQuery()));
    $("orders-error").textContent = "";
  } catch (error) {
    if (error.status !== 401) $("orders-error").textContent = error.message;
  }
}

function setStatus(status) {
  state.status = status;
  $("status-filter").value = status;
  state.cursor = {};
  loadOrders();
}

$("status-filter").addEventListener("change", (event) => setStatus(event.target.value));
$("page-size").addEventListener("change", (event) => {
  state.limit = Number(event.target.value);
  loadOrders();
});
$("first").addEventListener("click", () => { state.cursor = {}; loadOrders(); });
$("last").addEventListener("click", () => { state.cursor = { last: 1 }; loadOrders(); });
$("next").addEventListener("click", () => {
  const rows = state.page.orders;
  state.cursor = { after: rows[rows.length - 1].order_id };
  loadOrders();
});
$("prev").addEventListener("click", () => {
  state.cursor = { before: state.page.orders[0].order_id };
  loadOrders();
});
$("jump-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const wanted = $("jump").value.trim();
  if (!/^\d{1,19}$/.test(wanted)) {
    $("orders-error").textContent = "An order id is a whole number.";
    return;
  }
  const id = BigInt(wanted);
  state.cursor = id === 0n ? {} : { after: (id - 1n).toString() };
  loadOrders();
});

// ---- one order: explanation and history -----------------------------------------------------------
// An explanation is shown in the words the API sends (`why`): those `orderly explain` and `orderly history`
// print, worded once, in Python (orderly/explanations.py), never again here.

async function openOrder(orderId) {
  const dialog = $("order-dialog");
  $("order-title").textContent = `Order ${orderId}`;
  $("order-body").replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  let found;
  try {
    found = await getJSON(`/api/orders/${encodeURIComponent(orderId)}`);
  } catch (error) {
    $("order-body").replaceChildren(el("p", { class: "error", text: error.message }));
    return;
  }
  const { order, history } = found;
  const lines = el("table", { class: "compact", id: "order-lines" },
    el("thead", {}, el("tr", {}, ...["Line", "Item", "Qty", "On hand", "Allocated", "Available"].map(
      (h) => el("th", { class: h === "Line" ? "" : "num", text: h })))),
    el("tbody", {}, ...order.lines.map((line) => el("tr", {},
      el("td", { text: show(line.line_no + 1) }),  // stored from 0; read from 1, as `orderly explain` numbers them
      el("td", { class: "num", text: show(line.inventory_id) }),
      el("td", { class: "num", text: number(line.quantity) }),
      line.on_hand === null || line.on_hand === undefined
        ? el("td", { class: "num warn", colspan: 3, text: "not in the stock snapshot" })
        : el("td", { class: "num", text: number(line.on_hand) }),
      ...(line.on_hand === null || line.on_hand === undefined ? [] : [
        el("td", { class: "num", text: number(line.allocated) }),
        el("td", { class: "num", text: number(line.available) })]),
    ))));
  const decided = order.decided_at
    ? el("p", {}, `Decided ${when(order.decided_at)} by run `, runLink(order.decided_run, order.decided_run_short), ".")
    : el("p", { class: "muted", text: order.status === "NEW" ? "Not decided yet (NEW)." : "" });
  const historyTable = history.length ? el("table", { class: "compact", id: "order-history" },
    el("thead", {}, el("tr", {}, ...["When", "From", "To", "Reason", "Why", "Run"].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...history.map((change) => el("tr", {},
      el("td", { class: "when", text: when(change.changed_at) }), el("td", {}, badge(change.from_status)),
      el("td", {}, badge(change.to_status)), el("td", { text: show(change.reason) }),
      el("td", { class: "why", text: show(change.why) }), el("td", {}, runLink(change.run_id, change.run_short))))))
    : el("p", { class: "muted", text: "No status changes yet." });
  $("order-body").replaceChildren(...[
    el("p", { class: "order-summary" }, badge(order.status), " ", show(order.reason),
      ` · ${number(order.items)} line(s), total quantity ${number(order.total_qty)}`),
    decided,
    order.why ? el("p", { id: "order-why", class: "why" }, el("strong", { text: "Why: " }), order.why) : null,
    el("h3", { text: "Lines and current stock" }), lines,
    el("h3", { text: "History" }), historyTable,
  ].filter(Boolean));
}

$("order-close").addEventListener("click", () => $("order-dialog").close());

// ---- stock and runs ---------------------------------------------------------------------------------

async function loadStock() {
  let found;
  try {
    const params = new URLSearchParams({ limit: "200" });
    if (state.stockAfter !== null) params.set("after", String(state.stockAfter));
    found = await getJSON(`/api/stock?${params}`);
  } catch (error) {
    $("snapshot-line").textContent = error.status === 401 ? "" : error.message;
    return;
  }
  const snap = found.snapshot;
  $("snapshot-line").replaceChildren(snap
    ? `Snapshot ${snap.snapshot_id}, completed ${when(snap.completed_at)} (${age(snap.age_seconds)} ago): ` +
      `${number(snap.loaded)} items loaded, ${number(snap.rejected)} rejected.`
    : el("span", { class: "warn", text: "No stock snapshot yet: run `orderly sync`." }));
  $("stock").tBodies[0].replaceChildren(...found.items.map((item) => el("tr", {},
    el("td", { class: "num", text: show(item.inventory_id) }), el("td", { text: show(item.sku) }),
    el("td", { text: show(item.product_name) }), el("td", { class: "num", text: show(item.warehouse_id) }),
    el("td", { class: "num", text: number(item.on_hand) }), el("td", { class: "num", text: number(item.allocated) }),
    el("td", { class: `num ${Number(item.available) <= 0 ? "warn" : ""}`, text: number(item.available) }))));
  $("stock-position").textContent = found.total ? `${number(found.items.length)} shown of ${number(found.total)} items` : "";
  $("stock-next").disabled = !found.has_next;
  $("stock-first").disabled = state.stockAfter === null;
  $("stock-next").onclick = () => {
    state.stockAfter = found.items[found.items.length - 1].inventory_id;
    loadStock();
  };
}
$("stock-first").addEventListener("click", () => { state.stockAfter = null; loadStock(); });

// One source's counters in words, as `orderly runs` says them ("15 fetched, 15 loaded"); zeros are left out.
// Each count is kept whole ("15 fetched"): a narrow cell breaks the line between counts, never inside one.
function sourceCounts(run, source) {
  const counts = ["fetched", "loaded", "rejected", "repeated"]
    .filter((measure) => Number(run[`${source}_${measure}`] || 0))
    .map((measure) => el("span", { class: "count", text: `${number(run[`${source}_${measure}`])} ${measure}` }));
  return counts.flatMap((count, i) => (i ? [", ", count] : [count]));
}

async function loadRuns() {
  let found;
  try { found = await getJSON("/api/runs?limit=10"); } catch (error) { return; }
  state.prefectUi = found.prefect_ui;
  $("runs").tBodies[0].replaceChildren(...found.runs.map((run) => el("tr", {},
    el("td", {}, runLink(run.run_id, run.run_short)), el("td", { text: show(run.flow) }),
    el("td", { text: when(run.started_at) }),
    el("td", { class: "num", text: run.duration_s === null ? "" : `${Number(run.duration_s).toFixed(1)} s` }),
    el("td", {}, badge(run.state)),
    // Stock and orders apart: a stock item and an order are not the same thing to count together.
    el("td", { class: "source stock" }, ...sourceCounts(run, "stock")),
    el("td", { class: "source orders" }, ...sourceCounts(run, "orders")),
    ...[run.processed, run.failed, run.reset].map((value) => el("td", { class: "num", text: number(value) })),
    el("td", { class: "message", text: show(run.message) }))));
  renderFeed(found.feed);
}

// How far the decision feed's delivery has got (shown once there is something to deliver or delivered).
function renderFeed(feed) {
  const box = $("feed");
  box.hidden = !feed || !Number(feed.newest);
  if (box.hidden) return;
  const parts = [`Decision feed: delivered up to event ${number(feed.delivered_to)} of ${number(feed.newest)}`];
  if (Number(feed.backlog)) parts.push(`${number(feed.backlog)} waiting since ${when(feed.oldest_undelivered_at)}`);
  if (feed.last_error) parts.push(`last error ${when(feed.last_error_at)}: ${feed.last_error}`);
  box.textContent = parts.join(" · ");
}

// ---- the two buttons --------------------------------------------------------------------------------

function renderRun(run) {
  const box = $("run-status");
  const going = Boolean(run && !run.final);
  $("process-all").disabled = going;
  $("reset-state").disabled = going;
  if (!run) {
    box.replaceChildren();
    box.removeAttribute("data-state");
    return;
  }
  box.setAttribute("data-state", run.state);
  box.setAttribute("data-button", run.button);
  box.setAttribute("data-started", run.started_at);
  const parts = [el("strong", { text: `${BUTTONS[run.button] || run.button}: ` }), badge(run.state)];
  if (run.run_url) {
    parts.push(" ", el("a", { id: "run-link", href: run.run_url, target: "_blank", rel: "noopener noreferrer",
                              text: "view the run in the Prefect UI" }));
  } else if (run.mode === "local" && !state.prefectUi) {
    const tense = run.final ? "used" : "uses";  // said while the run goes, and after it ended
    parts.push(el("span", { class: "muted", text: ` (no Prefect server configured: the run ${tense} a temporary one)` }));
  }
  const counts = Object.entries(run.counts || {}).map(([name, value]) => `${name} ${number(value)}`).join(", ");
  if (run.state === "COMPLETED" && counts) parts.push(el("span", { text: ` · ${counts}` }));
  if (run.message) {
    parts.push(el("div", { id: "run-message", class: run.final ? "error" : "muted", text: run.message }));
  }
  box.replaceChildren(...parts);
}

function followRun(run) {
  const wasGoing = Boolean(state.run && !state.run.final);
  state.run = run;
  renderRun(run);
  clearTimeout(state.runTimer);
  if (run && !run.final) {
    state.runTimer = setTimeout(pollRun, RUN_POLL_MS);
  } else if (wasGoing) {
    refreshAll();  // the run ended: the table, stock and runs changed
  }
}

async function pollRun() {
  try {
    const found = await getJSON("/api/action");
    state.prefectUi = found.prefect_ui;
    followRun(found.run);
  } catch (error) {
    if (error.status !== 401) state.runTimer = setTimeout(pollRun, RUN_POLL_MS);
  }
}

async function press(button) {
  $("process-all").disabled = true;
  $("reset-state").disabled = true;
  let answer;
  try {
    answer = await api(`/api/${button}`, { method: "POST" });
  } catch (error) {
    renderRun(state.run);
    if (error.status !== 401) $("run-status").replaceChildren(el("span", { class: "error", text: error.message }));
    return;
  }
  const { status, body } = answer;
  if ((status === 202 || status === 409) && body && body.run) {
    followRun({ ...body.run, final: body.run.final });
    if (status === 409) $("run-status").append(el("div", { class: "muted", text: body.error }));
    return;
  }
  renderRun(state.run);
  $("run-status").append(el("div", { class: "error", text: (body && body.error) || `HTTP ${status}` }));
}

$("process-all").addEventListener("click", () => press("process"));
$("reset-state").addEventListener("click", () => {
  if (window.confirm("Reset State puts every decided order back to NEW and releases its stock. Go on?")) press("reset");
});

// ---- start ----------------------------------------------------------------------------------------

function refreshAll() {
  return Promise.all([loadOrders(), loadStock(), loadRuns()]);
}

let refreshTimer = null;

async function start() {
  try {
    await getJSON("/api/action");  // the token, if one is needed, is checked here first
  } catch (error) {
    if (error.status === 401) return;  // the page asks for it again
  }
  $("auth").hidden = true;
  $("main").hidden = false;
  await loadRuns();
  await Promise.all([loadOrders(), loadStock(), pollRun()]);
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => {
    if (!(state.run && !state.run.final)) {
      refreshAll();
      pollRun();  // a run pressed in another tab shows here too
    }
  }, REFRESH_MS);
}

(async function boot() {
  let config;
  try {
    config = await getJSON("/api/config");
  } catch (error) {
    $("store-line").replaceChildren(el("span", { class: "error", text: error.message }));
    return;
  }
  if (config.auth_required && !state.token) askToken("");
  else start();
})();
