"""``liverec evaluate`` and ``liverec predict``: files in, figures or a submission out.

The protocols and methods live in ``evaluation``; this is the shell around them that opens
files (any format the readers know), prints a table or JSON, and writes reports.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import orjson

from evaluation.evaluate import (
    Progress,
    Result,
    evaluate_next_item,
    evaluate_otto,
    format_table,
    predict,
    score_predictions,
    stderr_progress,
)
from evaluation.methods import parse_methods
from evaluation.protocols import OttoSplit, day_slice, otto_split, read_labels, write_split
from evaluation.submission import read_submission, write_submission
from online_models.covisitation import CovisConfig
from online_models.rerank import RerankConfig
from online_models.sequence.config import SequenceConfig
from producers.readers import ReadReport, read_events, read_sessions
from stream.events import Event
from stream.pipeline import PipelineConfig


def _progress(args: argparse.Namespace) -> Progress:
    return (lambda message: None) if args.quiet else stderr_progress()


def _read(path: Path, strict: bool, say: Progress) -> list[Event]:
    report = ReadReport()
    started = time.perf_counter()
    events = list(read_events(path, strict=strict, report=report))
    bad = f", {report.bad:,} bad lines skipped" if report.bad else ""
    say(f"read {path}: {report.sessions:,} sessions, {len(events):,} events "
        f"in {time.perf_counter() - started:.1f} s{bad}")
    return events


def _rerank(args: argparse.Namespace) -> RerankConfig:
    model = getattr(args, "sequence_model", None)
    return RerankConfig(sample_percent=args.learn_sample,
                        sequence_model=str(model) if model is not None else None)


def _sequence(args: argparse.Namespace) -> SequenceConfig:
    return SequenceConfig(epochs=args.epochs, dim=args.dim)


def _config(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(covis=CovisConfig(max_neighbors=getattr(args, "max_neighbors", 0)))


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise ValueError(f"evaluate --protocol {args.protocol} needs {' and '.join(missing)}")


def run_evaluate(args: argparse.Namespace) -> int:
    say = _progress(args)
    if args.labels is not None or args.predictions is not None:
        _need(args, "labels", "predictions")
        if args.protocol != "otto":
            raise ValueError("--labels/--predictions score an OTTO submission: use --protocol otto")
        split = OttoSplit([], [], read_labels(args.labels))
        scores = score_predictions(read_submission(args.predictions), split)
        return _output(args, {args.predictions.name: scores.as_dict()}, "otto",
                       f"{len(split.labels):,} labelled sessions in {args.labels}")
    methods = parse_methods(args.method)
    if args.protocol == "otto":
        _need(args, "data")
        if args.by_type:
            raise ValueError("--by-type is for --protocol next-item; otto reports each "
                             "objective's recall already")
        report = ReadReport()
        split = otto_split(read_sessions(args.data, strict=args.strict, report=report),
                           args.test_days, args.seed)
        say(f"split {args.data}: {len(split.train):,} training events, "
            f"{len(split.labels):,} test sessions cut at random ({len(split.test):,} given "
            f"events), test period {args.test_days:g} days")
        if args.write_split is not None:
            paths = write_split(split, args.write_split)
            print("wrote " + ", ".join(str(p) for p in paths.values()))
            return 0
        results = evaluate_otto(methods, split, online=args.online, config=_config(args),
                                rerank=_rerank(args), sequence=_sequence(args), progress=say,
                                jobs=args.jobs)
        details = (f"{len(split.labels):,} test sessions of {args.data.name}, last "
                   f"{args.test_days:g} days, seed {args.seed}")
        return _output(args, results, "otto", details)
    if args.write_split is not None:
        raise ValueError("--write-split writes an OTTO split: use --protocol otto --data FILE")
    if args.by_type and args.report is not None:
        raise ValueError("--report plots the figures without --by-type: leave out one")
    if args.slice is not None:
        _need(args, "train")
        if args.test is not None:
            raise ValueError("--slice cuts the test out of --train: leave out --test")
        train, test = day_slice(_read(args.train, args.strict, say), args.slice)
        details = f"{args.train.name}, day {args.slice} back from its end"
        say(f"slice: {len(train):,} training events, {len(test):,} test events ({details})")
    else:
        _need(args, "train", "test")
        train, test = _read(args.train, args.strict, say), _read(args.test, args.strict, say)
        details = f"{args.train.name} → {args.test.name}"
    results = evaluate_next_item(methods, train, test, online=args.online,
                                 config=_config(args), rerank=_rerank(args),
                                 sequence=_sequence(args), by_type=args.by_type,
                                 progress=say, jobs=args.jobs)
    return _output(args, results, "next-item", details)


def _output(args: argparse.Namespace, results: dict[str, Result], protocol: str,
            details: str) -> int:
    online = " --online" if getattr(args, "online", False) else ""
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"{protocol}{online}: {details}")
        print(format_table(results))
    if args.report is not None:
        from evaluation.report import write_report

        path = write_report(results, args.report, protocol=protocol,
                            title=f"liverec evaluate: {protocol}{online}",
                            command="liverec " + shlex.join(sys.argv[1:]),
                            details={"data": details, "learning": "test-then-train on test "
                                     "events too" if online else "training part only"})
        print(f"report written to {path}", file=sys.stderr)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    say = _progress(args)
    methods = parse_methods(args.method)
    if len(methods) != 1:
        raise ValueError("predict takes one --method")
    train, test = _read(args.train, args.strict, say), _read(args.test, args.strict, say)
    predictions = predict(methods[0], train, test, online=args.online, config=_config(args),
                          rerank=_rerank(args), sequence=_sequence(args), progress=say)
    rows = write_submission(predictions, args.out)
    print(f"wrote {rows:,} rows ({len(predictions):,} sessions × clicks, carts, orders) "
          f"to {args.out}")
    return 0
