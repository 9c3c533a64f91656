// Server access: JSON reads, the shopper's private session (an id and a token from POST
// /sessions, kept in localStorage), events posted with that token, and the WebSocket address
// of a session. Becoming a new shopper touches every panel, so app.js supplies how (setRenewer).

import { toast } from "./dom.js";
import { setConnection } from "./connection.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// ---------------------------------------------------------------------------------------------
// The shopper: a private session (id and token from the server), kept in localStorage
// ---------------------------------------------------------------------------------------------

const SHOPPER_KEY = "liverec.shopper";

/** ``{session, token}``; token is null against a server without private sessions. Importers
 * see it live (an ES module binding); only saveShopper changes it. */
export let me = loadShopper();

function loadShopper() {
  try {
    const stored = JSON.parse(localStorage.getItem(SHOPPER_KEY) ?? "null");
    if (stored && Number.isSafeInteger(stored.session) && stored.session >= 0
        && (typeof stored.token === "string" || stored.token === null)) return stored;
  } catch { /* a damaged entry: start as a new shopper */ }
  return null;
}

export function saveShopper(shopper) {
  me = shopper;
  localStorage.setItem(SHOPPER_KEY, JSON.stringify(shopper));
}

function authHeaders() {
  return me?.token ? { authorization: `Bearer ${me.token}` } : {};
}

/** A new session from the server. Waits out a 429 (too many new sessions) with backoff. */
export async function requestSession() {
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

/** POST one event of ``shopper``'s session with the current token; rejects when unsent. */
export function postEvent(shopper, aid, type) {
  return fetch("/events", {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeaders() },
    body: JSON.stringify({ session: shopper.session, aid, type }),
  });
}

/** Serve ``shopper``'s session by ``method`` (GET /methods lists them); resolves to the lists
 * so made, rejects with the server's reason. */
export async function chooseMethod(shopper, method) {
  const response = await fetch(`/sessions/${shopper.session}/method`, {
    method: "PUT",
    headers: { "content-type": "application/json", accept: "application/json", ...authHeaders() },
    body: JSON.stringify({ method }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail?.[0]?.reason ?? `HTTP ${response.status}`);
  return body;
}

/** The WebSocket address that watches ``session`` (with its token when it is private). */
export function liveURL(session, token = null) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}://${location.host}/ws/sessions/${session}${query}`;
}

// ---------------------------------------------------------------------------------------------
// Renewal: our session was refused (its token no longer valid)
// ---------------------------------------------------------------------------------------------

/** Recent renewals; more than a few a minute means something is wrong beyond a lost key. */
const renewals = [];
let renewing = null;
let renew = async () => {};

/** How to become a new shopper (it resets the rails and "Your session"); set by app.js. */
export function setRenewer(fn) {
  renew = fn;
}

/** Our session was refused (its token no longer valid): become a new shopper, within limits. */
export function renewSession(reason) {
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
      await renew();
      toast(reason, 3000);
      return true;
    } finally {
      renewing = null;
    }
  })();
  return renewing;
}
