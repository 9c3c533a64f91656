"""The CLI's ``simulate`` and ``env`` commands (``liverec.simulating`` runs them)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from liverec.args import positive_int, sequence_flags


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve simulated shoppers with each method and compare what they do."""
    from liverec.simulating import run_simulate

    return run_simulate(args)


def cmd_env(args: argparse.Namespace) -> int:
    """Serve the simulated shoppers over HTTP."""
    from liverec.simulating import run_env

    return run_env(args)


def add_parsers(sub: Any) -> None:
    """Add ``simulate`` and ``env`` to the CLI's subcommands."""
    p = sub.add_parser("simulate", help="an A/B test in simulation: methods serve simulated "
                                        "shoppers who click, cart and order what they like")
    p.add_argument("--method", default="popular,rerank",
                   help="comma-separated methods, the first the baseline of the paired "
                        "differences (default popular,rerank)")
    p.add_argument("--shoppers", type=positive_int, default=1000,
                   help="shoppers per replicate (default 1,000)")
    p.add_argument("--replicates", type=positive_int, default=5,
                   help="replicates, each with shoppers of its own; the intervals are over "
                        "them (default 5, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="catalog, history and shoppers")
    p.add_argument("--history", type=int, default=5000,
                   help="generated sessions every method learns from first (default 5,000)")
    p.add_argument("--items", type=positive_int, default=5000, help="catalog size")
    p.add_argument("--rail", choices=("clicks", "carts", "orders"), default="clicks",
                   help="which of a method's lists the shoppers see (default clicks)")
    p.add_argument("--click-scale", type=float, default=0.3,
                   help="chance to click a top item of relevance 1 (default 0.3)")
    p.add_argument("--jobs", type=positive_int, default=min(4, os.cpu_count() or 1),
                   metavar="N", help="methods run at once, a process each (default: the CPU "
                                     "count, at most 4); the figures do not depend on it")
    sequence_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("env", help="the simulated shoppers over HTTP for agents: POST "
                                   "/env/reset, POST /env/step")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default "
                                                        "127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    p.add_argument("--items", type=positive_int, default=5000,
                   help="catalog size; `liverec generate --items N --seed S` writes history "
                        "of the same catalog")
    p.add_argument("--seed", type=int, default=0, help="catalog and shoppers")
    p.add_argument("--key", default=os.environ.get("LIVEREC_ENV_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: env LIVEREC_ENV_KEY; "
                        "none: open to anyone who can reach the port)")
    p.add_argument("--max-episodes", type=positive_int, default=10_000)
    p.add_argument("--episodes-per-client", type=positive_int, default=100)
    p.add_argument("--resets-per-s", type=float, default=100.0, help="per client address")
    p.add_argument("--steps-per-s", type=float, default=500.0, help="per client address")
    p.set_defaults(func=cmd_env)
