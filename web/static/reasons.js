// Why an item is recommended: the server's reason for each rail item, as a short label.

import { h } from "./dom.js";
import { TYPES } from "./format.js";
import { itemOf } from "./catalog.js";
import { icon } from "./pictures.js";

const WHY = {
  you_viewed: { icon: "eye", group: "you", text: () => "You viewed this" },
  you_carted: { icon: "bag", group: "you", text: () => "In your cart" },
  you_bought: { icon: "bag", group: "you", text: () => "You bought this" },
  viewed_with: { icon: "link", group: "with", text: (x) => (x ? `Viewed with ${x}` : "Viewed together") },
  bought_with: { icon: "bag", group: "with", text: (x) => (x ? `Bought with ${x}` : "Bought together") },
  viewed_after: { icon: "arrow", group: "with", text: (x) => (x ? `Viewed after ${x}` : "Viewed next") },
  sessions_like_yours: { icon: "spark", group: "similar", text: () => "Shoppers like you viewed it" },
  sequence_pick: { icon: "arrow", group: "similar", text: () => "Next on paths like yours" },
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
export function reasonOf(reason) {
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

/** The items the reasons of ``lists`` name (their names must be loaded before showing). */
export function viaAids(lists) {
  const why = lists.why ?? {};
  return TYPES.flatMap((t) => (why[t] ?? []).map((r) => r?.via).filter((a) => a !== null && a !== undefined));
}
