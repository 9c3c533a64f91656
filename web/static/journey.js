// Your session: what the shopper did (and whether it arrived), the item they look at, and the
// View / Add to cart / Buy buttons that send those events. Each event is acknowledged:
// sending → sent (202) → applied (a push reached the version it brings).

import { $, h, toast } from "./dom.js";
import { TYPE_LABEL, fmtPrice } from "./format.js";
import { me, postEvent, renewSession } from "./api.js";
import { ensureItems, itemOf } from "./catalog.js";
import { icon, pictureBox as pic } from "./pictures.js";

const STATUS = {
  sending: { text: "sending", icon: null },
  sent: { text: "sent", icon: "check" },
  applied: { text: "applied", icon: "check" },
  failed: { text: "not sent", icon: null },
};

const journeyKey = () => `liverec.events.${me?.session}`;
let journey = [];
let eventSeq = 0;
/** The version last pushed to the shopper's rails, and the one the events posted should bring
 * (expected counts those we still wait for). */
let version = 0;
let expected = 0;

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

/** Take up the stored events of the current shopper, whose rails start again at version 0. */
export function resetJourney() {
  journey = loadJourney();
  version = 0;
  expected = 0;
}

export async function sendEvent(aid, type) {
  if (!me) return;
  const item = itemOf(aid);
  const shopper = me;
  // Each event moves the session's version by one: it should bring the version shown plus
  // the events posted since (expected counts those we still wait for).
  expected = Math.max(expected, version) + 1;
  const entry = { id: ++eventSeq, aid, type, at: Date.now(), status: "sending", expect: expected };
  journey.unshift(entry);
  renderJourney();
  if (type === "clicks") spotlight(aid);
  let response = null;
  try {
    response = await postEvent(shopper, aid, type);
  } catch (error) {
    console.warn("event not sent", error);
  }
  if (me !== shopper) return; // we became someone else meanwhile
  if (response?.status === 202 || response?.ok) {
    entry.status = version >= entry.expect ? "applied" : "sent";
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
  expected -= 1;
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

/** A push reached version ``pushed``: every sent event it covers is applied. */
export function acknowledge(pushed) {
  version = pushed;
  let applied = 0;
  for (const entry of journey) {
    if ((entry.status === "sent" || entry.status === "sending") && entry.expect <= pushed) {
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

/** The View / Add to cart / Buy buttons of one item. */
export function actionButtons(aid, prefix = "action") {
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

export function renderJourney() {
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

export function hideSpotlight() {
  $("spotlight").hidden = true;
}

export async function restoreJourney() {
  await ensureItems(journey.map((e) => e.aid));
  renderJourney();
  hideSpotlight();
}
