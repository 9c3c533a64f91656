"""The CLI's operator commands: ``export`` (a deployment's input log as an OTTO file), ``lag``
(what its workers have yet to apply) and ``reset`` (its topics and store keys deleted).
``distributed.topic_admin`` does the work."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from liverec.settings import Settings

T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T], url: str) -> T:
    """Run ``work``, a broker that cannot be reached or refuses named as such."""
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(work)
    except KafkaError as exc:
        raise ValueError(f"{url}: {exc}") from None


def _kafka_url(url: str, flag: str) -> str:
    if urlsplit(url).scheme != "kafka":
        raise ValueError(f"{flag} {url!r}: expected kafka://host:port (or set LIVEREC_BUS)")
    return url


def cmd_export(args: argparse.Namespace) -> int:
    """Write the events topic, page events included, as OTTO jsonl."""
    from tqdm import tqdm

    from distributed.topic_admin import export_topic

    settings = Settings()
    url = _kafka_url(args.source or settings.bus, "--from")
    topic = args.topic or f"{settings.topic_prefix}events"
    bar = tqdm(unit="ev", unit_scale=True, desc="export", disable=args.quiet, mininterval=0.5)

    def progress(read: int, total: int) -> None:
        bar.total = total
        bar.update(read - bar.n)

    try:
        report = _run(export_topic(url, topic, args.out, progress), url)
    finally:
        bar.close()
    print(f"exported {report.events:,} events of {report.sessions:,} sessions from {url} topic "
          f"{topic} ({len(report.partitions)} partitions) to {args.out}")
    if report.skipped:
        print(f"skipped {report.skipped:,} records that are not events (the workers "
              f"dead-letter them); first: {report.first_error}", file=sys.stderr)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    """Delete a deployment's topics and store keys, once its workers have stopped."""
    from distributed.store import RedisStore
    from distributed.topic_admin import active_members, delete_topics

    settings = Settings()
    bus = _kafka_url(args.bus or settings.bus, "--bus")
    store = _redis_url(args.store or settings.store)
    prefix = settings.topic_prefix
    topics = [f"{prefix}events", f"{prefix}events.dlq"]
    keys = f"keys {prefix}* in {store}" if prefix else f"every key in {store}"
    if not args.yes:
        print(f"would delete topics {', '.join(topics)} on {bus} and {keys}; "
              "run again with --yes to do it", file=sys.stderr)
        return 1
    members = _run(active_members(bus, settings.app_id), bus)
    if members:
        raise ValueError(f"group {settings.app_id!r} has {members} running worker(s): stop "
                         "them first (deploy/local/cluster.sh down)")
    deleted = _run(delete_topics(bus, topics), bus)
    cleared = RedisStore.from_url(store, prefix).clear()
    print(f"deleted topics {', '.join(deleted) or '(none existed)'} on {bus}; "
          f"{cleared:,} keys from {store}" + (f" under {prefix!r}" if prefix else ""))
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    """Events on the topic that the store has not applied, per partition; with ``--wait``,
    block until there are none."""
    import time

    from distributed.store import RedisStore
    from distributed.topic_admin import applied_lag, end_offsets

    settings = Settings()
    bus = _kafka_url(args.bus or settings.bus, "--bus")
    topic = f"{settings.topic_prefix}events"
    store = RedisStore.from_url(_redis_url(args.store or settings.store), settings.topic_prefix)
    deadline = time.monotonic() + args.timeout
    while True:
        ends = _run(end_offsets(bus, topic), bus)
        lag = applied_lag(ends, lambda p: store.stored_offset(topic, p))
        total = sum(lag.values())
        if not args.wait or total == 0 or time.monotonic() > deadline:
            break
        if not args.quiet:
            print(f"waiting: {total:,} events to apply", file=sys.stderr, flush=True)
        time.sleep(1.0)
    for partition, behind in lag.items():
        print(f"{topic}[{partition}]: {ends[partition][1]:,} on the broker, {behind:,} "
              "not applied")
    print(f"lag {total:,}" + ("" if total == 0 else
                              f" after {args.timeout:g} s" if args.wait else ""))
    return 0 if total == 0 or not args.wait else 1


def _redis_url(url: str) -> str:
    if urlsplit(url).scheme not in ("redis", "rediss"):
        raise ValueError(f"store {url!r}: expected redis://host:port/db (LIVEREC_STORE or "
                         "--store)")
    return url


def _deployment_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bus", metavar="URL", help="kafka://host:port (default LIVEREC_BUS)")
    p.add_argument("--store", metavar="URL", help="redis://host:port/db (default "
                                                  "LIVEREC_STORE)")


def add_parsers(sub: Any) -> None:
    """Add ``export``, ``lag`` and ``reset`` to the CLI's subcommands."""
    p = sub.add_parser("export", help="write a deployment's events topic (page events "
                                      "included) as an OTTO jsonl file")
    p.add_argument("--from", dest="source", metavar="URL",
                   help="kafka://host:port (default LIVEREC_BUS)")
    p.add_argument("--topic", help="default {LIVEREC_TOPIC_PREFIX}events")
    p.add_argument("--out", type=Path, required=True, help="FILE.jsonl or FILE.jsonl.gz")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("lag", help="events on the topic not yet applied to the store, per "
                                   "partition")
    _deployment_flags(p)
    p.add_argument("--wait", action="store_true",
                   help="until there are none (exit 1 if --timeout passes first)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="longest --wait (default 300)")
    p.add_argument("-q", "--quiet", action="store_true", help="no waiting lines")
    p.set_defaults(func=cmd_lag)

    p = sub.add_parser("reset", help="delete a deployment's topics and store keys (its "
                                     "workers stopped first)")
    _deployment_flags(p)
    p.add_argument("--yes", action="store_true", help="do it (without: say what it would do)")
    p.set_defaults(func=cmd_reset)
