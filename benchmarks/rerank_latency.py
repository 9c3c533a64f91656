"""What the River re-rankers add to the pipeline, per event: p50/p99 with and without them.

    python benchmarks/rerank_latency.py [--warm 200000] [--events 20000]
                                        [--sequence-model MODEL.npz]

Two pipelines learn from the same ``--warm`` synthetic events (time order), one serving the
co-visitation recipe, one with the re-rankers. Then each applies the next ``--events`` events
one at a time and every ``apply`` is timed: with re-rankers an event is first judged against
the lists live before it (candidates, features, three model scores) and learned from, then
applied. The difference of the percentiles is what re-ranking adds per event. Lists served on
demand (a push to a watching client) are timed too, for the sessions the timed events touched.

The garbage collector runs as in the serving process (``liverec/collector.py``): young
generations collected and frozen once a "second" (1,000 events here), outside the timing.
``--sample`` is the share of sessions whose clicks are judged and learned from (carts and
orders always are): 100 times every event's worst case, 10 is what the runtime runs.
``--sequence-model``: a third pipeline whose re-rankers also read that model's picks
(``LIVEREC_SEQUENCE_MODEL``); "sequence adds" is its cost over the plain re-rankers. Besides
the wall-clock percentiles, each pipeline's CPU time per timed event (``time.process_time``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50": statistics.median(samples) * 1e3,
            "p99": samples[int(0.99 * (len(samples) - 1))] * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=100, help="percent of sessions judged")
    parser.add_argument("--sequence-model", default=None,
                        help="also time the re-rankers reading this sequence model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from liverec.sources import generated_events
    from online_models.covisitation import CovisConfig
    from online_models.rerank import RerankConfig
    from stream.pipeline import PipelineConfig, SessionPipeline

    total = args.warm + args.events
    events = generated_events(total // 16 + 1, args.items, args.seed)[:total]
    warm, timed = events[:args.warm], events[args.warm:]
    covis = CovisConfig(max_neighbors=200)
    results: dict[str, dict[str, float]] = {}
    runs: list[tuple[str, RerankConfig | None]] = [
        ("recipe", None), ("rerank", RerankConfig(sample_percent=args.sample))]
    if args.sequence_model:
        runs.append(("sequence", RerankConfig(sample_percent=args.sample,
                                              sequence_model=args.sequence_model)))
    for name, rerank in runs:
        pipeline = SessionPipeline(PipelineConfig(covis=covis, rerank=rerank))
        for i in range(0, len(warm), 1000):
            pipeline.apply(warm[i:i + 1000])
        gc.collect()
        gc.freeze()  # the warm state is long-lived: keep it out of the timed collections
        apply_s: list[float] = []
        cpu = time.process_time()
        for i, event in enumerate(timed):
            if i % 1000 == 999:
                gc.collect(1)
                gc.freeze()
            started = time.perf_counter()
            pipeline.apply((event,))
            apply_s.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
        lists_s: list[float] = []
        for session in list(dict.fromkeys(e.session for e in timed))[:5000]:
            started = time.perf_counter()
            pipeline.recommendations(session)
            lists_s.append(time.perf_counter() - started)
        gc.unfreeze()
        results[name] = {**{f"apply_{k}_ms": v for k, v in _percentiles(apply_s).items()},
                         **{f"lists_{k}_ms": v for k, v in _percentiles(lists_s).items()},
                         "apply_cpu_mean_ms": 1e3 * cpu / len(timed)}
    added = {k: results["rerank"][k] - results["recipe"][k] for k in results["recipe"]}
    rows = [*results.items(), ("added", added)]
    if "sequence" in results:
        rows.append(("seq adds", {k: results["sequence"][k] - results["rerank"][k]
                                  for k in results["rerank"]}))
    if args.json:
        print(json.dumps(dict(rows), indent=2))
        return
    print(f"{args.warm:,} warm events, {args.events:,} timed events, one at a time, "
          f"{args.sample} % of sessions judged")
    print(f"{'':10}{'apply p50':>12}{'apply p99':>12}{'apply CPU':>12}{'lists p50':>12}"
          f"{'lists p99':>12}  (ms)")
    for name, row in rows:
        print(f"{name:10}" + "".join(f"{row[k]:12.3f}" for k in
                                     ("apply_p50_ms", "apply_p99_ms", "apply_cpu_mean_ms",
                                      "lists_p50_ms", "lists_p99_ms")))


if __name__ == "__main__":
    main()
