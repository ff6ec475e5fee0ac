"""Searched vs prefix sufficient-and-necessary and complete sets, on the zoo's held-out clips.

For every selected clip of each zoo model's held-out split (built by ``scripts/build_datasets.py``
into ``--data``, read as ``flip_rates.py --split test`` does), ``FreqReX(model).explain(clip)`` runs
with its defaults: the sufficient-and-necessary and complete sets are *searched*
(``captum_freqrex/_core/certify/joint.py``, within ``max_joint_queries``). The same clip is then
explained again from the same responsibility (``attributions=``, no new search) with
``max_joint_queries=0``: the sets as the ranking's prefixes, i.e. what the default returned before
the joint search. Both are certified by re-query.

Per model the table gives, over the clips where each kind of set is found at all: how many, the
median size as a share of the features, how many are at most 5% of the features, how many of the
default's sets were searched (the rest fell back to the prefix; the sufficient set is never
searched here, it is the context: every sufficient-and-necessary set is a sufficient set) and how many are certified, and the extra queries of the default over
the prefix extraction (its extraction queries minus the prefix run's: the joint search and the
certification of its sets, less the prefix searches it spares; it may be negative).

The physical limit of the 5% target: every contiguous band of 5% of the rfft bins (every half
width) is removed from each clip (:func:`band_limit`); the table counts the clips where any such
removal changes the decision ("5% band flips") and where such a band with the sufficient set (the
search's own, ``quiet_sufficient``, where a quiet one gave way to a louder one) also keeps it alone ("5% band S&N", a sufficient-and-necessary set of about 5% exists), and where such a band
with the sufficient set and the ranking's top (at most 1% of the bins more) does ("5% band + S + top
1% S&N": a band kept alone can name another class that the ranking's best features undo). Where
no band flips, a small sufficient-and-necessary set would have to be scattered over the spectrum.

Usage::

    nice -n 10 .venv/bin/python benchmarks/sn_sets.py --data /work/main/data --threads 1 \\
        --models percussion speech --stride speech=8
    .venv/bin/python benchmarks/sn_sets.py --summarize --models percussion speech

One record per clip is appended to ``sn_sets_<split>_<model>.jsonl`` in ``--out`` (default
``benchmarks/results``) as it finishes, so an interrupted run resumes; clips run coarse to fine
(see ``flip_rates.py``). ``sn_sets_<split>.md`` / ``.csv`` are rewritten after each model.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (the held-out clips, the coarse-to-fine order and the records)

from captum_freqrex import FreqReX  # noqa: E402
from captum_freqrex._utils.csv_cells import write_rows  # noqa: E402

KINDS = ("sufficient", "sufficient_necessary", "complete")

#: Width of the contiguous bands of the physical-limit check (:func:`band_limit`): the 5% target.
SHARE = 0.05

#: Most of the ranking's top added to a flipping band with the sufficient set (:func:`band_limit`'s
#: ``grown``): the set stays about the 5% target.
GROWN_SHARE = 0.01


def _set_record(causal_set: Any, n_features: int) -> Optional[Dict[str, Any]]:
    if causal_set is None:
        return None
    report = causal_set.certificate.shrink
    return {"size": causal_set.size, "share": causal_set.size / n_features, "certified": causal_set.certified,
            "searched": report is not None and report.start.startswith("joint"),
            "from_prefix": report is not None and report.start == "joint-prefix"}


def clip_record(model: Callable, clip: torch.Tensor, seed: int, joint: Optional[int] = None) -> Dict[str, Any]:
    r"""The default's sets (``max_joint_queries=joint`` where given) and the prefix sets of one clip
    (``(1, T)``), with their queries and time."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = FreqReX(model).explain(clip, seed=seed, **({} if joint is None else {"max_joint_queries": joint}))[0]
        seconds = time.perf_counter() - start
        prefix = FreqReX(model).explain(clip, seed=seed, attributions=default.responsibility.unsqueeze(0),
                                        max_joint_queries=0)[0]
    n = default.responsibility.numel()
    # The smallest sufficient set known: the search's own where a quiet one gave way to the
    # sufficient-and-necessary set (Explanation.quiet_sufficient), so band + set stays about 5%.
    smallest = default.quiet_sufficient if default.quiet_sufficient is not None else default.sufficient
    sufficient = None if smallest is None else smallest.mask.reshape(-1).bool()
    ranking = default.responsibility.reshape(-1).argsort(descending=True, stable=True)
    return {
        "bands": band_limit(model, clip, default.target, sufficient, ranking),
        "n_features": n, "target": default.target, "queries": default.stats.queries, "seconds": round(seconds, 3),
        "joint_queries": default.extraction_queries - prefix.extraction_queries,
        "default": {k: _set_record(getattr(default, k), n) for k in KINDS},
        "prefix": {k: _set_record(getattr(prefix, k), n) for k in KINDS},
    }


def band_limit(model: Callable, clip: torch.Tensor, target: int, sufficient: Optional[torch.Tensor],
               ranking: Optional[torch.Tensor] = None, share: float = SHARE) -> Dict[str, int]:
    r"""How many contiguous bands of ``share`` of the rfft bins (every half width; the zero baseline
    and the argmax decision of `explain`'s defaults)
    change the model's decision when removed, and of those how many, with the sufficient set,
    also keep it alone: a sufficient-and-necessary set of at most about ``share`` of the features
    (one rfft bin each: a single-channel clip) exists on the clip when ``both > 0``; when ``flips``
    is 0 no contiguous band of that width flips it (the 5% target's reach on the clip).

    ``grown``: of the flipping bands, how many with the sufficient set and the top of ``ranking``
    (a geometric grid of counts up to :data:`GROWN_SHARE` of the bins) hold both claims, the
    removal still flipping the decision: a set of about ``share`` plus that much exists then, where
    a band kept alone with the sufficient set names another class (the joint search's grown band)."""
    spectrum = torch.fft.rfft(clip[0].double())
    n = spectrum.shape[-1]
    width = max(1, int(share * n))
    starts = list(range(0, n - width + 1, max(1, width // 2)))
    keeps = torch.ones(len(starts), n, dtype=torch.bool)
    for row, lo in enumerate(starts):
        keeps[row, lo : lo + width] = False

    def decided(masks: torch.Tensor) -> torch.Tensor:
        waves = torch.fft.irfft(spectrum * masks.double(), n=clip.shape[-1]).to(clip.dtype)
        with torch.no_grad():
            return torch.cat([model(waves[i : i + 32]).argmax(1) for i in range(0, len(waves), 32)])

    flips = decided(keeps) != target
    both, grown = 0, 0
    if bool(flips.any()) and sufficient is not None:
        alone = ~keeps[flips] | sufficient.view(1, -1)
        both = int((decided(alone) == target).sum())
        if ranking is not None:
            grown = _grown_bands(decided, alone, ranking, target)
    return {"width": width, "bands": len(starts), "flips": int(flips.sum()), "both": both, "grown": grown}


def _grown_bands(decided: Callable, sets: torch.Tensor, ranking: torch.Tensor, target: int) -> int:
    # How many of ``sets`` (flipping bands with S) hold both claims with the top of the ranking
    # added, at one of the counts of a geometric grid up to GROWN_SHARE of the bins.
    n = sets.shape[1]
    counts = sorted({round(c) for c in torch.logspace(0, math.log10(max(GROWN_SHARE * n, 1)), 8).tolist()})
    holding = 0
    for members in sets:
        grown = members.repeat(len(counts), 1)
        for row, k in enumerate(counts):
            grown[row, ranking[:k]] = True
        holds = (decided(grown) == target) & (decided(~grown) != target)
        holding += int(bool(holds.any()))
    return holding


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _band_count(records: List[Dict[str, Any]], key: str) -> str:
    with_bands = [r for r in records if key in r.get("bands", {})]  # records from before a check lack it
    return f"{sum(r['bands'][key] > 0 for r in with_bands)}/{len(with_bands)}" if with_bands else "-"


def summarize(model: str, selection: str, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""One table row per set kind: clips with the set, median share, how many within 5% of the
    features, searched (vs the prefix kept), certified; for the default and the prefix sets."""
    rows = []
    for kind in KINDS:
        found = [r["default"][kind] for r in records if r["default"][kind] is not None]
        before = [r["prefix"][kind] for r in records if r["prefix"][kind] is not None]
        rows.append({
            "model": model, "clips": selection, "set": kind.replace("_", "-and-"),
            "found (default)": f"{len(found)}/{len(records)}", "median share (default)": _pct(_median([s["share"] for s in found])),
            "<= 5% (default)": f"{sum(s['share'] <= 0.05 for s in found)}/{len(found)}",
            "searched": f"{sum(s['searched'] for s in found)}/{len(found)}",
            "certified": f"{sum(s['certified'] for s in found)}/{len(found)}",
            "found (prefix)": f"{len(before)}/{len(records)}", "median share (prefix)": _pct(_median([s["share"] for s in before])),
            "<= 5% (prefix)": f"{sum(s['share'] <= 0.05 for s in before)}/{len(before)}",
            "5% band flips (clips)": _band_count(records, "flips") if kind == "sufficient_necessary" else "-",
            "5% band S&N (clips)": _band_count(records, "both") if kind == "sufficient_necessary" else "-",
            "5% band + S + top 1% S&N (clips)": _band_count(records, "grown") if kind == "sufficient_necessary" else "-",
            "extra queries / clip (median)": _median([r["joint_queries"] for r in records]),
            "queries / clip (median)": _median([r["queries"] for r in records]),
            "s / clip (median)": round(statistics.median([r["seconds"] for r in records]), 1) if records else None,
        })
    return rows


def run_model(name: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    r"""Every selected clip of one model (resuming from its records), then its table rows."""
    model, data = flip_rates.load_held_out(name, args.split, args.data)
    stride = dict(s.split("=") for s in args.stride if "=" in s).get(name, next((s for s in args.stride if "=" not in s), "1"))
    chosen, selection = flip_rates._selection(data.waveforms.shape[0], int(stride), args.limit)
    budget = "" if args.max_joint_queries is None else f"_joint{args.max_joint_queries}"
    path = os.path.join(args.out, f"sn_sets_{args.split}_{name}{budget}.jsonl")
    done = {record["clip"]: record for record in flip_rates.read_records(path)}
    start = time.perf_counter()
    for count, position in enumerate(flip_rates._coarse_to_fine(len(chosen))):
        i = chosen[position]
        if i not in done and not args.summarize:
            record = {"clip": i, "source": data.sources[i], "label": int(data.labels[i]),
                      **clip_record(model, data.waveforms[i : i + 1], args.seed, args.max_joint_queries)}
            flip_rates.append_record(path, record)
            done[i] = record
            print(f"{name}: {count + 1}/{len(chosen)} clips, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    records = [done[i] for i in chosen if i in done]
    if len(records) < len(chosen):
        selection += f", {len(records)} run"
    return summarize(name, selection, records)


def _write(rows: List[Dict[str, Any]], out: str, stem: str, command: str) -> None:
    if not rows:
        return
    columns = list(rows[0])
    lines = [f"`{command}`, torch {torch.__version__}", "", "| " + " | ".join(columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join("-" if r[c] is None else str(r[c]) for c in columns) + " |" for r in rows]
    with open(os.path.join(out, f"{stem}.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(out, f"{stem}.csv"), "w", newline="") as handle:
        write_rows(handle, rows, columns)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["percussion", "speech"], help="zoo models")
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets (default: data/)")
    parser.add_argument("--limit", type=int, help="the first N clips (after --stride)")
    parser.add_argument("--stride", nargs="+", default=[], metavar="[MODEL=]K", help="every K-th clip (of MODEL)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-joint-queries", type=int, help="the default's budget instead of explain's default "
                        "(records in sn_sets_<split>_<model>_joint<N>.jsonl, tables in sn_sets_<split>_joint<N>.md)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--out", default=os.path.join(flip_rates.REPO, "benchmarks", "results"))
    parser.add_argument("--summarize", action="store_true", help="tables from the records only, run nothing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    command = "benchmarks/sn_sets.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows: List[Dict[str, Any]] = []
    for name in args.models:
        rows += run_model(name, args)
        _write(rows, args.out, f"sn_sets_{args.split}" + ("" if args.max_joint_queries is None else f"_joint{args.max_joint_queries}"),
               command)


if __name__ == "__main__":
    main()
