// The live shop page: a storefront, the shopper's three live rails (each item saying why it is
// there), replayed shoppers and an operations view. Vanilla JS talking to the app's own REST
// and WebSocket endpoints only.
//
// The shopper's session is private: the server hands out a session id and a token (POST
// /sessions), kept in localStorage; events, lists and the WebSocket need that token.
//
// Query options: ?rotate=N seconds between live-shopper rotations (0 = never rotate).
//
// This module only wires the panels together and starts them. The modules, each importing
// only modules above it in this list, so there are no import cycles:
//
//   dom.js        element building, toast, one-shot animations, the phone breakpoint
//   format.js     numbers, times, the three event types' labels
//   pictures.js   item pictures and icons drawn as SVG
//   charts.js     the operations charts (uPlot, loaded from the app's own files)
//   connection.js the header's live-connection indicator
//   api.js        server access: JSON, the shopper's session and token, events, socket address
//   catalog.js    item names, categories and prices, fetched once per aid
//   live.js       LiveLists: one session's lists over a reconnecting WebSocket
//   reasons.js    why an item is recommended
//   journey.js    "Your session": events sent and acknowledged, the spotlight, item buttons
//   rails.js      your three live rails: cards with reasons, scrolling, folding
//   shop.js       category chips and the shelf
//   shoppers.js   the live shoppers panel
//   ops.js        the operations strip, replay progress and charts
//   app.js        this wiring
//
// A refused session is renewed from below (api.js) through the renewer set here, since
// becoming a new shopper resets the rails and "Your session" above it.

import { $, toast } from "./dom.js";
import { setConnection } from "./connection.js";
import { me, requestSession, saveShopper, setRenewer } from "./api.js";
import { hideSpotlight, renderJourney, resetJourney, restoreJourney } from "./journey.js";
import { setUpRails, stopWatching, tickUpdated, watchOwnSession } from "./rails.js";
import { loadCategories, loadShelf } from "./shop.js";
import { rotateShoppers } from "./shoppers.js";
import { pollStats, setUpOps } from "./ops.js";

async function becomeNewShopper() {
  stopWatching();
  setConnection("connecting");
  saveShopper(await requestSession());
  resetJourney();
  renderJourney();
  hideSpotlight();
  watchOwnSession();
}

async function startNewSession() {
  const button = $("new-session");
  button.disabled = true;
  try {
    await becomeNewShopper();
    toast("New session: you are a new shopper");
  } finally {
    button.disabled = false;
  }
}

async function main() {
  setRenewer(becomeNewShopper);
  $("new-session").addEventListener("click", () => startNewSession().catch(() => {}));
  setUpRails();
  setUpOps();
  const failed = (what) => (error) => console.error(`could not load ${what}`, error);
  loadCategories().catch(failed("categories"));
  loadShelf().catch(failed("the shelf"));
  pollStats();
  setInterval(pollStats, 1000);
  setInterval(tickUpdated, 1000);
  if (!me) saveShopper(await requestSession());
  resetJourney();
  restoreJourney().catch(failed("your session"));
  watchOwnSession();
  const rotate = () => rotateShoppers().catch(() => {}); // the next tick tries again
  rotate();
  setInterval(rotate, 1500);
}

main();
