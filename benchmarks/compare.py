"""Method comparison: FreqReX vs Captum's methods and naive rankings, over the same frequency features.

Runs :func:`captum_freqrex.compare.compare_methods` on an example model's shipped clips and writes
the table as Markdown and CSV (``compare.md``, ``compare.csv`` in ``--out``). Per method: flip rate
when the top 1 and 5 frequencies are removed (the paper reports 58% and 78% for 30 s clips at
16 kHz), the SNR of those removals, the minimal sufficient prefix, deletion/insertion AUC, model
queries and wall time split into model time and overhead. Not part of the test run
(``tests/test_compare.py`` runs ``compare_methods`` on a toy model).

Usage::

    .venv/bin/python benchmarks/compare.py --model instruments --clips 4 --out benchmarks/results
    .venv/bin/python benchmarks/compare.py --model instruments --device cuda --clips 8
    .venv/bin/python benchmarks/compare.py --model demo --clips 2 --seconds 3   # no zoo needed
    # the paper-scale case: held-out 30 s clips of the dataset built by scripts/build_datasets.py
    .venv/bin/python benchmarks/compare.py --model instruments --data data --clips 18
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, List, Optional, Tuple

import torch

from captum_freqrex.compare import METHODS, compare_methods, load_zoo_inputs


def _demo(n_clips: int, seconds: float) -> Tuple[Callable, torch.Tensor, int, List[str]]:
    from captum_freqrex._demo import SAMPLE_RATE, demo_clip, demo_model_and_clip

    model = demo_model_and_clip()[0]
    waves = torch.stack([demo_clip(seconds, seed=i) for i in range(n_clips)])
    return model, waves, SAMPLE_RATE, ["A4"] * n_clips


def _held_out(name: str, data: str, n_clips: int) -> Tuple[Callable, torch.Tensor, int, List[str]]:
    """The zoo model and ``n_clips`` held-out clips of its built dataset, spread evenly over the split
    (the split is ordered by class, so every class is represented)."""
    from captum_freqrex import zoo
    from captum_freqrex.datasets import load_split

    loaded = zoo.load(name)
    split = load_split(data, name, "test")
    if tuple(split.class_names) != tuple(loaded.class_names) or split.waveforms.shape[-1] != loaded.num_samples:
        raise ValueError(f"{data}/{name} does not match the zoo model's classes and clip length; rebuild it")
    picks = torch.linspace(0, split.waveforms.shape[0] - 1, min(n_clips, split.waveforms.shape[0])).round().long()
    labels = [split.class_names[int(split.labels[i])] for i in picks]
    return loaded.model, split.waveforms[picks], loaded.sample_rate, labels


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="instruments", help="zoo model name, or 'demo' (synthetic, no zoo)")
    parser.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    parser.add_argument("--data", help="folder of scripts/build_datasets.py: use held-out clips instead of shipped ones")
    parser.add_argument("--out", default="benchmarks/results", help="folder for compare.md and compare.csv")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5], help="top-k sizes for the flip rates")
    parser.add_argument("--max-queries", type=int, default=1000, help="FreqReX's budget per clip (default 1000)")
    parser.add_argument("--bands", type=int, default=256, help="log bands for the per-feature-cost methods")
    parser.add_argument("--max-perturbation-features", type=int, default=1024)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=None, help="mutants per model call (default: automatic)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length of --model demo")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.model == "demo":
        model, waves, rate, labels = _demo(args.clips, args.seconds)
    elif args.data:
        model, waves, rate, labels = _held_out(args.model, args.data, args.clips)
    else:
        try:
            model, waves, rate, labels = load_zoo_inputs(args.model, args.clips)
        except ImportError as error:
            print(f"captum_freqrex.zoo is not available ({error}); try --model demo", file=sys.stderr)
            return 2
    device = torch.device(args.device)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    waves = waves.to(device)
    print(
        f"{args.model}: {waves.shape[0]} clips of {waves.shape[-1]} samples at {rate} Hz "
        f"({waves.shape[-1] // 2 + 1} rfft bins), labels {labels}, torch {torch.__version__}, "
        f"device {device}, threads {torch.get_num_threads()}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    table = compare_methods(
        model, waves, args.methods, sample_rate=rate, ks=args.ks, max_queries=args.max_queries,
        n_bands=args.bands, max_perturbation_features=args.max_perturbation_features, ig_steps=args.ig_steps,
        max_examples_per_batch=args.batch, perturbations_per_eval=args.batch or 32, seed=args.seed,
        show_progress=True,
    )
    table.notes.append(
        f"Model {args.model!r} on {device}; labels of the clips: {labels}; whole run "
        f"{time.perf_counter() - start:.1f} s. Command: benchmarks/compare.py {' '.join(argv or sys.argv[1:])}"
    )
    table.save(args.out)
    print(table.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
