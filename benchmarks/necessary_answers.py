"""The default necessary-mode answer on held-out clips: is there one, and how small is it?

``FreqReX(model).attribute(clip, mode="necessary")`` with no other option (the default search, band
screening, and the default budget), on every K-th clip of each zoo model's held-out split (built
into ``--data`` by ``scripts/build_datasets.py``). Per clip: whether removing every frequency (the
baseline alone) changes the decision, how many features the answer credits (0: an all-zero answer,
which the explainer warns about), the smallest flipping set it found (1 / the largest value; 1 for a
single-bin flip), the narrowest wide part that flipped where the screening fell back to them
(``details["wide_flip"]``), the smallest removal of loud runs that flipped where it ended with them
(``details["loud_run_flip"]``), the flips of its top 1 and top 5 bins
(:func:`~captum_freqrex.metrics.perturbation_success_rate`), the queries and the time. The summary
counts the all-zero answers (and of them, those where the baseline alone changes the decision: a
removal that flips exists, the whole spectrum at least), the answers against their limit (the
clips where a removal that flips is known to exist: the baseline alone flips, or the answer found
one), the wide fallbacks, the loud-run answers, the median smallest flipping set and the flips.
Run it at two commits to compare; the records (one JSON line per clip) resume an interrupted run.

Usage::

    .venv/bin/python benchmarks/necessary_answers.py --models percussion percussion-wave --stride 4 --threads 1
    .venv/bin/python benchmarks/necessary_answers.py --models speech silero-vad --stride 16 --out /tmp/answers
    .venv/bin/python benchmarks/necessary_answers.py --models percussion speech --stride 4 speech=16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (held-out loading, records, the results header)

from captum_freqrex import FreqReX  # noqa: E402
from captum_freqrex.metrics import perturbation_success_rate  # noqa: E402

KS = (1, 5)


def answer_record(model: Any, clip: torch.Tensor) -> Dict[str, Any]:
    r"""The default necessary-mode answer for one clip, as a JSON-serialisable record.

    Args:
        model (Any): The classifier (waveforms ``(N, T)`` to scores).
        clip (Tensor): ``(1, T)`` waveform.

    Returns:
        dict: ``target``, ``baseline_flips``, ``credited`` (features above 0), ``smallest`` (the
        smallest flipping set's size, None for none), ``wide_flip``, ``flipped`` (at k = 1 and 5),
        ``queries``, ``stopped_by`` and ``seconds``.
    """
    with torch.no_grad():
        target = int(model(clip).argmax(dim=1))
        baseline_flips = int(model(torch.zeros_like(clip)).argmax(dim=1)) != target
    explainer = FreqReX(model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        responsibility = explainer.attribute(clip, target=target, mode="necessary", seed=0)
    seconds = time.perf_counter() - start
    top = float(responsibility.max())
    search = explainer.last_search[0]
    flips = perturbation_success_rate(model, clip, responsibility, target=target, k=list(KS))
    return {
        "target": target, "baseline_flips": baseline_flips, "credited": int((responsibility > 0).sum()),
        # 1 / |R| for the smallest flipping set R; a single flip is 1 (or the lead's 2).
        "smallest": None if top <= 0 else max(1, round(1 / top)),
        "wide_flip": search.details.get("wide_flip"),
        "loud_run_flip": search.details.get("loud_run_flip"),
        "flipped": [bool(f) for f in flips.flipped[0].tolist()],
        "queries": explainer.last_stats.queries, "stopped_by": search.stopped_by, "seconds": round(seconds, 3),
    }


def summarize(model: str, records: List[Dict[str, Any]]) -> Dict[str, Any]:
    r"""One row of counts and medians over a model's records."""
    zeros = [r for r in records if r["credited"] == 0]
    # The limit: clips where a removal that changes the decision is known to exist (the baseline
    # alone, every frequency removed, or one the answer found).
    known = [r for r in records if r["baseline_flips"] or r["credited"] > 0]
    return {
        "model": model, "clips": len(records), "all_zero": len(zeros),
        "flip_known": len(known), "answered": sum(1 for r in known if r["credited"] > 0),
        "all_zero_baseline_flips": sum(1 for r in zeros if r["baseline_flips"]),
        "wide": sum(1 for r in records if r["wide_flip"] is not None),
        # Records from before the loud runs lack the key: none there.
        "loud_runs": sum(1 for r in records if r.get("loud_run_flip") is not None),
        "median_smallest": statistics.median(smallest) if (smallest := [r["smallest"] for r in records if r["smallest"]]) else None,
        **{f"flip@{k}": sum(1 for r in records if r["flipped"][i]) for i, k in enumerate(KS)},
        "median_queries": statistics.median(r["queries"] for r in records) if records else None,
        "median_seconds": statistics.median(r["seconds"] for r in records) if records else None,
    }


def _markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | clips | all-zero answers | of them, the baseline flips | answers where a flip is known to exist | "
             "wide-part answers | loud-run answers | smallest flipping set (bins, median) | flip@1 | flip@5 | "
             "median queries | median s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        smallest = "-" if r["median_smallest"] is None else f"{r['median_smallest']:,.0f}"
        lines.append(f"| {r['model']} | {r['clips']} | {r['all_zero']} | {r['all_zero_baseline_flips']} | "
                     f"{r['answered']}/{r['flip_known']} | {r['wide']} | {r['loud_runs']} | {smallest} | "
                     f"{r['flip@1']} | {r['flip@5']} | {r['median_queries']:,.0f} | {r['median_seconds']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["percussion", "percussion-wave"], help="zoo models (their held-out test splits)")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets (default: data/)")
    parser.add_argument("--stride", nargs="+", default=["4"], metavar="[MODEL=]K",
                        help="every K-th held-out clip (of MODEL; default 4)")
    parser.add_argument("--limit", type=int, help="the first N clips (after --stride)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--out", default=os.path.join(flip_rates.REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    strides = flip_rates._strides(args.stride)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    rows, sections = [], []
    for name in args.models:
        model, data = flip_rates.load_held_out(name, "test", args.data)
        chosen, selection = flip_rates._selection(len(data.labels), strides.get(name, strides.get("*", 4)), args.limit)
        path = os.path.join(args.out, f"necessary_answers_{name}.jsonl")
        done = {record["clip"]: record for record in flip_rates.read_records(path)}
        records = []
        for i in chosen:
            record = done.get(i)
            if record is None:
                record = {"clip": i, "source": data.sources[i], **answer_record(model, data.waveforms[i : i + 1])}
                flip_rates.append_record(path, record)
                print(f"{name} clip {i}: {record['credited']} credited, {record['queries']} queries",
                      file=sys.stderr, flush=True)
            records.append(record)
        rows.append(summarize(name, records))
        sections.append(f"{name}: {selection}")
    header = flip_rates.results_header(flip_rates.command_line("necessary_answers.py", argv))
    table = _markdown(rows)
    with open(os.path.join(args.out, "necessary_answers.md"), "w") as handle:
        handle.write(f"{header}\n\n" + "; ".join(sections) + f"\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
