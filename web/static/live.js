// Live lists over a WebSocket, reconnecting with backoff.

import { liveURL } from "./api.js";

/** Close codes of the server: the token is missing or wrong, it is another session's, the
 * client holds too many sockets, the server is full, a policy refused us. */
const WS_UNAUTHORISED = 4401;
const WS_FORBIDDEN = 4403;
const WS_TOO_MANY = 4429;
const WS_FULL = 4503;
export const WS_POLICY = 1008;

export class LiveLists {
  /** Watch one session (with its token when it is private); ``onLists(json)`` gets every
   * push, ``onState`` the socket's state, ``onDenied(code)`` a refusal, after which it stops. */
  constructor({ session, token = null, onLists, onState = () => {}, onDenied = () => {} }) {
    Object.assign(this, { session, token, onLists, onState, onDenied });
    this.attempts = 0;
    this.closed = false;
    this.timer = 0;
    this.connect();
  }

  connect() {
    this.onState("connecting");
    const ws = (this.ws = new WebSocket(liveURL(this.session, this.token)));
    ws.onopen = () => this.onState("open");
    ws.onmessage = (message) => {
      this.attempts = 0; // a working connection resets the backoff
      // Rendering may fetch item names; a failed fetch is retried by the next push.
      Promise.resolve(this.onLists(JSON.parse(message.data)))
        .catch((error) => console.warn(`session ${this.session}: push not shown`, error));
    };
    ws.onclose = (event) => {
      if (this.closed) return;
      if (event.code === WS_UNAUTHORISED || event.code === WS_FORBIDDEN
          || event.code === WS_POLICY) {
        // Retrying with the same credentials would be refused the same way.
        this.closed = true;
        this.onState(event.code === WS_POLICY ? "refused" : "denied");
        this.onDenied(event.code);
        return;
      }
      this.onState("closed");
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once;
      // a server that says we hold too many sockets gets a longer pause.
      const floor = event.code === WS_TOO_MANY || event.code === WS_FULL ? 5000 : 500;
      const delay = Math.min(30000, floor * 2 ** this.attempts++) * (0.75 + Math.random() / 2);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}
