"""Every search option on every kind of case: is the default at least as good as each option?

Issue #22: one default that chooses per example and is at least as good as every option on each
kind of case. For each option (the rows) this script explains, with ``explain``'s other defaults
(so ``shrink=True``), every case kind (the columns):

* **tone** - ``ToneDetector([440])`` of ``tests/known_models.py`` on 1 s of 440 Hz + 1 kHz + 2.5 kHz
  + noise at 8 kHz: the set must be the one 440 Hz bin;
* **zoo** - the zoo's shipped ``percussion`` (1 s) and ``speech`` (3 s) clips: median sufficient set,
  median loudest set bin re the clip's loudest bin, sets flagged as not informative, median queries;
* **notes** - the 24 rendered soundfont notes of ``tests/data/notes`` through the frame-normalising
  pitch model (``FrameNormalisedPitch`` of ``tests/known_models.py``): share of notes whose set's
  loudest bin is within 1% of a harmonic ``n * f0`` and within 6 dB of the clip's loudest bin;
* **strings** (``--strings``, slow: 30 s per explanation) - the zoo's 30 s strings clip through the
  instruments CNN, causes scattered across the spectrum: set size, certified, insertion AUC.

The "old default" row is the refinement as it was before ``search="auto"``: ``prefer="size"``, no
stopping rule (every search the budget allows), no shrink, and the sufficient-and-necessary and
complete sets read off the ranking (``max_joint_queries=0``).

Usage::

    .venv/bin/python benchmarks/option_table.py                 # tone, zoo, notes (a few minutes)
    .venv/bin/python benchmarks/option_table.py --strings       # and the 30 s strings clip
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import flip_rates  # noqa: E402  (the results files' header)
from harmonics import Clip, note_set  # noqa: E402
from known_models import FrameNormalisedPitch, ToneDetector, bin_of, rendered_notes, tone  # noqa: E402

from captum_freqrex import FreqReX, PartitionRefinement, zoo  # noqa: E402
from captum_freqrex.metrics import insertion_curve  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Row label -> (FreqReX search, explain options).
OPTIONS: Dict[str, Tuple[Callable[[], object], Dict]] = {
    "default (`search=None`, i.e. `\"auto\"`)": (lambda: None, {}),
    "old default (`prefer=\"size\"`, every search, no shrink, prefix sets)": (
        lambda: PartitionRefinement(prefer="size"), {"convergence_top_k": None, "shrink": False, "max_joint_queries": 0}),
    "`\"refinement\"`": (lambda: "refinement", {}),
    "`\"energy\"`": (lambda: "energy", {}),
    "`\"interleaved\"`": (lambda: "interleaved", {}),
    "`\"adaptive\"`": (lambda: "adaptive", {}),
}


def _explain(model: Callable, x: torch.Tensor, option: str):
    search, options = OPTIONS[option]
    return FreqReX(model, search=search()).explain(x, **options)[0]


def tone_case(option: str) -> str:
    g = torch.Generator().manual_seed(0)
    x = (tone(440) + 0.5 * tone(1000) + 0.3 * tone(2500) + 0.05 * torch.randn(8000, generator=g)).unsqueeze(0)
    expl = _explain(ToneDetector([440], threshold=0.5), x, option)
    suff = expl.sufficient
    exact = suff is not None and suff.size == 1 and bool(suff.mask[bin_of(440, 8000)]) and suff.certified
    return f"{suff.size} bin{'s' if suff.size != 1 else ''}{'' if exact else ' (not the 440 Hz bin)'}, {expl.stats.queries} q"


def zoo_case(option: str) -> str:
    sizes, levels, queries, flagged = [], [], [], 0
    for name in ("percussion", "speech"):
        loaded = zoo.load(name)
        for clip in zoo.sample_clips(name):
            expl = _explain(loaded.model, clip.waveform[: loaded.num_samples].unsqueeze(0), option)
            suff = expl.sufficient
            queries.append(expl.stats.queries)
            if suff is not None and suff.size > 0:
                sizes.append(suff.size)
                levels.append(suff.level_db)
                flagged += bool(suff.flags)
    size = statistics.median(sizes)
    return (f"{size:g} bin{'' if size == 1 else 's'}, {statistics.median(levels):.1f} dB, {flagged} flagged, "
            f"{statistics.median(queries):,.0f} q")


def notes_case(option: str) -> str:
    model = FrameNormalisedPitch.for_midi(16000).eval()
    results = []
    for note in rendered_notes():
        clip = Clip(note.name, note.waveform, note.sample_rate, note.f0_hz)
        results.append(note_set(_explain(model, note.waveform, option), clip))
    share = sum(r.meets_both for r in results) / len(results)
    level = statistics.median(r.loudest_db for r in results if not math.isnan(r.loudest_db))
    return f"{share:.0%} ({level:.1f} dB), {statistics.median(r.queries for r in results):,.0f} q"


def strings_case(option: str) -> str:
    loaded = zoo.load("instruments")
    x = zoo.load_clip("instruments", 1).waveform[: loaded.num_samples].unsqueeze(0)
    expl = _explain(loaded.model, x, option)
    suff = expl.sufficient
    auc = float(insertion_curve(loaded.model, x, expl.responsibility.unsqueeze(0), target=expl.target, n_steps=32).auc)
    certified = "certified" if suff.certified else "not certified"
    return f"{suff.size:,} bins ({certified}, {suff.level_db:.1f} dB), AUC {auc:.2f}, {expl.stats.queries:,} q"


CASES = {"tone detector": tone_case, "zoo percussion + speech (10 clips)": zoo_case,
         "soundfont notes, normalising pitch model (24)": notes_case, "strings clip (30 s, scattered)": strings_case}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strings", action="store_true", help="also the 30 s strings clip (slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the explanations' warnings are not what is measured here
    cases = {k: v for k, v in CASES.items() if args.strings or not k.startswith("strings")}
    lines = ["| option | " + " | ".join(cases) + " |", "| --- |" + " --- |" * len(cases)]
    start = time.perf_counter()
    for option in OPTIONS:
        cells = []
        for case in cases.values():
            cells.append(case(option))
            print(f"{option}: {cells[-1]}", flush=True)
        lines.append(f"| {option} | " + " | ".join(cells) + " |")
    header = flip_rates.results_header(flip_rates.command_line("option_table.py", argv))
    text = f"{header}, {time.perf_counter() - start:.0f} s\n\n" + "\n".join(lines) + "\n"
    flip_rates.write_and_print(args.out, "option_table.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
