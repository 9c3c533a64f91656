// The live shop page: a storefront, the shopper's three live rails, replayed shoppers and an
// operations strip. Vanilla JS talking to the app's own REST and WebSocket endpoints only.
//
// Query options: ?rotate=N seconds between live-shopper rotations (0 = never rotate).

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const RAIL_SIZE = 20;
const LIVE_SLOTS = 3;
const LIVE_ITEMS = 8;
const TYPES = ["clicks", "carts", "orders"];
const TYPE_LABEL = { clicks: "viewed", carts: "carted", orders: "bought" };
const RAIL_LABEL = { clicks: "Click", carts: "Cart", orders: "Order" };
const fmtInt = new Intl.NumberFormat("en");
const fmtPrice = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });
const params = new URLSearchParams(location.search);

/** Build an element: h("div", {class: "x", dataset: {aid: 1}, onclick}, child, "text"). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  // Text goes in as text nodes, so catalog names can never inject markup.
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  return `${Math.floor(s / 60)} min ago`;
}

function fmtMs(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? `${value.toFixed(1)} ms` : `${fmtInt.format(Math.round(value))} ms`;
}

let toastTimer = 0;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 1800);
}

// ---------------------------------------------------------------------------------------------
// Server access
// ---------------------------------------------------------------------------------------------

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

/** The catalog is deterministic per aid, so every entry is fetched once and kept. */
const catalog = new Map();

function remember(items) {
  for (const item of items) catalog.set(item.aid, item);
}

async function ensureItems(aids) {
  const missing = [...new Set(aids)].filter((aid) => !catalog.has(aid));
  for (let i = 0; i < missing.length; i += 200) {
    remember(await getJSON(`/catalog/items?aids=${missing.slice(i, i + 200).join(",")}`));
  }
}

function itemOf(aid) {
  return catalog.get(aid)
    ?? { aid, name: `Item ${aid}`, category: "", price: 0, colour: "#94a3b8" };
}

// ---------------------------------------------------------------------------------------------
// The shopper: a session id kept in localStorage, and the events they sent
// ---------------------------------------------------------------------------------------------

const SESSION_KEY = "liverec.session";

// Above 10^12 so a shopper never collides with a replayed session; below 2^53 so it stays an
// exact JavaScript number.
function freshSessionId() {
  return 1e12 + Math.floor(Math.random() * 8e15);
}

function loadSession() {
  const stored = Number(localStorage.getItem(SESSION_KEY));
  if (Number.isSafeInteger(stored) && stored >= 1e12) return stored;
  const id = freshSessionId();
  localStorage.setItem(SESSION_KEY, String(id));
  return id;
}

let session = loadSession();
const journeyKey = () => `liverec.events.${session}`;

function loadJourney() {
  try {
    return JSON.parse(localStorage.getItem(journeyKey()) ?? "[]");
  } catch {
    return [];
  }
}

let journey = loadJourney();

async function sendEvent(aid, type) {
  const item = itemOf(aid);
  try {
    const response = await fetch("/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ session, aid, type }),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  } catch (error) {
    console.error("event not accepted", error);
    toast("Could not send that event; try again.");
    return;
  }
  journey.unshift({ aid, type, at: Date.now() });
  journey = journey.slice(0, 50);
  localStorage.setItem(journeyKey(), JSON.stringify(journey));
  renderJourney();
  if (type === "clicks") spotlight(aid);
  toast(`${TYPE_LABEL[type][0].toUpperCase()}${TYPE_LABEL[type].slice(1)} ${item.name}`);
}

// ---------------------------------------------------------------------------------------------
// Item visuals
// ---------------------------------------------------------------------------------------------

/** Two letters from the product words (the brand comes first, so take the last two words). */
function initials(name) {
  const words = name.split(/\s+/).filter((w) => /^[A-Za-z]/.test(w));
  return words.slice(-2).map((w) => w[0].toUpperCase()).join("");
}

/** Dark text on light tiles, white on dark ones. */
function inkFor(hex) {
  const n = parseInt(hex.slice(1), 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 170 ? "#1f2937" : "#ffffff";
}

function tile(item, className) {
  return h("span", {
    class: `tile ${className}`, "aria-hidden": "true",
    style: { backgroundColor: item.colour, color: inkFor(item.colour) },
  }, initials(item.name));
}

function actionButtons(aid, prefix = "action") {
  const button = (type, action, label, cls) => h("button", {
    type: "button", class: `btn ${cls}`, "data-testid": `${prefix}-${action}`,
    onclick: () => sendEvent(aid, type),
  }, label);
  return [
    button("clicks", "view", "View", "btn-ghost"),
    button("carts", "cart", "Add to cart", "btn-primary"),
    button("orders", "buy", "Buy", "btn-dark"),
  ];
}

// ---------------------------------------------------------------------------------------------
// Live lists over a WebSocket, reconnecting with backoff
// ---------------------------------------------------------------------------------------------

class LiveLists {
  /** Watch one session; ``onLists(json)`` gets every push, ``onState`` the socket's state. */
  constructor(sessionId, onLists, onState = () => {}) {
    this.session = sessionId;
    this.onLists = onLists;
    this.onState = onState;
    this.attempts = 0;
    this.closed = false;
    this.timer = 0;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.onState("connecting");
    const url = `${scheme}://${location.host}/ws/sessions/${this.session}`;
    const ws = (this.ws = new WebSocket(url));
    ws.onopen = () => this.onState("open");
    ws.onmessage = (message) => {
      this.attempts = 0; // a working connection resets the backoff
      // Rendering may fetch item names; a failed fetch is retried by the next push.
      Promise.resolve(this.onLists(JSON.parse(message.data)))
        .catch((error) => console.warn(`session ${this.session}: push not shown`, error));
    };
    ws.onclose = () => {
      if (this.closed) return;
      this.onState("closed");
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
      const delay = Math.min(10000, 500 * 2 ** this.attempts++) * (0.75 + Math.random() / 2);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Your recommendations: three rails of 20
// ---------------------------------------------------------------------------------------------

const own = { previous: null, at: 0, seq: 0, live: null };

function railCard(aid, rank, isNew) {
  const item = itemOf(aid);
  const cls = `rail-card${isNew ? " is-new" : ""}`;
  return h("li", { class: cls, "data-testid": "rail-item", dataset: { aid } },
    h("button", {
      type: "button", class: "rail-hit", title: `View ${item.name}`,
      onclick: () => sendEvent(aid, "clicks"),
    },
    h("span", { class: "rail-rank" }, String(rank)),
    tile(item, "tile-rail"),
    h("span", { class: "rail-name" }, item.name),
    h("span", { class: "rail-meta" }, item.category ? fmtPrice.format(item.price) : "")));
}

async function onOwnLists(lists) {
  if (lists.session !== session) return;
  const seq = ++own.seq;
  await ensureItems(TYPES.flatMap((t) => lists[t]));
  if (seq !== own.seq) return; // a newer push arrived while names were loading
  for (const type of TYPES) {
    // Flash only what this push brought in; the first push after (re)subscribing brings all.
    const before = own.previous ? new Set(own.previous[type]) : null;
    $(`rail-${type}`).replaceChildren(...lists[type].slice(0, RAIL_SIZE).map(
      (aid, i) => railCard(aid, i + 1, before !== null && !before.has(aid))));
  }
  own.previous = lists;
  own.at = Date.now();
  $("version").textContent = String(lists.version);
  tickUpdated();
}

function tickUpdated() {
  $("updated-ago").textContent = own.at
    ? `updated ${ago(Date.now() - own.at)}`
    : "waiting for the first update";
}

function setConnection(state) {
  const el = document.querySelector("[data-testid=connection]");
  el.dataset.state = state;
  const words = { open: "live", connecting: "connecting", closed: "reconnecting" };
  el.querySelector(".conn-text").textContent = words[state];
}

function watchOwnSession() {
  own.live?.close();
  own.previous = null;
  own.at = 0;
  $("session-id").textContent = String(session);
  own.live = new LiveLists(session, onOwnLists, setConnection);
}

// ---------------------------------------------------------------------------------------------
// Your session: what the shopper did, and the item they are looking at
// ---------------------------------------------------------------------------------------------

function renderJourney() {
  $("journey-empty").hidden = journey.length > 0;
  $("session-events").replaceChildren(...journey.map((event) => {
    const item = itemOf(event.aid);
    const dataset = { type: event.type, aid: event.aid };
    return h("li", { class: "journey-event", "data-testid": "session-event", dataset },
      h("span", { class: `badge badge-${event.type}` }, TYPE_LABEL[event.type]),
      h("span", { class: "journey-name" }, item.name),
      h("time", { class: "muted small", datetime: new Date(event.at).toISOString() },
        new Date(event.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }));
}

function spotlight(aid) {
  const item = itemOf(aid);
  const box = $("spotlight");
  box.hidden = false;
  box.replaceChildren(
    h("span", { class: "eyebrow" }, "Now viewing"),
    h("div", { class: "spot-row" },
      tile(item, "tile-spot"),
      h("div", {},
        h("div", { class: "spot-name" }, item.name),
        h("div", { class: "muted small" }, `${item.category} · ${fmtPrice.format(item.price)}`))),
    h("div", { class: "actions" }, actionButtons(aid, "spotlight").slice(1)));
}

async function restoreJourney() {
  await ensureItems(journey.map((e) => e.aid));
  renderJourney();
  $("spotlight").hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Shop: category chips and the shelf of popular items
// ---------------------------------------------------------------------------------------------

let category = null;

function shelfCard(item) {
  return h("article", { class: "card", "data-testid": "shelf-item", dataset: { aid: item.aid } },
    h("div", {
      class: "card-tile", style: { backgroundColor: item.colour, color: inkFor(item.colour) },
    },
      h("span", { class: "card-initials" }, initials(item.name)),
      h("span", { class: "card-cat" }, item.category)),
    h("div", { class: "card-body" },
      h("h4", { class: "card-name" }, item.name),
      h("div", { class: "card-price" }, fmtPrice.format(item.price))),
    h("div", { class: "actions" }, actionButtons(item.aid)));
}

async function loadShelf() {
  const filter = category ? `&category=${encodeURIComponent(category)}` : "";
  const items = await getJSON(`/catalog/shelf?limit=24${filter}`);
  remember(items);
  $("shelf").replaceChildren(...(items.length
    ? items.map(shelfCard)
    : [h("p", { class: "muted" }, "Nothing popular here yet.")]));
}

async function loadCategories() {
  const names = await getJSON("/catalog/categories");
  const chip = (name, label) => h("button", {
    type: "button", class: "chip", "data-testid": "category-chip",
    "aria-pressed": String(name === category),
    onclick: () => {
      category = name;
      for (const el of $("categories").children) {
        el.setAttribute("aria-pressed", String(el === chipEls.get(name)));
      }
      loadShelf().catch((error) => console.error("could not load the shelf", error));
    },
  }, label);
  const chipEls = new Map([[null, chip(null, "All")], ...names.map((n) => [n, chip(n, n)])]);
  $("categories").replaceChildren(...chipEls.values());
}

// ---------------------------------------------------------------------------------------------
// Live shoppers: replayed sessions, each over its own socket, rotating
// ---------------------------------------------------------------------------------------------

const rotateS = params.has("rotate") ? Number(params.get("rotate")) : 10;
const ROTATE_MS = rotateS > 0 ? rotateS * 1000 : Infinity;
// A session silent this long makes way early, but only for one that was active more recently.
const QUIET_MS = rotateS > 0 ? Math.min(4000, ROTATE_MS) : Infinity;
const slots = Array.from({ length: LIVE_SLOTS }, () => null);

function shopperHue(id) {
  return (Math.imul(id % 1e9, 2654435761) >>> 0) % 360;
}

function miniRail(type) {
  return h("div", { class: "mini-rail" },
    h("span", { class: `mini-label mini-${type}` }, RAIL_LABEL[type]),
    h("div", { class: "mini-items", "data-testid": `live-rail-${type}` }));
}

function shopperCard(id) {
  return h("article", { class: "shopper", "data-testid": "live-shopper", dataset: { session: id } },
    h("header", { class: "shopper-head" },
      h("span", { class: "avatar", style: { background: `hsl(${shopperHue(id)} 60% 52%)` } },
        String(id).slice(-2)),
      h("div", { class: "shopper-id" },
        h("strong", {}, `Shopper ${id}`),
        h("span", { class: "muted small shopper-meta" }, "connecting…")),
      h("span", { class: "pulse", "aria-hidden": "true" })),
    TYPES.map(miniRail));
}

async function onShopperLists(slot, lists) {
  await ensureItems(TYPES.flatMap((t) => lists[t].slice(0, LIVE_ITEMS)));
  if (slots[slot.index] !== slot) return; // rotated away meanwhile
  for (const type of TYPES) {
    const before = slot.previous ? new Set(slot.previous[type].slice(0, LIVE_ITEMS)) : null;
    slot.el.querySelector(`[data-testid=live-rail-${type}]`).replaceChildren(
      ...lists[type].slice(0, LIVE_ITEMS).map((aid) => {
        const item = itemOf(aid);
        const el = tile(item, `tile-mini${before && !before.has(aid) ? " is-new" : ""}`);
        el.removeAttribute("aria-hidden");
        el.title = `${item.name} · ${item.category} · ${fmtPrice.format(item.price)}`;
        el.dataset.aid = aid;
        return el;
      }));
  }
  const when = lists.event_ts ? new Date(lists.event_ts).toLocaleString([], {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "–";
  slot.el.querySelector(".shopper-meta").textContent = `${lists.version} events · last at ${when}`;
  slot.el.dataset.version = lists.version;
  if (slot.previous) {
    // Restart the pulse animation so every push shows.
    const pulse = slot.el.querySelector(".pulse");
    pulse.classList.remove("beat");
    void pulse.offsetWidth;
    pulse.classList.add("beat");
  }
  slot.previous = lists;
  slot.lastPush = Date.now();
}

function fillSlot(index, id) {
  slots[index]?.live.close();
  const now = Date.now();
  const slot = {
    index, session: id, el: shopperCard(id), shownAt: now, lastPush: now, previous: null,
  };
  slot.live = new LiveLists(id, (lists) => onShopperLists(slot, lists));
  slots[index] = slot;
  const list = $("live-shoppers");
  const old = list.children[index];
  if (old) old.replaceWith(slot.el);
  else list.append(slot.el);
}

async function rotateShoppers() {
  const now = Date.now();
  // Most recently active first; the shopper's own session has its own rails already.
  const recent = await getJSON(`/sessions/live?limit=${LIVE_SLOTS * 4}`);
  const ranked = recent.filter((id) => id !== session);
  const shown = new Set(slots.filter(Boolean).map((slot) => slot.session));
  const fresh = ranked.filter((id) => !shown.has(id));
  const rank = (id) => (ranked.includes(id) ? ranked.indexOf(id) : Infinity);
  // Empty slots first, then at most one rotation per tick so the panel changes gently.
  let rotated = false;
  for (let i = 0; i < LIVE_SLOTS && fresh.length; i++) {
    const slot = slots[i];
    if (!slot) {
      fillSlot(i, fresh.shift());
      continue;
    }
    if (rotated) continue;
    const stale = now - slot.shownAt >= ROTATE_MS;
    const quiet = now - slot.shownAt >= QUIET_MS && now - slot.lastPush >= QUIET_MS
      && rank(fresh[0]) < rank(slot.session);
    if (stale || quiet) {
      fillSlot(i, fresh.shift());
      rotated = true;
    }
  }
  if (!$("live-shoppers").children.length) {
    $("live-shoppers").replaceChildren(h("p", { class: "muted small" }, "No one is shopping yet."));
  }
}

// ---------------------------------------------------------------------------------------------
// Operations strip, polled from /stats
// ---------------------------------------------------------------------------------------------

let statsInFlight = false;

async function pollStats() {
  if (statsInFlight) return;
  statsInFlight = true;
  try {
    const s = await getJSON("/stats");
    $("ops-rate").textContent = fmtInt.format(Math.round(s.events_per_s ?? 0));
    $("ops-events").textContent = fmtInt.format(s.events ?? 0);
    $("ops-sessions").textContent = fmtInt.format(s.sessions ?? 0);
    $("ops-pushes").textContent = fmtInt.format(s.pushes ?? 0);
    $("ops-p50").textContent = fmtMs(s.latency_ms?.p50);
    $("ops-p99").textContent = fmtMs(s.latency_ms?.p99);
    const replay = s.replay ?? {};
    let share = 0;
    let text = "idle";
    if (replay.total) {
      // While running, events applied stand in for events sent (the replay reports those last).
      const sent = replay.sent ?? s.events ?? 0;
      share = replay.state === "finished" ? 1 : Math.min(1, sent / replay.total);
      text = replay.state === "finished"
        ? `done · ${fmtInt.format(replay.sent ?? replay.total)}`
        : `${Math.floor(share * 100)}% of ${fmtInt.format(replay.total)}`;
    }
    $("ops-replay").textContent = text;
    $("ops-replay-bar").style.width = `${share * 100}%`;
    const recall = s.recall;
    $("ops-recall-item").hidden = !recall;
    for (const type of recall ? TYPES : []) {
      const value = recall[type];
      $(`ops-recall-${type}`).textContent = typeof value === "number" ? value.toFixed(3) : "–";
    }
  } catch (error) {
    $("ops-rate").textContent = "–"; // the server is away; the next poll will tell
  } finally {
    statsInFlight = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

function startNewSession() {
  session = freshSessionId();
  localStorage.setItem(SESSION_KEY, String(session));
  journey = [];
  restoreJourney().catch(() => {});
  watchOwnSession();
  toast("New session: you are a new shopper");
}

function main() {
  $("new-session").addEventListener("click", startNewSession);
  watchOwnSession();
  const failed = (what) => (error) => console.error(`could not load ${what}`, error);
  restoreJourney().catch(failed("your session"));
  loadCategories().catch(failed("categories"));
  loadShelf().catch(failed("the shelf"));
  pollStats();
  const rotate = () => rotateShoppers().catch(() => {}); // the next tick tries again
  rotate();
  setInterval(pollStats, 1000);
  setInterval(tickUpdated, 1000);
  setInterval(rotate, 1500);
}

main();
