// The catalog as the page knows it: names, categories, prices and colours by aid.

import { getJSON } from "./api.js";

/** The catalog is deterministic per aid, so every entry is fetched once and kept. */
const catalog = new Map();

export function remember(items) {
  for (const item of items) catalog.set(item.aid, item);
}

export async function ensureItems(aids) {
  const missing = [...new Set(aids)].filter((aid) => aid !== null && !catalog.has(aid));
  for (let i = 0; i < missing.length; i += 200) {
    remember(await getJSON(`/catalog/items?aids=${missing.slice(i, i + 200).join(",")}`));
  }
}

export function itemOf(aid) {
  return catalog.get(aid)
    ?? { aid, name: `Item ${aid}`, category: "", price: 0, colour: "#94a3b8" };
}
