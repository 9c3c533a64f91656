// The header's live-connection indicator: what state the shopper's own socket (or the search
// for a session) is in.

const WORDS = {
  open: "live", connecting: "connecting", closed: "reconnecting", denied: "new session…",
  refused: "refused",
};

export function setConnection(state) {
  const el = document.querySelector("[data-testid=connection]");
  el.dataset.state = state;
  el.querySelector(".conn-text").textContent = WORDS[state] ?? state;
}
