// Small DOM helpers shared by every panel: finding and building elements, one-shot animations,
// the toast, and whether the page is laid out for a phone. No state of the shop lives here.

export const $ = (id) => document.getElementById(id);
export const phone = window.matchMedia("(max-width: 899px)");

/** Build an element: h("div", {class: "x", dataset: {aid: 1}, onclick}, child, "text"). */
export function h(tag, attrs = {}, ...children) {
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

/** Restart a one-shot CSS animation class on an element. */
export function flash(el, cls) {
  el.classList.remove(cls);
  void el.offsetWidth; // reflow, so removing and adding the class restarts the animation
  el.classList.add(cls);
}

let toastTimer = 0;
export function toast(text, ms = 1800) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), ms);
}
