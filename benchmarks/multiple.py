"""Multiple explanations: how many disjoint certified sufficient sets, where, and at what cost.

Runs ``FreqReX.explain(..., n_explanations=k)`` (issue #22, item 4) and prints one row per clip:
the size of each pairwise-disjoint sufficient set (features), its loudest bin relative to the
clip's (dB), on harmonic notes the harmonics ``h`` each set holds (a bin within 1% of ``h * f0``),
the queries of the first explanation and of each further set, the time, and why the search stopped.

Data: synthetic harmonic notes through the frame-normalising pitch classifier of
``benchmarks/harmonics.py`` (a note is recognised from any few of its harmonics, so several
disjoint sets are expected), and, with ``--zoo``, the shipped clips of the zoo's 1 s and 3 s
models (``percussion``, ``speech``).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multiple.py                  # 6 notes of 1 s, k = 3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multiple.py --k 4 --shrink --zoo
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor

from captum_freqrex import FreqReX


def _harmonics_module():
    spec = importlib.util.spec_from_file_location("harmonics", Path(__file__).with_name("harmonics.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["harmonics"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _harmonics_of(mask: Tensor, length: int, sample_rate: int, f0: float) -> List[int]:
    """The harmonic numbers ``h`` that some bin of the set sits within 1% of."""
    hz = torch.fft.rfftfreq(length, 1 / sample_rate)[mask.cpu()]
    h = (hz / f0).round().clamp(min=1)
    near = ((hz - h * f0).abs() <= 0.01 * h * f0) & (hz > 0)
    return sorted({int(v) for v in h[near].tolist()})


def explain_row(model: Callable, name: str, wave: Tensor, rate: int, f0: Optional[float], args: argparse.Namespace) -> str:
    start = time.perf_counter()
    expl = FreqReX(model, search=args.search).explain(
        wave, n_explanations=args.k, shrink=args.shrink, seed=args.seed,
    )[0]
    seconds = time.perf_counter() - start
    cells = []
    for chosen in expl.sufficient_sets:
        text = f"{chosen.size} ({chosen.level_db:+.0f} dB)"
        if f0 is not None:
            text += " h" + ",".join(map(str, _harmonics_of(chosen.mask, wave.shape[-1], rate, f0)))
        cells.append(text)
    report = expl.alternatives_report
    further = report.queries if report else []
    stopped = (report.stopped if report else "") or "-"
    first = expl.stats.queries - sum(further) - (report.stop_queries if report else 0)
    return (
        f"| {name} | {len(cells)} | {' / '.join(cells)} | {first} | {', '.join(map(str, further)) or '-'}"
        f" (+{report.stop_queries if report else 0}) | {seconds:.1f} | {stopped[:90]} |"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=3, help="n_explanations (default 3)")
    parser.add_argument("--notes", type=int, default=6, help="synthetic notes (default 6)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per note (default 1)")
    parser.add_argument("--search", default=None, help="FreqReX(search=...) (default: the default search)")
    parser.add_argument("--shrink", action="store_true", help="explain(shrink=True)")
    parser.add_argument("--zoo", action="store_true", help="also the percussion and speech zoo clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"n_explanations={args.k}, search={args.search or 'default'}, shrink={args.shrink}\n")
    print("| clip | sets | features (loudest bin) [harmonics] per set | queries, first | queries per further set "
          "(+ last attempt) | s | why not more |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    harmonics = _harmonics_module()
    rate = 16000
    pitch = harmonics.FrameNormalisedPitch(rate).eval()
    for clip in harmonics.synthetic_notes(args.notes, args.seconds, rate, args.seed):
        print(explain_row(pitch, clip.name, clip.waveform, rate, clip.f0, args), flush=True)
    if args.zoo:
        from captum_freqrex import zoo

        for name in ("percussion", "speech"):
            loaded = zoo.load(name)
            for i, clip in enumerate(zoo.sample_clips(name)):
                wave = zoo.load_clip(name, i).waveform.unsqueeze(0)
                print(explain_row(loaded.model, f"{name} {clip.label}", wave, loaded.sample_rate, None, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
