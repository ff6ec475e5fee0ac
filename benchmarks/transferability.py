"""Transferability: the sufficient signal FreqReX finds on one percussion model, fed to the other.

The zoo has two differently built models of one task: ``percussion`` (log-mel spectrogram, 2-D
CNN) and ``percussion-wave`` (a learned filterbank on the raw waveform, 1-D CNN, no Fourier
transform). Every clip of the held-out percussion split is explained by FreqReX on each model (same
seed, default search, ``--max-queries`` per clip); the certified sets (the sufficient set, and the
complete set, which also reaches the clip's confidence) are rebuilt as waveforms and fed to both
models by :func:`captum_freqrex.metrics.transferability`. Clips whose silent baseline alone
already gives the decision are left out (their empty set is sufficient and says nothing about the
clip). A model fed its own certified sets must accept all of them (the sanity diagonal); the
off-diagonal says how often one model's signal makes the other decide the same class, beside how
often the other decides that class on the full clip anyway.

Usage::

    .venv/bin/python benchmarks/transferability.py                       # 131 clips, a few minutes on 1 thread
    .venv/bin/python benchmarks/transferability.py --clips 10 --max-queries 200 --out /tmp/t   # a quick look

Needs the built data set (``scripts/build_datasets.py percussion``). Writes
``transferability.md`` and ``transferability.csv`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

import torch

from captum_freqrex import FreqReX, zoo
from captum_freqrex._explanation import SET_NAMES
from captum_freqrex._utils.csv_cells import write_rows
from captum_freqrex.datasets import load_split
from captum_freqrex.metrics import TransferResult, transferability

MODELS = ["percussion", "percussion-wave"]


def _cell(hits: int, n: int) -> str:
    return f"{hits / n:.2f} ({hits}/{n})" if n else "-"


def run(data: str, n_clips: Optional[int], max_queries: int, seed: int, sets: List[str]) -> Dict[str, Dict[str, Any]]:
    """Explain the split on each model and feed every model's certified signals to both.

    Returns, per source model and set name, the transfer result and counts.
    """
    loaded = {name: zoo.load(name) for name in MODELS}
    first = loaded[MODELS[0]]
    for other in loaded.values():
        if other.class_names != first.class_names or other.info["task"] != first.info["task"]:
            raise SystemExit(f"{other.name} is not a model of {first.name}'s task and classes")
    test = load_split(data, "percussion", "test")
    if tuple(test.class_names) != first.class_names:
        raise SystemExit(f"data/percussion classes {test.class_names} differ from the models' {first.class_names}")
    waves = test.waveforms[:n_clips] if n_clips else test.waveforms
    targets = {name: m.model for name, m in loaded.items()}
    out: Dict[str, Dict[str, Any]] = {}
    for name, m in loaded.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # counted below instead (baseline decides, uncertified sets)
            explanations = FreqReX(m.model).explain(waves, seed=seed, max_queries=max_queries)
        seconds = time.perf_counter() - start
        informative = [e for e in explanations if not e.baseline_decides]
        for which in sets:
            kept = [e for e in informative if e.sets[which] is not None and e.sets[which].certified]
            result = transferability(kept, None, targets, class_names=first.class_names, which=which)
            sizes = sorted(e.sets[which].size for e in kept)
            out[f"{name}/{which}"] = {
                "source": name, "set": which, "result": result, "clips": len(explanations),
                "baseline_decides": len(explanations) - len(informative), "certified": len(kept),
                "seconds": seconds, "median_bins": sizes[len(sizes) // 2] if sizes else None,
                "queries": sum(e.stats.queries for e in explanations) / len(explanations),
            }
            print(f"{name} {which}: {len(kept)}/{len(explanations)} certified, {seconds:.0f} s, "
                  f"accepted by {dict(zip(result.model_names, result.overall.tolist()))}", file=sys.stderr, flush=True)
    return out


def summary_table(runs: Dict[str, Dict[str, Any]]) -> str:
    """Source rows, target columns: acceptance of the signals and agreement on the full clips."""
    names = MODELS
    lines = ["| source model, set (clips) | " + " | ".join(f"accepted by {t}" for t in names)
             + " | " + " | ".join(f"{t} decides the same on the full clip" for t in names) + " |",
             "|" + " --- |" * (1 + 2 * len(names))]
    for info in runs.values():
        result: TransferResult = info["result"]
        n = result.accepted.shape[1]
        accepted = [_cell(int(result.accepted[m].sum()), n) for m in range(len(names))]
        agrees = [_cell(int(result.agrees[m].sum()), n) for m in range(len(names))] if result.agrees is not None else ["-"] * len(names)
        lines.append(f"| {info['source']}, {info['set']} ({n}) | " + " | ".join(accepted + agrees) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="built data sets (default: data/)")
    parser.add_argument("--clips", type=int, default=None, help="first N held-out clips (default: all 131)")
    parser.add_argument("--max-queries", type=int, default=500, help="FreqReX responsibility queries per clip (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=["sufficient", "complete"], choices=list(SET_NAMES),
                        help="which certified sets to feed (default: sufficient complete)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.clips is not None and args.clips < 1:
        parser.error("--clips must be >= 1")
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs = run(args.data, args.clips, args.max_queries, args.seed, args.sets)
    command = "benchmarks/transferability.py " + " ".join(argv if argv is not None else sys.argv[1:])
    parts = [
        f"`{command.strip()}`: torch {torch.__version__}, {torch.get_num_threads()} thread, FreqReX seed {args.seed}, "
        f"max_queries={args.max_queries} per clip, {time.perf_counter() - start:.0f} s in all.",
        "",
        "Acceptance of each model's certified signals (all classes; clips whose baseline alone gives the "
        "decision and uncertified sets left out):",
        "",
        summary_table(runs),
    ]
    for info in runs.values():
        parts += ["", f"## `{info['source']}`'s {info['set']} signals, per class of its decision",
                  "", f"{info['certified']} of {info['clips']} clips ({info['baseline_decides']} decided by the baseline "
                  f"alone, left out); median {info['set']} set {info['median_bins']} rfft bins; "
                  f"{info['queries']:.0f} queries per clip; explaining took {info['seconds']:.0f} s.",
                  "", info["result"].to_markdown()]
    text = "\n".join(parts) + "\n"
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "transferability.md"), "w") as handle:
        handle.write(text)
    rows = [{"source": info["source"], "set": info["set"], **row} for info in runs.values() for row in info["result"].rows()]
    with open(os.path.join(args.out, "transferability.csv"), "w", newline="") as handle:
        write_rows(handle, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
