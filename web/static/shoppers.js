// Live shoppers: public replayed sessions, each over its own socket (no token), rotating.
//
// Query option: ?rotate=N seconds between live-shopper rotations (0 = never rotate).

import { $, flash, h } from "./dom.js";
import { RAIL_LABEL, TYPES, fmtPrice } from "./format.js";
import { getJSON, me } from "./api.js";
import { ensureItems, itemOf } from "./catalog.js";
import { LiveLists } from "./live.js";
import { pictureBox } from "./pictures.js";

const LIVE_SLOTS = 3;
const LIVE_ITEMS = 8;
const params = new URLSearchParams(location.search);
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

export async function rotateShoppers() {
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
