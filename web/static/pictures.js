// Item pictures drawn by the page: one small SVG motif per catalog category, painted in the
// item's own colour. Nothing is downloaded, and every element is made through the DOM, so the
// page's content security policy (no inline style attributes) holds.

const NS = "http://www.w3.org/2000/svg";

/** An SVG element with presentation attributes (attributes, never a style string). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

function rgb(hex) {
  const n = parseInt(hex.replace("#", ""), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** ``hex`` moved toward ``to`` by ``share`` (0 = unchanged, 1 = ``to``). */
export function mix(hex, to, share) {
  const [a, b] = [rgb(hex), rgb(to)];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * share));
  return `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** The motifs, in a 64 x 64 box, given the fill, a deep shade for outlines and a light tint. */
const MOTIFS = {
  Shoes: ({ fill, deep, light }) => [
    s("path", {
      d: "M9 42c0-8 2-15 6-18l7-1c2 5 7 8 14 9l12 3c6 1 9 4 9 8v1H9z",
      fill, stroke: deep,
    }),
    s("rect", { x: 7, y: 43, width: 52, height: 7, rx: 3.5, fill: "#fff", stroke: deep }),
    s("path", { d: "M24 29l5-2M27 33l5-2M30 37l5-2", stroke: light, "stroke-width": 2.2 }),
    s("path", { d: "M13 28c3-1 6-1 8 0", stroke: deep, fill: "none" }),
  ],
  Fashion: ({ fill, deep, light }) => [
    s("path", {
      d: "M23 12l-10 4-7 11 8 5 4-5v26h28V27l4 5 8-5-7-11-10-4c-2 5-16 5-18 0z",
      fill, stroke: deep,
    }),
    s("path", { d: "M23 12c2 6 16 6 18 0", fill: "none", stroke: deep }),
    s("rect", { x: 36, y: 28, width: 6, height: 6, rx: 1.2, fill: light, stroke: deep }),
  ],
  Home: ({ fill, deep, light }) => [
    s("ellipse", { cx: 32, cy: 32, rx: 15, ry: 4, fill: light, opacity: 0.8 }),
    s("path", { d: "M21 11h22l7 20H14z", fill, stroke: deep }),
    s("rect", { x: 30.5, y: 31, width: 3, height: 18, fill: deep }),
    s("path", { d: "M21 54c0-4 5-6 11-6s11 2 11 6z", fill, stroke: deep }),
    s("path", { d: "M24 16h6", stroke: light, "stroke-width": 2.4 }),
  ],
  Kitchen: ({ fill, deep, light }) => [
    s("rect", {
      x: 38, y: 29.5, width: 22, height: 6, rx: 3, fill: deep,
      transform: "rotate(-18 38 32)",
    }),
    s("circle", { cx: 25, cy: 35, r: 17, fill, stroke: deep }),
    s("circle", { cx: 25, cy: 35, r: 12, fill: mix(fill, "#000000", 0.18), stroke: deep,
      "stroke-width": 1 }),
    s("path", { d: "M17 30c2-4 6-6 10-6", stroke: light, fill: "none", "stroke-width": 2.4 }),
  ],
  Electronics: ({ fill, deep, light }) => [
    s("path", { d: "M13 38c0-15 8-24 19-24s19 9 19 24", fill: "none", stroke: deep,
      "stroke-width": 4 }),
    s("rect", { x: 8, y: 34, width: 12, height: 19, rx: 5, fill, stroke: deep }),
    s("rect", { x: 44, y: 34, width: 12, height: 19, rx: 5, fill, stroke: deep }),
    s("path", { d: "M12 39v9M52 39v9", stroke: light, "stroke-width": 2.2 }),
  ],
  Sports: ({ fill, deep, light }) => [
    s("rect", { x: 15, y: 29.5, width: 34, height: 5, rx: 2, fill: "#cbd5e1", stroke: deep }),
    s("rect", { x: 5, y: 24, width: 6, height: 16, rx: 2, fill, stroke: deep }),
    s("rect", { x: 10, y: 18, width: 8, height: 28, rx: 2.5, fill, stroke: deep }),
    s("rect", { x: 46, y: 18, width: 8, height: 28, rx: 2.5, fill, stroke: deep }),
    s("rect", { x: 53, y: 24, width: 6, height: 16, rx: 2, fill, stroke: deep }),
    s("path", { d: "M13 22v8M49 22v8", stroke: light, "stroke-width": 2 }),
  ],
  Beauty: ({ fill, deep, light }) => [
    s("rect", { x: 26, y: 8, width: 12, height: 9, rx: 2, fill: deep }),
    s("rect", { x: 28.5, y: 17, width: 7, height: 7, fill: mix(fill, "#ffffff", 0.35),
      stroke: deep }),
    s("rect", { x: 19, y: 24, width: 26, height: 32, rx: 7, fill, stroke: deep }),
    s("rect", { x: 24, y: 33, width: 16, height: 13, rx: 2.5, fill: "#fff", opacity: 0.9 }),
    s("path", { d: "M27 38h10M27 42h6", stroke: deep, "stroke-width": 1.4 }),
    s("path", { d: "M23 29v8", stroke: light, "stroke-width": 2.2 }),
  ],
  Toys: ({ fill, deep, light }) => [
    s("circle", { cx: 19, cy: 19, r: 7, fill, stroke: deep }),
    s("circle", { cx: 45, cy: 19, r: 7, fill, stroke: deep }),
    s("circle", { cx: 19, cy: 19, r: 3, fill: light }),
    s("circle", { cx: 45, cy: 19, r: 3, fill: light }),
    s("circle", { cx: 32, cy: 35, r: 18, fill, stroke: deep }),
    s("ellipse", { cx: 32, cy: 42, rx: 8, ry: 6, fill: light }),
    s("circle", { cx: 25, cy: 31, r: 2.2, fill: "#1f2937" }),
    s("circle", { cx: 39, cy: 31, r: 2.2, fill: "#1f2937" }),
    s("ellipse", { cx: 32, cy: 39.5, rx: 3, ry: 2.2, fill: "#1f2937" }),
  ],
  Garden: ({ fill, deep }) => [
    s("path", { d: "M32 37c-1-8-6-14-14-16 0 9 5 15 14 16z", fill: "#65a30d",
      stroke: "#3f6212" }),
    s("path", { d: "M32 37c1-10 6-17 15-19 0 11-6 18-15 19z", fill: "#84cc16",
      stroke: "#3f6212" }),
    s("path", { d: "M32 37V24", stroke: "#3f6212" }),
    s("path", { d: "M20 41h24l-3 16H23z", fill, stroke: deep }),
    s("rect", { x: 17, y: 36, width: 30, height: 7, rx: 2, fill, stroke: deep }),
  ],
  Books: ({ fill, deep, light }) => [
    s("rect", { x: 17, y: 10, width: 32, height: 44, rx: 3, fill: "#fff", stroke: deep }),
    s("rect", { x: 15, y: 8, width: 32, height: 43, rx: 3, fill, stroke: deep }),
    s("rect", { x: 15, y: 8, width: 6, height: 43, rx: 2, fill: deep, opacity: 0.55 }),
    s("rect", { x: 25, y: 17, width: 17, height: 8, rx: 1.5, fill: light }),
    s("path", { d: "M26 31h15M26 35h10", stroke: light, "stroke-width": 1.6 }),
  ],
};

/** A generic parcel for an item whose category the page does not know. */
function parcel({ fill, deep, light }) {
  return [
    s("path", { d: "M12 22l20-10 20 10v22L32 54 12 44z", fill, stroke: deep }),
    s("path", { d: "M12 22l20 10 20-10M32 32v22", fill: "none", stroke: deep }),
    s("path", { d: "M22 17l20 10v7", fill: "none", stroke: light, "stroke-width": 2.4 }),
  ];
}

/** A small, stable number from an aid: it places the backdrop so that items of one category
 * and colour still look a little different from each other. */
function variant(aid) {
  return (Math.imul(Number(aid) % 1e9, 2654435761) >>> 0) % 4;
}

const cache = new Map();

function colourOf(item) {
  return /^#[0-9a-f]{6}$/i.test(item.colour ?? "") ? item.colour : "#94a3b8";
}

/** The motif of a catalog item: an <svg> element, centred in its box. */
export function picture(item) {
  const key = `${item.aid}|${item.category}|${item.colour}`;
  const cached = cache.get(key);
  if (cached) return cached.cloneNode(true);
  const fill = colourOf(item);
  const colours = {
    fill, deep: mix(fill, "#111827", 0.55), light: mix(fill, "#ffffff", 0.55),
  };
  const tilt = [-4, 3, 0, -2][variant(item.aid)];
  const svg = s("svg", {
    viewBox: "0 0 64 64", class: "pic", role: "img", "aria-label": item.category || "item",
  },
  s("g", {
    "stroke-width": 1.8, "stroke-linejoin": "round", "stroke-linecap": "round",
    transform: `rotate(${tilt} 32 32)`,
  }, ...(MOTIFS[item.category] ?? parcel)(colours)));
  cache.set(key, svg);
  return svg.cloneNode(true);
}

/** The picture in a box of any shape: a soft backdrop in the item's tint, set through the
 * CSSOM (which the content security policy allows, unlike a style attribute). */
export function pictureBox(item, className = "") {
  const box = document.createElement("span");
  box.className = `pic-box ${className}`.trim();
  box.setAttribute("aria-hidden", "true");
  const fill = colourOf(item);
  const [x, y] = [["74%", "26%"], ["24%", "24%"], ["76%", "76%"], ["22%", "74%"]][
    variant(item.aid)];
  box.style.background = `radial-gradient(circle at ${x} ${y}, ${mix(fill, "#ffffff", 0.66)} 0 `
    + `24%, transparent 24.5%), linear-gradient(160deg, ${mix(fill, "#ffffff", 0.9)}, `
    + `${mix(fill, "#ffffff", 0.76)})`;
  box.append(picture(item));
  return box;
}

/** Small line icons for the reasons on rail cards (16 x 16). */
const ICONS = {
  eye: "M1.5 8s2.5-4.5 6.5-4.5S14.5 8 14.5 8 12 12.5 8 12.5 1.5 8 1.5 8zM8 10a2 2 0 100-4 2 2 0 000 4z",
  bag: "M3.5 5.5h9l-.8 8h-7.4zM6 5.5V4a2 2 0 014 0v1.5",
  link: "M6.5 9.5l3-3M7 4.5l1-1a2.5 2.5 0 013.5 3.5l-1 1M9 11.5l-1 1A2.5 2.5 0 014.5 9l1-1",
  arrow: "M2.5 8h10M9 4.5L12.5 8 9 11.5",
  spark: "M8 2l1.4 4.6L14 8l-4.6 1.4L8 14l-1.4-4.6L2 8l4.6-1.4z",
  flame: "M8 14c2.8 0 4.5-1.9 4.5-4.3C12.5 6.5 9 5 9 2 6.5 3.5 5.5 6 6 8 4.8 7.5 4.2 6.5 4 5.5 3.5 6.5 3.5 8 3.5 9.7 3.5 12.1 5.2 14 8 14z",
  star: "M8 2l1.8 3.9 4.2.4-3.2 2.8 1 4.1L8 11l-3.8 2.2 1-4.1L2 6.3l4.2-.4z",
  check: "M3 8.5l3 3 7-7",
};

export function icon(name, className = "icon") {
  return s("svg", { viewBox: "0 0 16 16", class: className, "aria-hidden": "true" },
    s("path", {
      d: ICONS[name], fill: "none", stroke: "currentColor", "stroke-width": 1.6,
      "stroke-linecap": "round", "stroke-linejoin": "round",
    }));
}
