// The live shop page: a storefront, the shopper's three live rails (each item saying why it is
// there), replayed shoppers and an operations view. Vanilla JS talking to the app's own REST
// and WebSocket endpoints only.
//
// The shopper's session is private: the server hands out a session id and a token (POST
// /sessions), kept in localStorage; events, lists and the WebSocket need that token.
//
// Query options: ?rotate=N seconds between live-shopper rotations (0 = never rotate).

import { icon, pictureBox } from "./pictures.js";
import { OpsCharts } from "./charts.js";

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
const phone = window.matchMedia("(max-width: 899px)");

/** Build an element: h("div", {class: "x", dataset: {aid: 1}, onclick}, child, "text"). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value); // CSSOM: allowed by the CSP
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

function fmtDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

/** Restart a one-shot CSS animation class on an element. */
function flash(el, cls) {
  el.classList.remove(cls);
  void el.offsetWidth; // reflow, so removing and adding the class restarts the animation
  el.classList.add(cls);
}

let toastTimer = 0;
function toast(text, ms = 1800) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), ms);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
  const missing = [...new Set(aids)].filter((aid) => aid !== null && !catalog.has(aid));
  for (let i = 0; i < missing.length; i += 200) {
    remember(await getJSON(`/catalog/items?aids=${missing.slice(i, i + 200).join(",")}`));
  }
}

function itemOf(aid) {
  return catalog.get(aid)
    ?? { aid, name: `Item ${aid}`, category: "", price: 0, colour: "#94a3b8" };
}

// ---------------------------------------------------------------------------------------------
// The shopper: a private session (id and token from the server), kept in localStorage
// ---------------------------------------------------------------------------------------------

const SHOPPER_KEY = "liverec.shopper";

/** ``{session, token}``; token is null against a server without private sessions. */
let me = loadShopper();

function loadShopper() {
  try {
    const stored = JSON.parse(localStorage.getItem(SHOPPER_KEY) ?? "null");
    if (stored && Number.isSafeInteger(stored.session) && stored.session >= 0
        && (typeof stored.token === "string" || stored.token === null)) return stored;
  } catch { /* a damaged entry: start as a new shopper */ }
  return null;
}

function saveShopper(shopper) {
  me = shopper;
  localStorage.setItem(SHOPPER_KEY, JSON.stringify(shopper));
}

function authHeaders() {
  return me?.token ? { authorization: `Bearer ${me.token}` } : {};
}

/** A new session from the server. Waits out a 429 (too many new sessions) with backoff. */
async function requestSession() {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch("/sessions", { method: "POST", headers: { accept: "application/json" } });
    } catch (error) {
      response = null; // the server is away: wait like for a 429
    }
    if (response?.status === 201 || response?.status === 200) {
      const body = await response.json();
      return { session: body.session, token: body.token ?? null };
    }
    if (response && (response.status === 404 || response.status === 405)) {
      // A server from before private sessions: pick an id of our own, as it expects.
      return { session: 1e12 + Math.floor(Math.random() * 8e15), token: null };
    }
    const wait = Math.min(30000, 2000 * 2 ** attempt) * (0.75 + Math.random() / 2);
    if (response?.status === 429) {
      toast(`The shop is busy; trying again in ${Math.round(wait / 1000)} s`, wait);
    }
    setConnection("connecting");
    await sleep(wait);
  }
}

/** Recent renewals; more than a few a minute means something is wrong beyond a lost key. */
const renewals = [];
let renewing = null;

/** Our session was refused (its token no longer valid): become a new shopper, within limits. */
function renewSession(reason) {
  if (renewing) return renewing;
  const now = Date.now();
  while (renewals.length && now - renewals[0] > 60000) renewals.shift();
  if (renewals.length >= 3) {
    setConnection("refused");
    toast("The server keeps refusing this page's session; reload the page later.", 6000);
    return Promise.resolve(false);
  }
  renewals.push(now);
  renewing = (async () => {
    try {
      await becomeNewShopper();
      toast(reason, 3000);
      return true;
    } finally {
      renewing = null;
    }
  })();
  return renewing;
}

async function becomeNewShopper() {
  own.live?.close();
  setConnection("connecting");
  saveShopper(await requestSession());
  journey = loadJourney();
  own.expected = 0;
  renderJourney();
  $("spotlight").hidden = true;
  watchOwnSession();
}

// ---------------------------------------------------------------------------------------------
// Your session's events, each acknowledged: sending → sent (202) → applied (pushed version)
// ---------------------------------------------------------------------------------------------

const journeyKey = () => `liverec.events.${me?.session}`;
let journey = [];
let eventSeq = 0;

function loadJourney() {
  try {
    const stored = JSON.parse(localStorage.getItem(journeyKey()) ?? "[]");
    return Array.isArray(stored) ? stored : [];
  } catch {
    return [];
  }
}

function saveJourney() {
  journey = journey.slice(0, 50);
  localStorage.setItem(journeyKey(), JSON.stringify(journey.map(
    ({ aid, type, at, status, expect }) => ({ aid, type, at, status, expect }))));
}

async function sendEvent(aid, type) {
  if (!me) return;
  const item = itemOf(aid);
  const shopper = me;
  // Each event moves the session's version by one: it should bring the version shown plus
  // the events posted since (own.expected counts those we still wait for).
  own.expected = Math.max(own.expected, own.version) + 1;
  const entry = { id: ++eventSeq, aid, type, at: Date.now(), status: "sending", expect: own.expected };
  journey.unshift(entry);
  renderJourney();
  if (type === "clicks") spotlight(aid);
  let response = null;
  try {
    response = await fetch("/events", {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ session: shopper.session, aid, type }),
    });
  } catch (error) {
    console.warn("event not sent", error);
  }
  if (me !== shopper) return; // we became someone else meanwhile
  if (response?.status === 202 || response?.ok) {
    entry.status = own.version >= entry.expect ? "applied" : "sent";
    saveJourney();
    renderJourney();
    toast(`${TYPE_LABEL[type][0].toUpperCase()}${TYPE_LABEL[type].slice(1)} ${item.name}`);
    return;
  }
  // Not applied: later expectations move down by the one this event will not bring.
  entry.status = "failed";
  for (const other of journey) {
    if (other !== entry && other.expect > entry.expect && other.status !== "applied") other.expect -= 1;
  }
  own.expected -= 1;
  saveJourney();
  renderJourney();
  if (response && (response.status === 401 || response.status === 403)) {
    renewSession("Your session had expired: you are now a new shopper.");
  } else if (response?.status === 429) {
    toast("Slow down a little: too many events at once.");
  } else {
    if (response) console.warn("event not accepted", response.status, await response.text());
    toast("Could not send that event; try again.");
  }
}

/** A push reached version ``version``: every sent event it covers is applied. */
function acknowledge(version) {
  let applied = 0;
  for (const entry of journey) {
    if ((entry.status === "sent" || entry.status === "sending") && entry.expect <= version) {
      // A push may overtake the 202 of its own request; it is applied all the same.
      entry.status = "applied";
      entry.fresh = true;
      applied += 1;
    }
  }
  if (applied) {
    saveJourney();
    renderJourney();
  }
  return applied;
}

// ---------------------------------------------------------------------------------------------
// Why an item is recommended
// ---------------------------------------------------------------------------------------------

const WHY = {
  you_viewed: { icon: "eye", group: "you", text: () => "You viewed this" },
  you_carted: { icon: "bag", group: "you", text: () => "In your cart" },
  you_bought: { icon: "bag", group: "you", text: () => "You bought this" },
  viewed_with: { icon: "link", group: "with", text: (x) => (x ? `Viewed with ${x}` : "Viewed together") },
  bought_with: { icon: "bag", group: "with", text: (x) => (x ? `Bought with ${x}` : "Bought together") },
  viewed_after: { icon: "arrow", group: "with", text: (x) => (x ? `Viewed after ${x}` : "Viewed next") },
  similar: { icon: "spark", group: "similar", text: () => "Like items in your session" },
  popular_now: { icon: "flame", group: "popular", text: () => "Popular now" },
  popular: { icon: "star", group: "popular", text: () => "Best seller" },
};

/** An item's name without its brand, short enough for a card: a brand is the first word, or
 * words joined by "&" ("Kite & Co"). */
function shortName(name) {
  const words = name.split(" ");
  let start = 1;
  while (words[start] === "&" && start + 2 < words.length) start += 2;
  return words.length > start ? words.slice(start).join(" ") : name;
}

/** The reason element for a rail card, or null when the server gave none (older servers). */
function reasonOf(reason) {
  const known = reason && WHY[reason.source];
  if (!known) return null;
  const hasVia = reason.via !== null && reason.via !== undefined;
  const text = known.text(hasVia ? shortName(itemOf(reason.via).name) : null);
  return h("span", {
    class: `why why-${known.group}`, "data-testid": "rail-why",
    title: known.text(hasVia ? itemOf(reason.via).name : null),
    dataset: { source: reason.source },
  }, icon(known.icon, "why-icon"), h("span", { class: "why-text" }, text));
}

function viaAids(lists) {
  const why = lists.why ?? {};
  return TYPES.flatMap((t) => (why[t] ?? []).map((r) => r?.via).filter((a) => a !== null && a !== undefined));
}

// ---------------------------------------------------------------------------------------------
// Item visuals and actions
// ---------------------------------------------------------------------------------------------

const pic = pictureBox;

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

/** Close codes of the server: the token is missing or wrong, it is another session's, the
 * client holds too many sockets, the server is full, a policy refused us. */
const WS_UNAUTHORISED = 4401;
const WS_FORBIDDEN = 4403;
const WS_TOO_MANY = 4429;
const WS_FULL = 4503;
const WS_POLICY = 1008;

class LiveLists {
  /** Watch one session (with its token when it is private); ``onLists(json)`` gets every
   * push, ``onState`` the socket's state, ``onDenied(code)`` a refusal, after which it stops. */
  constructor({ session, token = null, onLists, onState = () => {}, onDenied = () => {} }) {
    Object.assign(this, { session, token, onLists, onState, onDenied });
    this.attempts = 0;
    this.closed = false;
    this.timer = 0;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.onState("connecting");
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    const ws = (this.ws = new WebSocket(
      `${scheme}://${location.host}/ws/sessions/${this.session}${query}`));
    ws.onopen = () => this.onState("open");
    ws.onmessage = (message) => {
      this.attempts = 0; // a working connection resets the backoff
      // Rendering may fetch item names; a failed fetch is retried by the next push.
      Promise.resolve(this.onLists(JSON.parse(message.data)))
        .catch((error) => console.warn(`session ${this.session}: push not shown`, error));
    };
    ws.onclose = (event) => {
      if (this.closed) return;
      if (event.code === WS_UNAUTHORISED || event.code === WS_FORBIDDEN
          || event.code === WS_POLICY) {
        // Retrying with the same credentials would be refused the same way.
        this.closed = true;
        this.onState(event.code === WS_POLICY ? "refused" : "denied");
        this.onDenied(event.code);
        return;
      }
      this.onState("closed");
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once;
      // a server that says we hold too many sockets gets a longer pause.
      const floor = event.code === WS_TOO_MANY || event.code === WS_FULL ? 5000 : 500;
      const delay = Math.min(30000, floor * 2 ** this.attempts++) * (0.75 + Math.random() / 2);
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
// Your recommendations: three rails of 20, each card with its reason
// ---------------------------------------------------------------------------------------------

const own = { previous: null, at: 0, seq: 0, live: null, version: 0, expected: 0 };

function railCard(aid, rank, isNew, reason) {
  const item = itemOf(aid);
  const why = reasonOf(reason);
  const cls = `rail-card${isNew ? " is-new" : ""}`;
  return h("li", {
    class: cls, "data-testid": "rail-item", dataset: { aid, source: reason?.source ?? "" },
  },
  h("button", {
    type: "button", class: "rail-hit",
    title: `View ${item.name}${why ? ` · ${why.title}` : ""}`,
    onclick: () => sendEvent(aid, "clicks"),
  },
  h("span", { class: "rail-pic" },
    pic(item, "pic-rail"),
    h("span", { class: "rail-rank" }, String(rank)),
    item.category ? h("span", { class: "rail-price" }, fmtPrice.format(item.price)) : null),
  h("span", { class: "rail-text" },
    h("span", { class: "rail-name" }, item.name),
    why)));
}

async function onOwnLists(lists) {
  if (lists.session !== me?.session) return;
  const seq = ++own.seq;
  await ensureItems([...TYPES.flatMap((t) => lists[t]), ...viaAids(lists)]);
  if (seq !== own.seq) return; // a newer push arrived while names were loading
  const why = lists.why ?? {};
  for (const type of TYPES) {
    // Flash only what this push brought in; the first push after (re)subscribing brings all.
    const before = own.previous ? new Set(own.previous[type]) : null;
    const shown = lists[type].slice(0, RAIL_SIZE);
    const same = own.previous && own.previous[type].join() === lists[type].join()
      && JSON.stringify(own.previous.why?.[type]) === JSON.stringify(why[type]);
    if (!same) {
      $(`rail-${type}`).replaceChildren(...shown.map(
        (aid, i) => railCard(aid, i + 1, before !== null && !before.has(aid), why[type]?.[i])));
    }
    const count = document.querySelector(`[data-testid=rail-count-${type}]`);
    count.textContent = `${shown.length} items`;
    updateRailEdges($(`rail-${type}`));
  }
  const moved = own.previous !== null && lists.version !== own.version;
  own.previous = lists;
  own.at = Date.now();
  own.version = lists.version;
  $("version").textContent = String(lists.version);
  // Every version change shows, lists changed or not: the shopper's event was applied.
  const applied = acknowledge(lists.version);
  if (moved || applied) flash($("version-badge"), "bump");
  tickUpdated();
}

function tickUpdated() {
  $("updated-ago").textContent = own.at
    ? `Updated ${ago(Date.now() - own.at)}`
    : "Waiting for the first update";
}

function setConnection(state) {
  const el = document.querySelector("[data-testid=connection]");
  el.dataset.state = state;
  const words = {
    open: "live", connecting: "connecting", closed: "reconnecting", denied: "new session…",
    refused: "refused",
  };
  el.querySelector(".conn-text").textContent = words[state] ?? state;
}

function watchOwnSession() {
  own.live?.close();
  own.previous = null;
  own.at = 0;
  own.version = 0;
  $("session-id").textContent = String(me.session);
  $("version").textContent = "0";
  const shopper = me;
  own.live = new LiveLists({
    session: me.session, token: me.token, onLists: onOwnLists, onState: setConnection,
    onDenied: (code) => {
      if (me !== shopper) return;
      if (code === WS_POLICY) {
        toast("The server refused this page's live connection.", 5000);
        return;
      }
      renewSession("Your session had expired: you are now a new shopper.");
    },
  });
}

// Rails scroll sideways: arrows step by about a screenful, the edges fade where more is hidden.
function updateRailEdges(rail) {
  const view = rail.parentElement;
  const more = rail.scrollWidth - rail.clientWidth;
  view.classList.toggle("more-left", rail.scrollLeft > 4);
  view.classList.toggle("more-right", rail.scrollLeft < more - 4);
  const block = rail.closest(".rail-block");
  const [back, next] = block.querySelectorAll(".rail-arrow");
  back.disabled = rail.scrollLeft <= 4;
  next.disabled = rail.scrollLeft >= more - 4;
}

function setUpRails() {
  for (const type of TYPES) {
    const rail = $(`rail-${type}`);
    rail.replaceChildren(...Array.from({ length: 6 }, () => h("li", {
      class: "rail-card skeleton", "aria-hidden": "true" })));
    const block = rail.closest(".rail-block");
    rail.addEventListener("scroll", () => updateRailEdges(rail), { passive: true });
    for (const arrow of block.querySelectorAll(".rail-arrow")) {
      arrow.append(icon("arrow", "arrow-icon"));
      arrow.addEventListener("click", () => {
        const step = Math.max(120, rail.clientWidth * 0.8) * Number(arrow.dataset.dir);
        rail.scrollBy({ left: step, behavior: "smooth" });
      });
    }
    new ResizeObserver(() => updateRailEdges(rail)).observe(rail);
  }
  // On a phone the rails are a bar over the page's foot; it folds to its header line.
  const recs = $("recs");
  const toggle = $("recs-toggle");
  const fold = (folded) => {
    recs.dataset.collapsed = String(folded);
    toggle.setAttribute("aria-expanded", String(!folded));
    toggle.title = folded ? "Show the rails" : "Fold the rails";
    document.body.classList.toggle("dock-folded", folded);
    for (const type of TYPES) updateRailEdges($(`rail-${type}`));
  };
  toggle.addEventListener("click", () => fold(recs.dataset.collapsed !== "true"));
  $("recs").querySelector(".recs-head").addEventListener("click", (event) => {
    if (phone.matches && recs.dataset.collapsed === "true" && event.target !== toggle
        && !toggle.contains(event.target)) fold(false);
  });
}

// ---------------------------------------------------------------------------------------------
// Your session: what the shopper did (and whether it arrived), and the item they look at
// ---------------------------------------------------------------------------------------------

const STATUS = {
  sending: { text: "sending", icon: null },
  sent: { text: "sent", icon: "check" },
  applied: { text: "applied", icon: "check" },
  failed: { text: "not sent", icon: null },
};

function renderJourney() {
  $("journey-empty").hidden = journey.length > 0;
  $("journey-count").textContent = journey.length
    ? `${journey.length} event${journey.length === 1 ? "" : "s"}` : "";
  $("session-events").replaceChildren(...journey.map((event) => {
    const item = itemOf(event.aid);
    const status = STATUS[event.status] ?? STATUS.sent;
    const dataset = { type: event.type, aid: event.aid, status: event.status ?? "sent" };
    const el = h("li", {
      class: `journey-event${event.fresh ? " is-acked" : ""}`, "data-testid": "session-event",
      dataset,
    },
    pic(item, "pic-journey"),
    h("span", { class: "journey-main" },
      h("span", { class: "journey-name" }, item.name),
      h("span", { class: "journey-sub" },
        h("span", { class: `badge badge-${event.type}` }, TYPE_LABEL[event.type]),
        h("time", { class: "muted", datetime: new Date(event.at).toISOString() },
          new Date(event.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })))),
    h("span", {
      class: `ack ack-${event.status ?? "sent"}`, "data-testid": "event-status",
      title: event.status === "applied" ? `Applied: your recommendations include it (v${event.expect})`
        : event.status === "sent" ? "Accepted by the server; waiting for the update"
          : event.status === "failed" ? "The server did not take it" : "Sending",
    },
    status.icon ? icon(status.icon, "ack-icon") : null,
    event.status === "applied" ? icon("check", "ack-icon ack-icon-2") : null,
    h("span", { class: "ack-text" }, status.text)));
    event.fresh = false;
    return el;
  }));
}

function spotlight(aid) {
  const item = itemOf(aid);
  const box = $("spotlight");
  box.hidden = false;
  box.replaceChildren(
    pic(item, "pic-spot"),
    h("div", { class: "spot-main" },
      h("span", { class: "eyebrow" }, "Now viewing"),
      h("div", { class: "spot-name" }, item.name),
      h("div", { class: "muted small" }, `${item.category} · ${fmtPrice.format(item.price)}`)),
    h("div", { class: "spot-actions" }, actionButtons(aid, "spotlight").slice(1)));
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
    h("div", { class: "card-pic" },
      pic(item, "pic-card"),
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
// Live shoppers: public replayed sessions, each over its own socket (no token), rotating
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
        const fresh = before && !before.has(aid);
        const el = pictureBox(item, `pic-mini${fresh ? " is-new" : ""}`);
        el.removeAttribute("aria-hidden");
        el.dataset.aid = aid;
        el.title = `${item.name} · ${item.category} · ${fmtPrice.format(item.price)}`;
        return el;
      }));
  }
  const when = lists.event_ts ? new Date(lists.event_ts).toLocaleString([], {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "–";
  slot.el.querySelector(".shopper-meta").textContent = `${lists.version} events · last at ${when}`;
  slot.el.dataset.version = lists.version;
  if (slot.previous) flash(slot.el.querySelector(".pulse"), "beat"); // every push shows
  slot.previous = lists;
  slot.lastPush = Date.now();
}

function fillSlot(index, id) {
  slots[index]?.live.close();
  const now = Date.now();
  const slot = {
    index, session: id, el: shopperCard(id), shownAt: now, lastPush: now, previous: null,
  };
  slot.live = new LiveLists({
    session: id, onLists: (lists) => onShopperLists(slot, lists),
    // Not public after all (or no longer): let the next rotation put another in its place.
    onDenied: () => { slot.shownAt = -Infinity; slot.lastPush = -Infinity; },
  });
  slots[index] = slot;
  const list = $("live-shoppers");
  list.querySelector(".live-empty")?.remove();
  const old = list.children[index];
  if (old) old.replaceWith(slot.el);
  else list.append(slot.el);
}

async function rotateShoppers() {
  const now = Date.now();
  // Most recently active first; the shopper's own session has its own rails already.
  const recent = await getJSON(`/sessions/live?limit=${LIVE_SLOTS * 4}`);
  const ranked = recent.filter((id) => id !== me?.session);
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
  if (!slots.some(Boolean) && !$("live-shoppers").children.length) {
    $("live-shoppers").replaceChildren(
      h("p", { class: "muted small live-empty" }, "No one is shopping yet."));
  }
}

// ---------------------------------------------------------------------------------------------
// Operations: figures and charts polled from /stats
// ---------------------------------------------------------------------------------------------

let statsInFlight = false;
let charts = null;

function showReplay(s) {
  const replay = s.replay ?? {};
  let share = 0;
  let text = "idle";
  let eta = "";
  if (replay.total) {
    // Older servers report no count of replayed events; events applied stand in for it.
    const done = replay.replayed ?? replay.sent ?? s.events ?? 0;
    share = replay.state === "finished" ? 1 : Math.min(1, done / replay.total);
    const counts = `${fmtInt.format(Math.min(done, replay.total))} / ${fmtInt.format(replay.total)}`;
    if (replay.state === "finished") {
      text = `done · ${fmtInt.format(replay.total)}`;
      eta = "finished";
    } else {
      text = counts;
      // The server's estimate; an older server's replay gives none, so the overall rate
      // stands in for the replay's own.
      const rate = replay.events_per_s ?? s.events_per_s;
      const left = typeof replay.eta_s === "number" && Number.isFinite(replay.eta_s)
        ? replay.eta_s
        : typeof rate === "number" && rate > 0 ? (replay.total - done) / rate : null;
      eta = left !== null && left >= 0 ? `ETA ${fmtDuration(left)}` : "";
    }
  }
  $("ops-replay").textContent = text;
  $("ops-replay").title = replay.total ? `${Math.floor(share * 100)}% of the replay applied` : "";
  $("ops-replay-eta").textContent = eta;
  $("ops-replay-bar").style.width = `${share * 100}%`;
}

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
    showReplay(s);
    const recall = s.recall;
    $("ops-recall-item").hidden = !recall;
    for (const type of recall ? TYPES : []) {
      const value = recall[type];
      $(`ops-recall-${type}`).textContent = typeof value === "number" ? value.toFixed(3) : "–";
    }
    charts?.add(s);
  } catch (error) {
    $("ops-rate").textContent = "–"; // the server is away; the next poll will tell
  } finally {
    statsInFlight = false;
  }
}

function setUpOps() {
  // Charts open by default on a wide screen; on a phone they would fill the first screen.
  const key = "liverec.charts";
  const stored = localStorage.getItem(key);
  const toggle = $("ops-toggle");
  const show = (open) => {
    $("ops-charts").hidden = !open;
    $("ops").dataset.open = String(open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide charts" : "Show charts";
    if (open) charts?.refresh();
  };
  show(stored === null ? !phone.matches : stored === "open");
  toggle.addEventListener("click", () => {
    const open = $("ops-charts").hidden;
    localStorage.setItem(key, open ? "open" : "closed");
    show(open);
  });
  charts = new OpsCharts({
    rate: $("chart-rate"), latency: $("chart-latency"), recall: $("chart-recall"),
  }, $("charts-note"));
  charts.start().then(() => { if (!$("ops-charts").hidden) charts.refresh(); });
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

async function startNewSession() {
  const button = $("new-session");
  button.disabled = true;
  try {
    await becomeNewShopper();
    toast("New session: you are a new shopper");
  } finally {
    button.disabled = false;
  }
}

async function main() {
  $("new-session").addEventListener("click", () => startNewSession().catch(() => {}));
  setUpRails();
  setUpOps();
  const failed = (what) => (error) => console.error(`could not load ${what}`, error);
  loadCategories().catch(failed("categories"));
  loadShelf().catch(failed("the shelf"));
  pollStats();
  setInterval(pollStats, 1000);
  setInterval(tickUpdated, 1000);
  if (!me) saveShopper(await requestSession());
  journey = loadJourney();
  own.expected = 0;
  restoreJourney().catch(failed("your session"));
  watchOwnSession();
  const rotate = () => rotateShoppers().catch(() => {}); // the next tick tries again
  rotate();
  setInterval(rotate, 1500);
}

main();
