"""``liverec`` commands: demo, worker, web, generate, replay, covis, evaluate, predict, train,
simulate and env (``cli_simulation``), export, lag and reset (``cli_ops``), stats.

Each command is a thin shell over the packages below it: parse flags, open sources, call the
library, print a result a person can read (or JSON a program can).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from liverec import __version__, cli_ops, cli_simulation, eventloop, logs
from liverec.args import existing_file, positive_int, sequence_flags
from liverec.settings import Settings
from liverec.sources import generated_catalog, generated_events, ordered_file_events
from online_models.covisitation import CovisConfig
from online_models.covisitation_batch import batch_covisitation
from online_models.rows import export_rows
from online_models.sequence.config import BACKBONES, MODEL_KINDS
from online_models.sequence.train import MissingTrainingExtra
from producers.generator import (
    GeneratorConfig,
    generate_sessions,
    write_jsonl,
    write_retailrocket,
)
from producers.readers import BadInput, read_sessions
from producers.replay import parse_speed, replay_events, replay_plan, speed_for
from producers.stats import OTTO_TRAIN_STATS, format_stats, session_stats
from stream.pipeline import PipelineConfig, SessionPipeline


def cmd_generate(args: argparse.Namespace) -> int:
    config = GeneratorConfig(sessions=args.sessions, items=args.items, seed=args.seed,
                             days=args.days)
    started = time.perf_counter()
    write = write_retailrocket if args.out.suffix == ".csv" else write_jsonl
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n = write(args.out, generate_sessions(config))
    print(f"wrote {args.sessions:,} sessions, {n:,} events to {args.out} "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = session_stats(read_sessions(args.file, strict=args.strict))
    if args.json:
        print(orjson.dumps(stats, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    else:
        print(format_stats(stats, OTTO_TRAIN_STATS))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = Settings()
    target = args.to or settings.bus
    events, total, first_ts, span_ms = ordered_file_events(args.file, strict=args.strict)
    speed = (speed_for(span_ms, args.duration) if args.duration is not None
             else parse_speed(args.speed))
    print(replay_plan(total, span_ms, speed), flush=True)
    if urlsplit(target).scheme == "kafka":
        from liverec.kafka_replay import replay_to_kafka

        return asyncio.run(replay_to_kafka(settings, target, events, total, first_ts, span_ms,
                                           speed, args.quiet))
    from liverec.runtime import EmbeddedRuntime

    runtime = EmbeddedRuntime(settings.model_copy(update={"bus": target}))

    async def run() -> None:
        runtime.start()
        stats = await replay_events(events, runtime.publish, speed=speed, total=total,
                                    progress=not args.quiet)
        await runtime.stop()
        pstats = runtime.pipeline.stats()
        print(f"replayed {stats.events:,} events in {stats.seconds:.1f} s "
              f"({stats.rate:,.0f} events/s) into {target}: {pstats['sessions']:,} sessions, "
              f"{pstats['items']:,} items, {pstats['covis_cells']:,} co-visitation cells")

    asyncio.run(run())
    return 0


def cmd_covis(args: argparse.Namespace) -> int:
    if args.from_store:
        return _covis_from_store(args)
    if args.file is None:
        raise ValueError("covis: give a FILE, or --from-store redis://…")
    events, total, _, _ = ordered_file_events(args.file, strict=args.strict)
    covis_config = CovisConfig(max_neighbors=args.max_neighbors,
                               epoch_half_lives=Settings().covis_epoch_half_lives)
    started = time.perf_counter()
    if args.mode == "stream":
        pipeline = SessionPipeline(PipelineConfig(covis=covis_config))
        pipeline.count_popularity = False  # the matrices are all it writes
        while batch := list(islice(events, 1000)):
            pipeline.apply(batch)
        rows = pipeline.covisitation_rows(args.k)
        pruned = pipeline.covis.pruned_rows
    else:
        clicks, carts_orders, buy2buy = batch_covisitation(list(events), covis_config)
        rows = export_rows(clicks, carts_orders, buy2buy, args.k)
        pruned = 0
    written = 0
    with open(args.out, "wb") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
            written += 1
    print(f"{args.mode}: {total:,} events -> {written:,} items in "
          f"{time.perf_counter() - started:.1f} s, written to {args.out}")
    if pruned:
        print(f"warning: {pruned} row prunings at --max-neighbors {args.max_neighbors}; the output "
              "may differ from --mode batch (use --max-neighbors 0 for the exact result)",
              file=sys.stderr)
    return 0


def _covis_from_store(args: argparse.Namespace) -> int:
    """Dump the matrices a distributed deployment keeps in Redis, in ``covis`` format."""
    from distributed.store import RedisStore

    prefix = Settings().topic_prefix if args.prefix is None else args.prefix
    store = RedisStore.from_url(args.from_store, prefix,
                                epoch_shift=Settings().covis_epoch_half_lives)
    written = 0
    with open(args.out, "wb") as out:
        for row in store.export(args.k):
            out.write(orjson.dumps(row) + b"\n")
            written += 1
    print(f"{args.from_store} (prefix {prefix!r}): {written:,} items written to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score methods under a protocol, or score a submission file against labels."""
    from liverec.quality import run_evaluate

    return run_evaluate(args)


def cmd_predict(args: argparse.Namespace) -> int:
    """Write a Kaggle-format submission for test sessions."""
    from liverec.quality import run_predict

    return run_predict(args)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a sequence model and write its serving file."""
    from liverec.training import run_train

    return run_train(args)


def _distributed_settings(command: str) -> Settings:
    settings = Settings()
    if urlsplit(settings.bus).scheme != "kafka" or urlsplit(settings.store).scheme != "redis":
        raise ValueError(f"liverec {command} needs LIVEREC_BUS=kafka://host:port and "
                         "LIVEREC_STORE=redis://host:port/db")
    return settings


def cmd_worker(args: argparse.Namespace) -> int:
    """A Faust worker of the distributed runtime (LIVEREC_BUS=kafka://…, LIVEREC_STORE=redis://…)."""
    import redis

    from distributed.transport import no_arguments
    from distributed.worker import WORKER_MAX_BATCH, Worker, WorkerConfig, faust_worker
    from liverec.runtime import pipeline_config
    from producers.kafka_sink import KafkaSink

    settings = _distributed_settings("worker")
    # Faust only consumes topics that exist when it starts.
    KafkaSink(settings.bus, f"{settings.topic_prefix}events", settings.partitions).ensure_topic()
    worker = Worker(WorkerConfig(
        broker=settings.bus, store=settings.store, topic_prefix=settings.topic_prefix,
        app_id=settings.app_id, partitions=settings.partitions,
        max_batch=settings.max_batch or WORKER_MAX_BATCH,
        batch_window_s=settings.batch_window_ms / 1000,
        linger_records=settings.batch_linger_records,
        fetch_max_wait_ms=settings.fetch_max_wait_ms, view_max_age_s=settings.view_max_age_s,
        model_sync_s=settings.model_sync_seconds, commit_every_s=settings.commit_interval_s,
        watch_sweep_s=settings.watch_sweep_s,
        kafka_session_timeout_s=settings.kafka_session_timeout_s,
        redis_timeout_s=settings.redis_timeout_s, redis_patience_s=settings.redis_patience_s,
        compact_min_bytes=settings.compact_min_bytes,
        report_every_s=settings.report_interval_s), pipeline_config(settings, distributed=True))
    app = worker.app
    from prometheus_client import CollectorRegistry

    from distributed.health import Probes, brokers_of
    from distributed.worker import WorkerMetrics
    from liverec.worker_metrics import serve_metrics

    store = redis.Redis.from_url(settings.store, socket_connect_timeout=1, socket_timeout=1)
    probes = Probes(worker.stats, last_poll=lambda: worker.transport.last_poll,
                    ping_redis=store.ping, brokers=brokers_of(settings.bus),
                    stall_s=settings.worker_stall_s, max_lag=settings.ready_max_lag)
    registry = CollectorRegistry()
    registry.register(WorkerMetrics(worker.stats))
    port = serve_metrics(registry, settings.host, settings.metrics_port, probes)
    # Whoever started several workers on a host finds each one's port in its output.
    logs.start_line("liverec.worker", f"liverec worker {__version__}: group {settings.app_id}, "
                    f"topic {settings.topic_prefix}events ({settings.partitions} partitions) on "
                    f"{settings.bus}, store {settings.store}; health and metrics on "
                    f"http://{settings.host}:{port}/ (/healthz, /readyz, /metrics)",
                    settings.log_format)
    from liverec.collector import keep_collections_short

    async def collector() -> None:
        # The worker holds millions of objects too: full collections would stall its loop.
        await keep_collections_short()

    app.task(collector)
    app.timer(settings.progress_interval_s)(no_arguments(worker.log_progress))
    libraries = args.loglevel or logs.library_level(settings.log_level)
    faust_worker(app, libraries, logs.dict_config(settings.log_level, libraries,
                                                  settings.log_format)
                 ).execute_from_commandline()
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """A stateless web node of the distributed runtime."""
    from liverec.runtime import pipeline_config
    from liverec.web_node import run_web

    settings = _distributed_settings("web")
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=updates)
    return eventloop.run(run_web(settings, pipeline_config(settings, distributed=True)),
                         settings.event_loop)


def cmd_demo(args: argparse.Namespace) -> int:
    from liverec.demo import run_demo

    settings = Settings()
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=updates)
    catalog = None
    if args.data is not None:
        events, total, _, _ = ordered_file_events(args.data, strict=args.strict)
        source = f"{args.data} ({total:,} events)"
    else:
        catalog = generated_catalog(args.sessions, args.items, args.seed)
        started = time.perf_counter()
        print(f"generating {args.sessions:,} synthetic sessions over {args.items:,} items ...",
              flush=True)
        listed = generated_events(args.sessions, args.items, args.seed)
        events, total = iter(listed), len(listed)
        source = (f"{args.sessions:,} synthetic sessions, {total:,} events "
                  f"(generated in {time.perf_counter() - started:.1f} s)")
    return eventloop.run(run_demo(settings, events, total, source=source, speed=args.speed,
                                  rate=args.rate, catalog=catalog), settings.event_loop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liverec", description="Real-time next-click, cart and order recommendations.")
    parser.add_argument("--version", action="version", version=f"liverec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="replay sessions through the pipeline to a live web page")
    p.add_argument("--host", help="address to serve on (default 127.0.0.1, env LIVEREC_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000, env LIVEREC_PORT; 0 = any)")
    p.add_argument("--data", type=existing_file, help="replay this file instead of generating")
    p.add_argument("--sessions", type=positive_int, default=20_000, help="generated sessions")
    p.add_argument("--items", type=positive_int, default=5_000, help="generated catalog size")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--speed", default="auto",
                   help="times real time, 'max', or 'auto' (paced to --rate events/s)")
    p.add_argument("--rate", type=float, default=50.0,
                   help="average events/s of the replay with --speed auto (default 50)")
    p.add_argument("--strict", action="store_true", help="a bad input line is fatal")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="a Faust worker: Kafka events in, state in Redis")
    p.add_argument("--loglevel", choices=("debug", "info", "warning", "error"),
                   help="the libraries' (Faust's, aiokafka's) log level (default warning; "
                   "liverec's own follow LIVEREC_LOG_LEVEL)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("web", help="a stateless web node: lists from Redis, events to Kafka")
    p.add_argument("--host", help="address to serve on (default 127.0.0.1, env LIVEREC_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000, env LIVEREC_PORT; 0 = any)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("generate", help="write synthetic OTTO-like sessions")
    p.add_argument("--sessions", type=positive_int, required=True)
    p.add_argument("--items", type=positive_int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=float, default=28.0,
                   help="sessions start over this many days (default 28; returning shoppers "
                        "come back later)")
    p.add_argument("--out", type=Path, required=True,
                   help="FILE.jsonl or FILE.jsonl.gz (OTTO), or FILE.csv (RetailRocket's "
                        "events.csv)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("replay", help="replay a file onto the bus in global time order")
    p.add_argument("file", type=existing_file)
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", default="max", help="times real time, or 'max' (default)")
    pace.add_argument("--duration", type=float, metavar="SECONDS",
                      help="replay the file's whole time span in this many seconds")
    p.add_argument("--to", help="bus URL (default LIVEREC_BUS or memory://, the embedded "
                                "pipeline)")
    p.add_argument("--strict", action="store_true", help="a bad input line is fatal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("covis", help="compute the co-visitation matrices of a file, or dump "
                                      "those of a running deployment")
    p.add_argument("file", type=existing_file, nargs="?")
    p.add_argument("--from-store", metavar="URL", help="dump the matrices kept in this Redis "
                                                      "instead of computing them from a file")
    p.add_argument("--prefix", help="key prefix in the store (default LIVEREC_TOPIC_PREFIX)")
    p.add_argument("--mode", choices=("stream", "batch"), default="stream")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("-k", type=positive_int, default=20, help="neighbours per row (default 20)")
    p.add_argument("--max-neighbors", type=int, default=0,
                   help="stream mode row bound (default 0 = exact; the server uses 200)")
    p.add_argument("--strict", action="store_true")
    p.set_defaults(func=cmd_covis)

    p = sub.add_parser("evaluate", help="measure recommendation quality (otto or next-item)")
    p.add_argument("--protocol", choices=("otto", "next-item"), required=True)
    p.add_argument("--data", type=existing_file, help="otto: the log to split by time")
    p.add_argument("--test-days", type=float, default=7.0,
                   help="otto: the last this many days are the test period (default 7)")
    p.add_argument("--seed", type=int, default=0, help="otto: seed of the session cuts")
    p.add_argument("--train", type=existing_file, help="next-item: training sessions")
    p.add_argument("--test", type=existing_file, help="next-item: test sessions")
    p.add_argument("--slice", type=positive_int, metavar="N",
                   help="next-item without --test: test on the sessions ending on the N-th "
                        "last day of --train, train on those before (1 = the last day)")
    p.add_argument("--method", default="rerank",
                   help="comma-separated: popular, recent-popular, history, covis-batch, covis, "
                        "mf, rerank (default), prior, sr, vsknn, gru4rec, sasrec, sqn, or all "
                        "(all but the last three)")
    p.add_argument("--online", action="store_true",
                   help="keep learning from test events after judging each (test-then-train)")
    p.add_argument("--by-type", action="store_true",
                   help="next-item: HR and NDCG at 5, 10 and 20 apart for clicks and for "
                        "purchases (carts and orders, each against its own list)")
    p.add_argument("--learn-sample", type=int, default=100, metavar="PCT",
                   help="rerank: judge and learn from this percentage of sessions (default "
                        "100; lower it on millions of events: each learned event costs a list)")
    p.add_argument("--sequence-model", type=existing_file, default=None, metavar="MODEL",
                   help="rerank, prior: read this trained sequence model's picks as candidates "
                        "and a feature (train it on the training part only)")
    p.add_argument("--max-neighbors", type=int, default=0,
                   help="co-visitation row bound (default 0 = exact, as covis-batch; the "
                        "server bounds rows at 200)")
    sequence_flags(p)
    p.add_argument("--jobs", type=positive_int, default=min(4, os.cpu_count() or 1),
                   metavar="N",
                   help="methods evaluated at once, each in a process of its own with its "
                        "own model in memory (default: the CPU count, at most 4); the figures "
                        "do not depend on it")
    p.add_argument("--json", action="store_true", help="one JSON object keyed by method")
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.md and PNG plots")
    p.add_argument("--write-split", type=Path, metavar="DIR",
                   help="otto: write train.jsonl, test.jsonl, test_labels.jsonl and stop")
    p.add_argument("--labels", type=existing_file, help="otto: score --predictions against "
                                                         "this test_labels.jsonl")
    p.add_argument("--predictions", type=existing_file, help="otto: a submission.csv to score")
    p.add_argument("--strict", action="store_true", help="a bad input line is fatal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="write a Kaggle-format submission.csv for test sessions")
    p.add_argument("--train", type=existing_file, required=True)
    p.add_argument("--test", type=existing_file, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", default="rerank", help="one method (default rerank)")
    p.add_argument("--online", action="store_true", help="learn from the test events too")
    p.add_argument("--learn-sample", type=int, default=100, metavar="PCT",
                   help="rerank: learn from this percentage of sessions (default 100)")
    sequence_flags(p)
    p.add_argument("--strict", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("train", help="train a sequence model (gru4rec, sasrec, sqn) on the "
                                     "CPU; needs the train extra (JAX)")
    p.add_argument("--model", choices=MODEL_KINDS, required=True)
    p.add_argument("--backbone", choices=BACKBONES, default="sasrec",
                   help="sqn: the sequence model under its two heads (default sasrec)")
    p.add_argument("--cql-weight", type=float, default=1.0,
                   help="sqn: weight of the conservative Q-learning term (0: plain SQN)")
    p.add_argument("--data", type=existing_file, required=True,
                   help="sessions to train on, any format the readers know")
    p.add_argument("--out", type=Path, required=True, help="the model file to write (.npz)")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--dim", type=positive_int, default=64, help="embedding size")
    p.add_argument("--max-len", type=positive_int, default=30,
                   help="events of a session the model reads (its most recent)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--learning-rate", type=float, default=0.002)
    p.add_argument("--negatives", type=int, default=None,
                   help="sampled negatives per batch (0: full softmax; default: full up to "
                        "20,000 items, else 1,024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true", help="a bad input line is fatal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    cli_simulation.add_parsers(sub)
    cli_ops.add_parsers(sub)

    p = sub.add_parser("stats", help="session statistics of a file, beside OTTO's")
    p.add_argument("file", type=existing_file)
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        logs.configure("debug" if args.verbose else settings.log_level, settings.log_format)
        return int(args.func(args))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, MissingTrainingExtra) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
