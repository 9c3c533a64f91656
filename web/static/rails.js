// Your recommendations: three rails of 20, each card with its reason, pushed live over the
// shopper's own (token-bearing) socket; the rails scroll sideways and fold on a phone.

import { $, flash, h, phone, toast } from "./dom.js";
import { TYPES, ago, fmtPrice } from "./format.js";
import { setConnection } from "./connection.js";
import { chooseMethod, getJSON, me, renewSession } from "./api.js";
import { ensureItems, itemOf } from "./catalog.js";
import { LiveLists, WS_POLICY } from "./live.js";
import { reasonOf, viaAids } from "./reasons.js";
import { acknowledge, sendEvent } from "./journey.js";
import { icon, pictureBox as pic } from "./pictures.js";

const RAIL_SIZE = 20;

const own = { previous: null, at: 0, seq: 0, live: null, version: 0 };
/** Method name → what it is, as GET /methods describes them. */
const methods = new Map();

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
  showMethod(lists.method);
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

/** The method that made the lists just shown (a server that cannot switch names none). */
function showMethod(name) {
  const select = $("method-select");
  if (name && methods.has(name)) select.value = name;
  const serving = name ?? select.value;
  $("serving-method").textContent = methods.get(serving) ?? "";
  $("serving-method").dataset.method = serving ?? "";
}

async function loadMethods() {
  const { default: first, methods: offered } = await getJSON("/methods");
  const select = $("method-select");
  methods.clear();
  select.replaceChildren(...offered.map(({ name, description }) => {
    methods.set(name, description);
    return h("option", { value: name }, name);
  }));
  select.value = own.previous?.method ?? first;
  select.disabled = offered.length < 2;
  showMethod(own.previous?.method ?? first);
  select.addEventListener("change", async () => {
    const wanted = select.value;
    select.disabled = true;
    try {
      await onOwnLists(await chooseMethod(me, wanted));
    } catch (error) {
      toast(`Could not switch to ${wanted}: ${error.message}`, 5000);
      showMethod(own.previous?.method ?? first);
    } finally {
      select.disabled = offered.length < 2;
    }
  });
}

export function tickUpdated() {
  $("updated-ago").textContent = own.at
    ? `Updated ${ago(Date.now() - own.at)}`
    : "Waiting for the first update";
}

/** Stop watching the shopper's session (before becoming another). */
export function stopWatching() {
  own.live?.close();
}

export function watchOwnSession() {
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

export function setUpRails() {
  loadMethods().catch((error) => console.error("could not load the methods", error));
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
