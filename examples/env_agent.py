"""A small agent for ``liverec env``: it learns which item follows which from what shoppers do
and shows those, beside a random agent for comparison. Standard library only.

    liverec env --port 8001 &
    python examples/env_agent.py --url http://127.0.0.1:8001 --episodes 300

Each episode: ``POST /env/reset`` gives a shopper and its first events; then, until the shopper
leaves, ``POST /env/step`` with up to 20 distinct item ids gives its reaction.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import time
from collections import Counter, defaultdict
from urllib.parse import urlsplit


class Client:
    """One kept-alive HTTP connection to the environment."""

    def __init__(self, url: str, key: str | None = None) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1",
                                                     parts.port or 80, timeout=10)
        self.headers = {"content-type": "application/json"}
        if key:
            self.headers["authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        while True:
            self.connection.request(method, path, data, self.headers)
            response = self.connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 429:
                break
            time.sleep(float(response.getheader("retry-after", "1")))  # over our rate
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {answer}")
        return answer


class FollowAgent:
    """Shows the items that most often followed the shopper's last items, then popular ones."""

    def __init__(self, items: int, size: int) -> None:
        self.items, self.size = items, size
        self.follows: defaultdict[int, Counter[int]] = defaultdict(Counter)
        self.popular: Counter[int] = Counter()

    def learn(self, history: list[int]) -> None:
        if len(history) >= 2:
            self.follows[history[-2]][history[-1]] += 1
        self.popular[history[-1]] += 1

    def act(self, history: list[int]) -> list[int]:
        scores: Counter[int] = Counter()
        for weight, aid in zip((1.0, 0.5, 0.25), reversed(history[-3:]), strict=False):
            for other, count in self.follows[aid].most_common(40):
                scores[other] += weight * count
        scores.pop(history[-1], None)
        shown = [aid for aid, _ in scores.most_common(self.size)]
        for aid, _ in self.popular.most_common(self.size * 2):
            if len(shown) >= self.size:
                break
            if aid not in shown and aid != history[-1]:
                shown.append(aid)
        while len(shown) < self.size:  # nothing learned yet: anything not shown
            aid = random.randrange(self.items)
            if aid not in shown:
                shown.append(aid)
        return shown


class RandomAgent(FollowAgent):
    def act(self, history: list[int]) -> list[int]:
        return random.sample(range(self.items), self.size)


def run(client: Client, agent: FollowAgent, episodes: int) -> dict[str, float]:
    steps = clicks = carts = 0
    reward = 0.0
    latencies = []
    for e in range(episodes):
        state = client.call("POST", "/env/reset", {"seed": e})
        history = [event["aid"] for event in state["history"] if event["type"] == "clicks"]
        agent.learn(history)
        done = False
        while not done:
            shown = agent.act(history)
            began = time.perf_counter()
            answer = client.call("POST", "/env/step", {"episode": state["episode"],
                                                       "items": shown})
            latencies.append(time.perf_counter() - began)
            steps += 1
            clicks += answer["clicked"] is not None
            carts += answer["carted"]
            reward += answer["reward"]
            for event in answer["events"]:
                if event["type"] == "clicks":
                    history.append(event["aid"])
                    agent.learn(history)
            done = answer["done"]
    latencies.sort()
    return {"episodes": episodes, "steps": steps, "clicks_per_1000_lists": 1000 * clicks / steps,
            "carts_from_lists": carts, "reward_per_episode": reward / episodes,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--key", default=None, help="the environment's key, if it has one")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--agent", choices=("follow", "random", "both"), default="both")
    args = parser.parse_args()
    random.seed(0)
    client = Client(args.url, args.key)
    info = client.call("GET", "/env")
    kinds = ("random", "follow") if args.agent == "both" else (args.agent,)
    for kind in kinds:
        make = RandomAgent if kind == "random" else FollowAgent
        result = run(client, make(info["items"], info["list_size"]), args.episodes)
        print(kind, json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
