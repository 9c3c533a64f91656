// How figures, times and the three event types read on the page.

export const TYPES = ["clicks", "carts", "orders"];
export const TYPE_LABEL = { clicks: "viewed", carts: "carted", orders: "bought" };
export const RAIL_LABEL = { clicks: "Click", carts: "Cart", orders: "Order" };
export const fmtInt = new Intl.NumberFormat("en");
export const fmtPrice = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });

export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  return `${Math.floor(s / 60)} min ago`;
}

export function fmtMs(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? `${value.toFixed(1)} ms` : `${fmtInt.format(Math.round(value))} ms`;
}

export function fmtDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
