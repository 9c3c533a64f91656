"""Floor 3: the FastAPI app, the WebSocket hub and the shop page."""
