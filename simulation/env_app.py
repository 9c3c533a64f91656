"""The simulator over HTTP, for agents written in any language (``liverec env``).

``POST /env/reset`` starts an episode: a simulated shopper and its first events.
``POST /env/step`` takes the agent's list for that shopper and answers with the shopper's
reaction (the shown item it clicked, if any, and whether it carted it), the reward, the new
events and whether the shopper has left (then with its orders). ``GET /env`` describes the
environment. Every refusal names the field and the reason; ``/metrics`` counts them.
``docs/simulation.md`` describes the model and an example agent (``examples/env_agent.py``).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import Counter as Counted
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from simulation.episodes import Episodes
from simulation.shopper import CART_REWARD, CLICK_REWARD, World
from stream.events import TYPE_NAMES, Event
from web.intake import read_body
from web.limits import Buckets, retry_after
from web.security import SecurityHeaders, client_address

#: Largest request body read: a step is ~20 numbers and an id.
MAX_BODY = 8192
#: Episodes start at the end of the generator's window, so their times follow its history.
_DAY_MS = 86_400_000


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: StrictInt | None = Field(None, ge=0, lt=2**63,
                             description="the same seed gives the same shopper; none: a new one")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    episode: str = Field(..., min_length=1, max_length=64, description="from /env/reset")
    items: list[StrictInt] = Field(..., min_length=1, description="the agent's list, best first")


@dataclass(frozen=True)
class EnvLimits:
    """How much one client address may ask (``liverec env`` flags)."""

    episodes: int = 10_000
    episodes_per_client: int = 100
    idle_s: float = 900.0
    resets_per_s: float = 100.0
    steps_per_s: float = 500.0
    #: Required as ``Authorization: Bearer KEY`` on every /env call when set.
    key: str | None = None


def _events(events: list[Event]) -> list[dict[str, Any]]:
    return [{"aid": e.aid, "ts": e.ts, "type": TYPE_NAMES[e.type]} for e in events]


def _refuse(status: int, field: str, reason: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": [{"field": field, "reason": reason}]}, status, headers)


def create_env_app(world: World, seed: int, limits: EnvLimits | None = None) -> FastAPI:
    """The environment over ``world``'s catalog; shoppers are drawn from ``seed``'s streams."""
    limits = limits or EnvLimits()
    app = FastAPI(title="liverec environment", docs_url=None, redoc_url=None,
                  summary="Simulated shoppers who react to an agent's recommendations")
    app.add_middleware(SecurityHeaders)
    episodes = Episodes(limits.episodes, limits.episodes_per_client, limits.idle_s)
    resets = Buckets(limits.resets_per_s, max(1.0, 2 * limits.resets_per_s))
    steps = Buckets(limits.steps_per_s, max(1.0, 2 * limits.steps_per_s))
    list_size, items = world.model.list_size, world.items
    start_ms = world.config.start_ms + round(world.config.days * _DAY_MS)
    key = limits.key.encode() if limits.key else None
    refused: Counter[str] = Counter()

    registry = CollectorRegistry()
    served = Counted("liverec_env_requests", "Answered /env calls", ["call"], registry=registry)
    refusals = Counted("liverec_env_refused", "Refused /env calls by reason", ["reason"],
                       registry=registry)
    open_gauge = Gauge("liverec_env_episodes", "Open episodes", registry=registry)
    open_gauge.set_function(lambda: len(episodes))
    seconds = Histogram("liverec_env_step_seconds", "Time to answer a step inside the process",
                        buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
                        registry=registry)

    def refuse(reason: str, status: int, field: str, message: str,
               headers: dict[str, str] | None = None) -> JSONResponse:
        refused[reason] += 1
        refusals.labels(reason).inc()
        return _refuse(status, field, message, headers)

    async def admitted(request: Request, buckets: Buckets, what: str
                       ) -> tuple[bytes, JSONResponse | None]:
        """The body, once the caller's key and rate pass; else the refusal."""
        if key is not None:
            given = request.headers.get("authorization", "")
            token = given[7:].encode() if given[:7].lower() == "bearer " else b""
            if not hmac.compare_digest(token, key):
                return b"", refuse("unauthorized", 401, "authorization",
                                   "send the environment's key as 'Authorization: Bearer KEY'",
                                   {"WWW-Authenticate": "Bearer"})
        wait = buckets.take(client_address(request.scope))
        if wait:
            return b"", refuse("rate_limited", 429, "client", f"too many {what} from this "
                               "address", {"Retry-After": retry_after(wait)})
        body = await read_body(request, MAX_BODY)
        if body is None:
            return b"", refuse("too_large", 413, "body",
                               f"a request body is at most {MAX_BODY:,} bytes")
        return body, None

    def invalid(error: ValidationError) -> JSONResponse:
        refused["invalid"] += 1
        refusals.labels("invalid").inc()
        detail = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
                  for e in error.errors(include_url=False)]
        return JSONResponse({"detail": detail}, 422)

    @app.get("/env")
    async def describe() -> dict[str, Any]:
        """The catalog size, list size, rewards and limits an agent works with."""
        return {"items": items, "list_size": list_size, "seed": seed,
                "rewards": {"click": CLICK_REWARD, "cart": CART_REWARD},
                "episodes": len(episodes), "idle_s": limits.idle_s,
                "limits": {"resets_per_s": limits.resets_per_s,
                           "steps_per_s": limits.steps_per_s,
                           "episodes_per_client": limits.episodes_per_client},
                "model": "docs/simulation.md"}

    @app.post("/env/reset", status_code=201, openapi_extra={"requestBody": {"content": {
              "application/json": {"schema": ResetRequest.model_json_schema()}}}})
    async def reset(request: Request) -> Any:
        """A new episode: a shopper (the same one for the same ``seed``) and its first
        events. Its ``episode`` id is what ``/env/step`` takes."""
        body, refusal = await admitted(request, resets, "resets")
        if refusal is not None:
            return refusal
        try:
            asked = ResetRequest.model_validate_json(body or b"{}")
        except ValidationError as error:
            return invalid(error)
        index = asked.seed if asked.seed is not None else secrets.randbelow(2**63)
        # Session ids above any generated history's (which count from 0).
        shopper = world.shopper(seed, index, 2**40 + index % 2**40, start_ms)
        episode, why = episodes.open(client_address(request.scope), shopper)
        if episode is None:
            return refuse("episodes", 429, "client", why)
        first = shopper.step()
        served.labels("reset").inc()
        return JSONResponse({"episode": episode, "session": shopper.session,
                             "history": _events(first.events), "done": False}, 201)

    @app.post("/env/step", openapi_extra={"requestBody": {"content": {
              "application/json": {"schema": StepRequest.model_json_schema()}}}})
    async def step(request: Request) -> Any:
        """Show the episode's shopper ``items`` (1 to ``list_size`` distinct aids of the
        catalog, best first); the answer is its reaction, reward and new events."""
        began = time.perf_counter()
        body, refusal = await admitted(request, steps, "steps")
        if refusal is not None:
            return refusal
        try:
            asked = StepRequest.model_validate_json(body)
        except ValidationError as error:
            return invalid(error)
        shown = asked.items
        if len(shown) > list_size:
            return refuse("invalid", 422, "items", f"at most {list_size} items, got "
                          f"{len(shown)}")
        where: dict[int, int] = {}
        for k, aid in enumerate(shown):
            if not 0 <= aid < items:
                return refuse("invalid", 422, f"items.{k}", f"{aid} is not an item of the "
                              f"catalog (0 to {items - 1})")
            if aid in where:
                return refuse("invalid", 422, f"items.{k}", f"{aid} repeats items.{where[aid]}")
            where[aid] = k
        episode = episodes.get(asked.episode)
        if episode is None:
            return refuse("unknown_episode", 404, "episode",
                          "no such open episode: it ended, expired or never existed")
        shopper = episode.shopper
        result = shopper.step(shown)
        episode.steps += 1
        episode.clicks += result.clicked is not None
        answer: dict[str, Any] = {
            "clicked": None if result.clicked is None else shown[result.clicked],
            "position": result.clicked, "carted": result.carted, "reward": result.reward,
            "events": _events(result.events), "done": shopper.done}
        if shopper.done:
            orders = shopper.finish()
            answer["events"] += _events(orders)
            answer["orders"] = [e.aid for e in orders]
            answer["summary"] = {"steps": episode.steps, "clicks": episode.clicks,
                                 "carts": len(shopper.carted), "reward": shopper.rewards}
            episodes.close(asked.episode)
        served.labels("step").inc()
        seconds.observe(time.perf_counter() - began)
        return JSONResponse(answer)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.episodes, app.state.refused = episodes, refused
    return app
