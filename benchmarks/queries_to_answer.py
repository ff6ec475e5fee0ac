"""Queries to the answer: what the default explanation spends per clip, beside the whole budget and IG.

Issue #23: the budget is a cap, not a quota. For every clip this script runs, in one process and on
the same clip:

* **default** - ``FreqReX(model).explain(x)`` with no options (``search="auto"``, the stopping rule
  of :mod:`captum_freqrex._core.search.partition`, ``shrink=True``);
* **whole budget** - the refinement run as before the rule (``prefer="size"``, every one of the
  ``n_samples`` searches within ``max_queries``, ``convergence_top_k=None``, no shrink, sets read
  off the ranking: ``max_joint_queries=0``): the old default, which spent the budget whatever the
  clip;
* **IG** - Captum's IntegratedGradients (50 steps) through :class:`FrequencyForward`, timed the
  same way (one :class:`~captum_freqrex._core.model.oracle.Oracle` around the model).

Columns: queries (the search's, then the whole explanation's: the sets' extraction, the searched
sufficient-and-necessary and complete sets, shrink and certification included), why the search stopped, the certified sufficient set (bins, loudest bin relative
to the clip's), wall time and its split into model time and overhead, and FreqReX / IG wall time.
Medians per clip kind close the table. Clips: the zoo's shipped ``percussion`` (1 s) and
``speech`` (3 s) clips, synthetic harmonic notes through the frame-normalising pitch model of
``benchmarks/harmonics.py`` (``--notes``), and with ``--instruments`` the zoo's 30 s clips.

Usage::

    .venv/bin/python benchmarks/queries_to_answer.py                    # percussion, speech, 6 notes
    .venv/bin/python benchmarks/queries_to_answer.py --instruments      # and the two 30 s clips
    .venv/bin/python benchmarks/queries_to_answer.py --models percussion --notes 0 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from captum.attr import IntegratedGradients

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (the results files' header)
from harmonics import FrameNormalisedPitch, synthetic_notes  # noqa: E402

from captum_freqrex import FreqReX, FrequencyForward, PartitionRefinement, zoo  # noqa: E402
from captum_freqrex._core.model.oracle import Oracle  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Clip = Tuple[str, str, Callable, torch.Tensor]  # kind, name, model, waveform (1, T)


def clips(models: List[str], n_notes: int, instruments: bool) -> List[Clip]:
    """The clips to run: shipped zoo clips per model, then harmonic notes."""
    out: List[Clip] = []
    for name in models + (["instruments"] if instruments else []):
        loaded = zoo.load(name)
        for clip in zoo.sample_clips(name):
            x = clip.waveform[: loaded.num_samples].unsqueeze(0)
            out.append((name, clip.name.split(" (")[0], loaded.model, x))
    if n_notes:
        pitch = FrameNormalisedPitch(16000).eval()
        for note in synthetic_notes(n_notes, 1.0, 16000, seed=0):
            out.append(("notes", note.name, pitch, note.waveform))
    return out


def freqrex_row(model: Callable, x: torch.Tensor, explainer: FreqReX, **options) -> Dict:
    """One explanation's queries, stop reason, sufficient set and cost."""
    start = time.perf_counter()
    expl = explainer.explain(x, **options)[0]
    wall = time.perf_counter() - start
    suff = expl.sufficient
    return {
        "queries": expl.stats.queries, "search": expl.responsibility_queries, "stopped": expl.stopped_by, "wall": wall,
        "model": explainer.last_stats.model_seconds,
        "bins": None if suff is None else suff.n_bins,
        "certified": bool(suff is not None and suff.certified),
        "level": None if suff is None else suff.level_db,
        "target": expl.target,
    }


def ig_seconds(model: Callable, x: torch.Tensor, target: int) -> float:
    """Wall time of IntegratedGradients (50 steps) over the rfft bins, model and overhead."""
    oracle = Oracle(model)
    with oracle.measure(), torch.enable_grad():
        wrapped = FrequencyForward(oracle, x)
        IntegratedGradients(wrapped).attribute(
            wrapped.ones(), baselines=wrapped.zeros(), target=target, n_steps=50, internal_batch_size=25
        )
    return oracle.stats.total_seconds


def _cell(row: Dict) -> str:
    level = "-" if row["level"] is None or row["level"] == float("-inf") else f"{row['level']:.1f} dB"
    bins = "-" if row["bins"] is None else f"{row['bins']:,}"
    sets = f"{bins}{'' if row['certified'] else ' (not certified)'}, {level}"
    return f"{row['search']:,} / {row['queries']:,} | {row['stopped']} | {sets}"


def _median(group: List[Dict], which: str, key: str) -> float:
    values = [r[which][key] for r in group if r[which][key] is not None]
    return statistics.median(values) if values else float("nan")


def table(rows: List[Dict]) -> str:
    """The markdown table: one line per clip, then medians per kind."""
    lines = [
        "| kind | clip | default: queries (search / all) | stopped | sufficient set | whole budget: queries | stopped | "
        "sufficient set | default wall (s) | model share | IG wall (s) | FreqReX / IG |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        d, w = r["default"], r["whole"]
        lines.append(
            f"| {r['kind']} | {r['clip']} | {_cell(d)} | {_cell(w)} | {d['wall']:.2f} | "
            f"{d['model'] / d['wall']:.0%} | {r['ig']:.2f} | {d['wall'] / r['ig']:.1f}x |"
        )
    lines += ["", "| kind | clips | median search queries (default) | median queries, all (default) | "
              "median queries (whole budget) | median set (default) | median set (whole budget) | "
              "median FreqReX / IG |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        group = [r for r in rows if r["kind"] == kind]

        ratio = statistics.median(r["default"]["wall"] / r["ig"] for r in group)
        lines.append(
            f"| {kind} | {len(group)} | {_median(group, 'default', 'search'):,.0f} | "
            f"{_median(group, 'default', 'queries'):,.0f} | "
            f"{_median(group, 'whole', 'queries'):,.0f} | {_median(group, 'default', 'bins'):,.0f} | "
            f"{_median(group, 'whole', 'bins'):,.0f} | {ratio:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["percussion", "speech"], help="zoo models (shipped clips)")
    parser.add_argument("--notes", type=int, default=6, help="synthetic harmonic notes (0: none)")
    parser.add_argument("--instruments", action="store_true", help="also the instruments model's 30 s clips")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the explanations' warnings are not what is measured here
    rows = []
    for kind, name, model, x in clips(args.models, args.notes, args.instruments):
        default = freqrex_row(model, x, FreqReX(model))
        whole = freqrex_row(
            model, x, FreqReX(model, search=PartitionRefinement(prefer="size")), convergence_top_k=None, shrink=False,
            max_joint_queries=0,
        )
        ig = ig_seconds(model, x, default["target"])
        rows.append({"kind": kind, "clip": name, "default": default, "whole": whole, "ig": ig})
        print(f"{kind} {name}: default {_cell(default)}; whole budget {_cell(whole)}; IG {ig:.2f} s", flush=True)
    text = f"{flip_rates.results_header(flip_rates.command_line('queries_to_answer.py', argv))}\n\n{table(rows)}\n"
    flip_rates.write_and_print(args.out, "queries_to_answer.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
