"""``liverec simulate`` (an A/B test against simulated shoppers) and ``liverec env`` (the same
shoppers over HTTP, for agents written elsewhere)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys

from evaluation.evaluate import stderr_progress
from evaluation.methods import make_method, parse_methods
from liverec.server import make_server
from online_models.sequence.config import SequenceConfig
from producers.generator import GeneratorConfig
from simulation.env_app import EnvLimits, create_env_app
from simulation.loop import FIGURES, SimulationConfig, format_table, simulate
from simulation.shopper import ShopperModel, World


def run_simulate(args: argparse.Namespace) -> int:
    names = parse_methods(args.method)
    config = SimulationConfig(shoppers=args.shoppers, replicates=args.replicates,
                              seed=args.seed, history=args.history, items=args.items,
                              rail=args.rail, model=ShopperModel(click_scale=args.click_scale))
    say = (lambda _: None) if args.quiet else stderr_progress()
    say(f"simulate {', '.join(names)}: {config.replicates} replicates of {config.shoppers:,} "
        f"shoppers, seed {config.seed}, shown the {config.rail} list")
    make = functools.partial(make_method, sequence=SequenceConfig(epochs=args.epochs,
                                                                  dim=args.dim), progress=say)
    results = simulate(names, config, say, args.jobs, make)
    if args.json:
        out = {name: {"intervals": {f: vars(i) for f, i in r.intervals.items()},
                      "versus": {f: vars(i) for f, i in r.versus.items()},
                      "replicates": [t.rates() for t in r.tallies],
                      "cpu_seconds": r.cpu_seconds}
               for name, r in results.items()}
        json.dump({"config": {"shoppers": config.shoppers, "replicates": config.replicates,
                              "seed": config.seed, "history": config.history,
                              "items": config.items, "rail": config.rail,
                              "figures": list(FIGURES)}, "methods": out},
                  sys.stdout, indent=2)
        print()
    else:
        print(format_table(results))
    return 0


def run_env(args: argparse.Namespace) -> int:
    world = World(GeneratorConfig(sessions=0, items=args.items, seed=args.seed))
    limits = EnvLimits(episodes=args.max_episodes, episodes_per_client=args.episodes_per_client,
                       resets_per_s=args.resets_per_s, steps_per_s=args.steps_per_s,
                       key=args.key)
    app = create_env_app(world, args.seed, limits)
    server = make_server(app, args.host, args.port)
    print(f"liverec env: {args.items:,} items, seed {args.seed}, on http://{args.host}:"
          f"{args.port} (POST /env/reset, POST /env/step; Ctrl-C stops)", file=sys.stderr)

    async def serve() -> None:
        with server.capture_signals():
            await server.serve()

    asyncio.run(serve())
    return 0
