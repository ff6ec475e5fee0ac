"""Flip rates at equal queries: FreqReX's searches vs Captum's FeatureAblation, on the zoo's clips.

For every zoo model and its shipped clips, FeatureAblation attributes over log bands (256
requested, as in ``compare_methods``; one query per band plus one) and every FreqReX variant gets
the same number of model queries per clip (its two anchor queries included). Each ranking is then
scored by :func:`captum_freqrex.metrics.perturbation_success_rate` over single rfft bins: the
share of clips whose decision changes when the top-k bins are removed, and the median SNR of that
removal (dB; higher is quieter). Ties rank the louder bin first for every method (FeatureAblation's
top bins are the loudest bins of its best band).

Usage::

    .venv/bin/python benchmarks/flip_rates.py                              # all zoo models, 2 clips each
    .venv/bin/python benchmarks/flip_rates.py --models percussion --clips 5
    .venv/bin/python benchmarks/flip_rates.py --models speech instruments --clips 1 --methods FeatureAblation band_screening

Writes ``flip_rates.md`` and ``flip_rates.csv`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from captum.attr import FeatureAblation

from captum_freqrex import FeatureSpace, FreqReX, FrequencyForward, log_bands
from captum_freqrex.compare import load_zoo_inputs
from captum_freqrex.metrics import perturbation_success_rate

#: Method name -> FreqReX constructor and attribute options (FeatureAblation is run separately).
VARIANTS: Dict[str, Tuple[Any, Dict[str, Any]]] = {
    "refinement (sufficient)": (None, {}),
    "refinement (necessary)": (None, {"mode": "necessary"}),
    "adaptive (necessary)": ("adaptive", {"mode": "necessary"}),
    "band_screening (necessary)": ("band_screening", {"mode": "necessary"}),
}
METHODS = ["FeatureAblation"] + list(VARIANTS)
SHORT = {"refinement": "refinement (sufficient)", "necessary": "refinement (necessary)",
         "adaptive": "adaptive (necessary)", "band_screening": "band_screening (necessary)"}


class _Counted:
    """Counts the rows a model sees."""

    def __init__(self, model: Callable) -> None:
        self.model, self.rows = model, 0

    def __call__(self, *args: Any) -> Any:
        self.rows += args[0].shape[0]
        return self.model(*args)


def _feature_ablation(model: Callable, clip: torch.Tensor, target: int, bands: torch.Tensor) -> Tuple[torch.Tensor, int]:
    counted = _Counted(model)
    ids = FeatureSpace((clip,), (torch.zeros_like(clip),), bands).ids()[0].unsqueeze(0)
    wrapped = FrequencyForward(counted, clip)
    attr = FeatureAblation(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=target, feature_mask=ids, perturbations_per_eval=32
    )
    return attr.detach(), counted.rows


def _freqrex(model: Callable, clip: torch.Tensor, target: int, name: str, budget: int, seed: int) -> Tuple[torch.Tensor, int]:
    search, options = VARIANTS[name]
    counted = _Counted(model)
    # Two anchor queries (the input and the baseline alone) come on top of max_queries.
    attr = FreqReX(counted, search=search).attribute(clip, target=target, max_queries=budget - 2, seed=seed, **options)
    return attr.detach(), counted.rows


def run(models: List[str], n_clips: int, methods: List[str], ks: List[int], seed: int, n_bands: int) -> List[Dict[str, Any]]:
    rows = []
    for name in models:
        model, clips, rate, labels = load_zoo_inputs(name, n_clips)
        with torch.no_grad():
            targets = model(clips).argmax(1)
        bands = log_bands(clips.shape[-1], rate, n_bands)
        budgets: List[int] = []
        results: Dict[str, Dict[str, Any]] = {}
        for method in methods:
            start = time.perf_counter()
            attrs, queries = [], []
            for i in range(clips.shape[0]):
                clip, target = clips[i : i + 1], int(targets[i])
                if method == "FeatureAblation":
                    attr, used = _feature_ablation(model, clip, target, bands)
                else:
                    budget = budgets[i] if budgets else 248
                    attr, used = _freqrex(model, clip, target, method, budget, seed)
                attrs.append(attr)
                queries.append(used)
            if method == "FeatureAblation":
                budgets = queries
            flips = perturbation_success_rate(model, clips, torch.cat(attrs), target=targets, k=ks)
            row: Dict[str, Any] = {
                "model": name, "clips": clips.shape[0], "method": method,
                "queries": statistics.fmean(queries), "seconds": (time.perf_counter() - start) / clips.shape[0],
            }
            for j, k in enumerate(ks):
                row[f"flip@{k}"] = f"{int(flips.flipped[:, j].sum())}/{clips.shape[0]}"
                row[f"snr_db@{k}"] = round(float(flips.snr_db[:, j].median()), 1)
            results[method] = row
            print(" | ".join(str(v) for v in row.values()), file=sys.stderr, flush=True)
        rows += [results[m] for m in methods]
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["percussion", "speech", "instruments"])
    parser.add_argument("--clips", type=int, default=2, help="shipped clips per model (default 2)")
    parser.add_argument("--methods", nargs="+", default=METHODS, help=f"any of {METHODS} or {list(SHORT)}")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--bands", type=int, default=256, help="log bands requested for FeatureAblation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    methods = [SHORT.get(m, m) for m in args.methods]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {METHODS} or {list(SHORT)}")
    if "FeatureAblation" in methods:  # its queries set everyone's budget
        methods = ["FeatureAblation"] + [m for m in methods if m != "FeatureAblation"]
    torch.manual_seed(args.seed)
    rows = run(args.models, args.clips, methods, args.ks, args.seed, args.bands)
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "flip_rates.md"), "w") as handle:
        handle.write(f"`benchmarks/flip_rates.py {' '.join(argv if argv is not None else sys.argv[1:])}`, "
                     f"torch {torch.__version__}, {torch.get_num_threads()} threads\n\n{table}\n")
    with open(os.path.join(args.out, "flip_rates.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
