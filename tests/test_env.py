"""``liverec env``: the simulated shoppers over HTTP, as agents and attackers meet it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.generator import GeneratorConfig
from simulation.env_app import MAX_BODY, EnvLimits, create_env_app
from simulation.episodes import Episodes
from simulation.shopper import World

REPO = Path(__file__).resolve().parents[1]
WORLD = World(GeneratorConfig(sessions=0, items=2000, seed=4))


_SERVERS: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []


def client(**limits: Any) -> httpx.Client:
    """A fresh environment served on a real socket (stopped at the end of the module)."""
    app = create_env_app(WORLD, 4, EnvLimits(**limits))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}")
    _SERVERS.append((server, thread, http))
    return http


@pytest.fixture(autouse=True, scope="module")
def _stop_servers() -> Iterator[None]:
    yield
    for server, _, http in _SERVERS:
        http.close()
        server.should_exit = True
    for _, thread, _ in _SERVERS:
        thread.join(10)


def episode_of(env: httpx.Client, seed: int | None = None) -> dict[str, Any]:
    answer = env.post("/env/reset", json={} if seed is None else {"seed": seed})
    assert answer.status_code == 201, answer.text
    return answer.json()


def play(env: httpx.Client, seed: int, lists: Any) -> list[dict[str, Any]]:
    state = episode_of(env, seed)
    answers = [state]
    history = [e["aid"] for e in state["history"]]
    while not answers[-1]["done"]:
        answer = env.post("/env/step", json={"episode": state["episode"],
                                             "items": lists(history)})
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
        history += [e["aid"] for e in answers[-1]["events"]]
    return answers


def neighbours(history: list[int]) -> list[int]:
    return [a for a in range(max(0, history[-1] - 10), history[-1] + 11)
            if a != history[-1] and a < WORLD.items][:20]


def test_an_episode_runs_to_its_end_with_orders_and_a_summary() -> None:
    env = client()
    answers = play(env, 3, neighbours)
    last = answers[-1]
    assert last["done"] and "orders" in last and last["summary"]["steps"] == len(answers) - 1
    for answer in answers[1:]:
        if answer["clicked"] is not None:
            assert answer["events"][0]["aid"] == answer["clicked"]
            assert answer["reward"] >= 0.2
    assert env.get("/env").json()["episodes"] == 0  # a finished episode is closed


def test_the_same_seed_and_lists_give_the_same_episode() -> None:
    def strip(answers: list[dict[str, Any]]) -> list[Any]:
        return [{k: v for k, v in a.items() if k != "episode"} for a in answers]
    assert strip(play(client(), 8, neighbours)) == strip(play(client(), 8, neighbours))
    unseeded = {episode_of(client())["session"] for _ in range(5)}
    assert len(unseeded) == 5


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"items": [1, 1]}, "items.1", 422),
    ({"items": [1, 2000]}, "items.1", 422),
    ({"items": [-1]}, "items.0", 422),
    ({"items": ["3"]}, "items.0", 422),
    ({"items": [True]}, "items.0", 422),
    ({"items": []}, "items", 422),
    ({"items": list(range(21))}, "items", 422),
    ({"items": [1], "extra": 1}, "extra", 422),
    ({"items": [1], "episode": "nope"}, "episode", 404),
    ({"items": [1], "episode": "x" * 65}, "episode", 422),
])
def test_bad_steps_name_the_field_and_change_nothing(body: dict[str, Any], field: str,
                                                    status: int) -> None:
    env = client()
    reference = play(client(), 5, neighbours)
    state = episode_of(env, 5)
    answer = env.post("/env/step", json={"episode": state["episode"], **body})
    assert answer.status_code == status
    assert answer.json()["detail"][0]["field"] == field
    assert answer.json()["detail"][0]["reason"]
    # Refused, never partly applied: the episode goes on exactly as one never refused.
    history = [e["aid"] for e in state["history"]]
    answers = [state]
    while not answers[-1]["done"]:
        answers.append(env.post("/env/step", json={"episode": state["episode"],
                                                   "items": neighbours(history)}).json())
        history += [e["aid"] for e in answers[-1]["events"]]
    assert [a.get("events") for a in answers] == [a.get("events") for a in reference]
    metrics = env.get("/metrics").text
    assert 'liverec_env_refused_total{reason=' in metrics


def test_bodies_that_are_not_json_objects_are_refused() -> None:
    env = client()
    for content in (b"", b"[]", b"{", b"null", b'{"episode": 1, "items": 2}'):
        answer = env.post("/env/step", content=content)
        assert answer.status_code == 422, content
        assert answer.json()["detail"][0]["reason"]
    assert env.post("/env/reset", content=b"[1]").status_code == 422
    assert env.post("/env/reset", json={"seed": -1}).json()["detail"][0]["field"] == "seed"
    huge = b'{"items": [' + b"1," * MAX_BODY + b'1]}'
    answer = env.post("/env/step", content=huge)
    assert answer.status_code == 413 and answer.json()["detail"][0]["field"] == "body"


_HOSTILE: list[httpx.Client] = []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers()
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["episode", "items", "seed", "x"]),
                                      inner, max_size=3), max_leaves=12))
def test_hostile_json_is_refused_never_a_server_error(junk: Any) -> None:
    if not _HOSTILE:
        _HOSTILE.append(client(episodes_per_client=100_000, episodes=100_000,
                               resets_per_s=1e6, steps_per_s=1e6))
    env = _HOSTILE[0]
    for path in ("/env/step", "/env/reset"):
        answer = env.post(path, json=junk)
        assert answer.status_code in (201, 404, 422, 429), (path, junk, answer.text)
        if answer.status_code != 201:
            assert answer.json()["detail"][0]["reason"]


def test_a_key_is_required_when_set() -> None:
    env = client(key="s3cret")
    assert env.post("/env/reset", json={}).status_code == 401
    wrong = env.post("/env/reset", json={}, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"][0]["field"] == "authorization"
    good = env.post("/env/reset", json={}, headers={"authorization": "Bearer s3cret"})
    assert good.status_code == 201


def test_rates_and_open_episodes_are_capped_per_client() -> None:
    env = client(resets_per_s=1, steps_per_s=1)
    assert episode_of(env)["episode"]
    assert episode_of(env)["episode"]
    refused = env.post("/env/reset", json={})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    capped = client(episodes_per_client=2)
    episode_of(capped), episode_of(capped)
    answer = capped.post("/env/reset", json={})
    assert answer.status_code == 429 and "open episodes" in answer.json()["detail"][0]["reason"]


def test_idle_episodes_are_forgotten() -> None:
    now = [0.0]
    episodes = Episodes(total=3, per_client=2, idle_s=10, clock=lambda: now[0])
    shopper = WORLD.shopper(0, 0, 0, 0)
    a, _ = episodes.open("a", shopper)
    b, _ = episodes.open("a", shopper)
    assert episodes.open("a", shopper) == (None, episodes.open("a", shopper)[1])
    c, _ = episodes.open("b", shopper)
    assert episodes.open("c", shopper)[0] is None  # the process is full
    now[0] = 5.0
    assert a is not None and episodes.get(a) is not None  # used: stays
    now[0] = 12.0
    assert episodes.expire() == 2 and len(episodes) == 1
    assert b is not None and c is not None and episodes.get(b) is None
    assert episodes.open("a", shopper)[0] is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_example_agent_beats_a_random_one_against_the_real_server() -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "liverec", "env", "--port", str(port),
                               "--items", "2000"], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/nowhere").status_code == 404
        out = subprocess.run([sys.executable, str(REPO / "examples" / "env_agent.py"), "--url",
                              f"http://127.0.0.1:{port}", "--episodes", "150"],
                             capture_output=True, text=True, timeout=300, check=True).stdout
    finally:
        server.terminate()
        server.wait(10)
    rows = dict(line.split(" ", 1) for line in out.splitlines())
    import json
    random_agent, follow = json.loads(rows["random"]), json.loads(rows["follow"])
    assert follow["clicks_per_1000_lists"] > 5 * random_agent["clicks_per_1000_lists"]
    assert follow["reward_per_episode"] > random_agent["reward_per_episode"]
