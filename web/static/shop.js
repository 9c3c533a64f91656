// Shop: category chips and the shelf of popular items.

import { $, h } from "./dom.js";
import { fmtPrice } from "./format.js";
import { getJSON } from "./api.js";
import { remember } from "./catalog.js";
import { actionButtons } from "./journey.js";
import { pictureBox as pic } from "./pictures.js";

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

export async function loadShelf() {
  const filter = category ? `&category=${encodeURIComponent(category)}` : "";
  const items = await getJSON(`/catalog/shelf?limit=24${filter}`);
  remember(items);
  $("shelf").replaceChildren(...(items.length
    ? items.map(shelfCard)
    : [h("p", { class: "muted" }, "Nothing popular here yet.")]));
}

export async function loadCategories() {
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
