"""The default explanation on held-out clips: what it spends, which way it took, and its three sets.

``FreqReX(model).explain(clip, seed=s)`` with no other option, on every K-th clip of a zoo model's
held-out split (built into ``--data`` by ``scripts/build_datasets.py``) and for each seed given:
the queries of the whole explanation and of its search, the strategy the default took and why it
stopped, and the size and level (loudest bin relative to the clip's, dB) of the sufficient, the
sufficient-and-necessary and the complete set. The summary gives medians and counts: sets flagged
far below the clip's level (more than 20 dB), sets over half the features. Run it at two commits
to compare defaults on clips they were not tuned on; the records (one JSON line per clip and seed)
resume an interrupted run.

Usage::

    .venv/bin/python benchmarks/held_out_defaults.py --model instruments --stride 7 --seeds 0 1 --threads 1
    .venv/bin/python benchmarks/held_out_defaults.py --model percussion --stride 4 --out /tmp/defaults
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
from captum_freqrex._explanation.informative import MIN_LEVEL_DB  # noqa: E402

SETS = ("sufficient", "sufficient_necessary", "complete")


def explain_record(model: Any, clip: torch.Tensor, seed: int) -> Dict[str, Any]:
    r"""The default explanation of one clip, as a JSON-serialisable record.

    Args:
        model (Any): The classifier (waveforms ``(N, T)`` to scores).
        clip (Tensor): ``(1, T)`` waveform.
        seed (int): ``explain``'s seed.

    Returns:
        dict: ``queries``, ``search_queries``, ``strategy``, ``stopped_by``, ``seconds`` and per set
        ``size``, ``share`` of the features and ``level_db`` (None for a set not found).
    """
    explainer = FreqReX(model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = explainer.explain(clip, seed=seed)[0]
    seconds = time.perf_counter() - start
    search = explainer.last_search[0]
    n = expl.feature_responsibility.numel()
    sets = {}
    for name in SETS:
        found = getattr(expl, name)
        sets[name] = None if found is None else {
            "size": found.size, "share": found.size / n,
            "level_db": None if found.level_db == float("-inf") else round(found.level_db, 2),
        }
    return {"queries": expl.stats.queries, "search_queries": search.queries, "strategy": search.details.get("strategy"),
            "stopped_by": search.stopped_by, "seconds": round(seconds, 3), "sets": sets}


def summarize(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""One row per set: median size, share and level, and how many are flagged, over the records."""
    rows = []
    for name in SETS:
        found = [r["sets"][name] for r in records if r["sets"][name] is not None]
        levels = [s["level_db"] for s in found if s["level_db"] is not None]
        rows.append({
            "set": name, "found": len(found), "runs": len(records),
            "median_size": statistics.median(s["size"] for s in found) if found else None,
            "median_share": statistics.median(s["share"] for s in found) if found else None,
            "median_level_db": statistics.median(levels) if levels else None,
            "below_clip_level": sum(1 for s in found if s["level_db"] is not None and s["level_db"] < MIN_LEVEL_DB),
            "over_half": sum(1 for s in found if s["share"] > 0.5),
            "median_queries": statistics.median(r["queries"] for r in records) if records else None,
            "median_search_queries": statistics.median(r["search_queries"] for r in records) if records else None,
        })
    return rows


def _markdown(rows: List[Dict[str, Any]], records: List[Dict[str, Any]]) -> str:
    def cell(value: Any, form: str) -> str:
        return "-" if value is None else form.format(value)

    lines = ["| set | found | median size (bins) | median share | median level (dB) | below -20 dB | over half the features |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['found']}/{r['runs']} | {cell(r['median_size'], '{:,.0f}')} | "
                     f"{cell(None if r['median_share'] is None else 100 * r['median_share'], '{:.2f}%')} | "
                     f"{cell(r['median_level_db'], '{:.1f}')} | {r['below_clip_level']} | {r['over_half']} |")
    strategies: Dict[str, int] = {}
    for r in records:
        strategies[r["strategy"]] = strategies.get(r["strategy"], 0) + 1
    first = rows[0] if rows else {}
    lines += ["", f"Median queries: {cell(first.get('median_queries'), '{:,.0f}')} "
                  f"(search {cell(first.get('median_search_queries'), '{:,.0f}')}); strategies: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(strategies.items(), key=lambda kv: -kv[1]))]
    lines += ["", "| clip | seed | queries (search / all) | strategy | stopped | sufficient | sufficient-and-necessary | complete |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        sets = [("-" if r["sets"][k] is None else f"{r['sets'][k]['size']:,} ({cell(r['sets'][k]['level_db'], '{:.1f}')} dB)")
                for k in SETS]
        lines.append(f"| {r['clip']} | {r['seed']} | {r['search_queries']} / {r['queries']} | {r['strategy']} | "
                     f"{r['stopped_by']} | " + " | ".join(sets) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="instruments", help="zoo model (its held-out test split)")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets (default: data/)")
    parser.add_argument("--stride", type=int, default=7, help="every K-th held-out clip (default 7)")
    parser.add_argument("--limit", type=int, help="the first N clips (after --stride)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="explain's seeds (default 0)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--out", default=os.path.join(flip_rates.REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if args.stride < 1:
        parser.error(f"--stride must be a positive integer, got {args.stride}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, data = flip_rates.load_held_out(args.model, "test", args.data)
    chosen, selection = flip_rates._selection(len(data.labels), args.stride, args.limit)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"held_out_defaults_{args.model}")
    done = {(record["clip"], record["seed"]): record for record in flip_rates.read_records(stem + ".jsonl")}
    records = []
    for i in chosen:
        for seed in args.seeds:
            record = done.get((i, seed))
            if record is None:
                record = {"clip": i, "seed": seed, "source": data.sources[i], **explain_record(model, data.waveforms[i : i + 1], seed)}
                flip_rates.append_record(stem + ".jsonl", record)
                print(f"{args.model} clip {i} seed {seed}: {record['queries']} queries, {record['strategy']}",
                      file=sys.stderr, flush=True)
            records.append(record)
    header = flip_rates.results_header(flip_rates.command_line("held_out_defaults.py", argv))
    table = _markdown(summarize(records), records)
    with open(stem + ".md", "w") as handle:
        handle.write(f"{header}\n\n{args.model}, {selection}, seeds {args.seeds}\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
