"""Flips against the physical limit: every single rfft bin removed in turn, beside the methods' flip@1.

For every clip, each of its ``T // 2 + 1`` rfft bins is removed alone (exhaustive: one model query
per bin, many bins per model call). Removing bin ``k`` from ``x`` subtracts that bin's real
sinusoid, so a batch of removals is ``x - irfft(one-hot spectra)``: one inverse FFT per batch, no
Python loop per bin. The model's verdicts come from the project's :class:`Oracle` and its default
decision, so a tie never counts as a flip, as everywhere else. Per clip the record holds how many
bins flip the decision alone, the loudest and the quietest such bin (Hz, SNR in dB), the ties, the
queries and the wall time split into model and overhead.

A clip where any single-bin removal flips the decision is within reach of flip@1: their count is the
**physical limit** of flip@1. Beside it, on the same clips, the methods of
``benchmarks/flip_rates.py`` run at equal queries, within ``--queries`` (default 1,000) per clip:
Captum's FeatureAblation over log bands (as many as fit: one query per band plus one), then FreqReX's
partition refinement in necessary mode (``search="refinement"``, the default until the per-example
``search="auto"``, whose records here were measured then) and band screening (the default search
in necessary mode now), each given the queries FeatureAblation used. Their flips at k = 1 and 5 are measured by
:func:`captum_freqrex.metrics.perturbation_success_rate` (single-bin features), and each method's
share of the limit is its flip@1 over the clips where a single-bin flip exists. Each method's
median SNR is over its own flips, so a third table pairs it with FeatureAblation's on the clips
where both flip at k: the median difference (dB, positive: quieter) and on how many clips it is
quieter or louder.

Usage::

    .venv/bin/python benchmarks/single_bin_limit.py                          # shipped clips, every zoo model but instruments
    .venv/bin/python benchmarks/single_bin_limit.py --models percussion --split test --limit 20 --threads 1
    .venv/bin/python benchmarks/single_bin_limit.py --models speech silero-vad --limit speech=2 silero-vad=1
    .venv/bin/python benchmarks/single_bin_limit.py --split test --summarize --models percussion speech

``--split shipped`` (default) runs the zoo's shipped clips; ``--split test`` the held-out split
that ``scripts/build_datasets.py`` builds into ``--data`` (as ``flip_rates.py --split test``), with
``--limit`` / ``--stride`` to select clips, run coarse to fine. One record per clip and method is
appended to ``single_bin_limit_<split>_<model>.jsonl`` in ``--out`` as it finishes, so a stopped
run resumes; ``single_bin_limit_<split>.md`` / ``.csv`` are rewritten after each model. After a
change to one method, ``--redo METHOD`` drops that method's records first and makes them again,
keeping the exhaustive pass and the other methods' (e.g. ``--redo "band_screening (necessary)"``).

Cost: the exhaustive part is ``T // 2 + 1`` queries per clip: 8,001 for the 1 s percussion clips,
24,001 for 3 s speech and silero-vad, 240,001 for the 30 s instruments clips (about an hour per clip
on one CPU core, hence instruments is not in the default model list).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (the clip loading, records and method runs of flip_rates.py)

from captum_freqrex import log_bands  # noqa: E402
from captum_freqrex._core.model.decision import DecisionLike  # noqa: E402
from captum_freqrex._core.model.oracle import Oracle  # noqa: E402
from captum_freqrex._utils.csv_cells import write_rows  # noqa: E402
from captum_freqrex.datasets import DatasetSplit  # noqa: E402

LIMIT = "single-bin limit (exhaustive)"
#: Methods run beside the limit (names of flip_rates.py), and the names the tables give them.
METHODS = ["FeatureAblation", "refinement (necessary)", "band_screening (necessary)"]
LABELS = {
    "refinement (necessary)": "refinement (necessary; the default until search='auto', measured then)",
    "band_screening (necessary)": "band_screening (necessary; the default now)",
}


def single_bin_flips(model: Callable, clip: torch.Tensor, sample_rate: int, batch_rows: int = 128,
                     decision: DecisionLike = None) -> Dict[str, Any]:
    r"""Remove every rfft bin of one clip alone; which removals flip the model's decision?

    Args:
        model (Callable): Maps waveforms ``(N, T)`` to scores.
        clip (Tensor): ``(1, T)`` waveform.
        sample_rate (int): Hz, for the frequencies reported.
        batch_rows (int, optional): Removals per model call. Default: 128
        decision (str, Decision or Callable, optional): The decision rule, as for FreqReX.
                    Default: None (the project's default: argmax, a threshold for one output)

    Returns:
        dict: ``target`` (the decision on the clip), ``bins`` (``T // 2 + 1``), ``flips`` (bins whose
        lone removal changes the decision), ``ties`` (bins whose removal neither keeps nor changes
        it: never flips), ``loudest`` / ``quietest`` (the flipping bin of lowest / highest SNR:
        ``bin``, ``hz``, ``snr_db``, ``to`` the class it flips to; None without flips),
        ``queries``, ``forward_calls``, ``seconds``, ``model_seconds``.
    """
    if clip.dim() != 2 or clip.shape[0] != 1:
        raise ValueError(f"clip must be one waveform (1, T), got shape {tuple(clip.shape)}")
    oracle = Oracle(model, max_rows=batch_rows)
    length = clip.shape[-1]
    with oracle.measure() as stats:
        outputs = oracle.scores([clip.clone()])
        rule = oracle.decide(decision, outputs)
        target = int(rule.classes(outputs)[0])
        spectrum = torch.fft.rfft(clip[0])
        n_bins = spectrum.shape[-1]
        signal = clip.double().square().sum()
        changes, ties, decided, noise = [], [], [], []
        for start, stop in oracle.batches(n_bins):
            bins = torch.arange(start, stop, device=clip.device)
            one_hot = torch.zeros(stop - start, n_bins, dtype=spectrum.dtype, device=clip.device)
            one_hot[torch.arange(stop - start), bins] = spectrum[bins]
            parts = torch.fft.irfft(one_hot, n=length)  # (rows, T): each bin's real sinusoid
            verdicts = oracle.verdicts(oracle.scores([clip - parts]), target)
            changes.append(verdicts.changes)
            ties.append(~verdicts.changes & ~verdicts.passes)
            decided.append(verdicts.decided)
            noise.append(parts.double().square().sum(1))
        flips, tied, to, energy = torch.cat(changes), torch.cat(ties), torch.cat(decided), torch.cat(noise)
    snr = 10.0 * torch.log10(signal / energy.clamp(min=torch.finfo(torch.float64).tiny))
    flipping = flips.nonzero().flatten()

    def describe(position: int) -> Dict[str, Any]:
        k = int(flipping[position])
        return {"bin": k, "hz": round(k * sample_rate / length, 3), "snr_db": round(float(snr[k]), 2), "to": int(to[k])}

    order = snr[flipping].argsort()
    return {
        "target": target, "bins": n_bins, "flips": int(flipping.numel()), "ties": int(tied.sum()),
        "loudest": describe(int(order[0])) if flipping.numel() else None,
        "quietest": describe(int(order[-1])) if flipping.numel() else None,
        "queries": stats.queries, "forward_calls": stats.forward_calls,
        "seconds": round(stats.total_seconds, 3), "model_seconds": round(stats.model_seconds, 3),
    }


def bands_within(num_samples: int, sample_rate: int, queries: int) -> torch.Tensor:
    r"""The most log bands (Captum feature ids ``(T // 2 + 1,)``) whose FeatureAblation fits in
    ``queries`` model queries (one per non-empty band plus one)."""
    if queries < 2:
        raise SystemExit(f"--queries must be at least 2 (one band plus the original), got {queries}")
    low, high = 1, 4 * queries  # log_bands merges empty low bands: requested >= non-empty
    while low < high:
        middle = (low + high + 1) // 2
        if int(log_bands(num_samples, middle, sample_rate=sample_rate).unique().numel()) + 1 <= queries:
            low = middle
        else:
            high = middle - 1
    return log_bands(num_samples, low, sample_rate=sample_rate)


def shipped_clips(name: str) -> Tuple[Callable, DatasetSplit]:
    """A zoo model and its shipped clips as a split (labels -1 where a clip has none)."""
    from captum_freqrex import zoo

    loaded = zoo.load(name)
    clips = zoo.sample_clips(name)
    waves = torch.stack([torch.nn.functional.pad(c.waveform[: loaded.num_samples], (0, max(0, loaded.num_samples - c.waveform.shape[-1])))
                         for c in clips])
    labels = torch.tensor([loaded.class_names.index(c.label) if c.label in loaded.class_names else -1 for c in clips])
    return loaded.model, DatasetSplit(waves, labels, loaded.class_names, loaded.sample_rate, [c.name for c in clips])


def run_clips(name: str, model: Callable, data: DatasetSplit, chosen: List[int], path: str, settings: Dict[str, Any],
              methods: List[str], ks: List[int], seed: int, queries: int, batch_rows: int) -> Dict[Tuple[str, int], Dict[str, Any]]:
    r"""The limit and every method on the chosen clips (coarse to fine), appending one record per clip
    and method to ``path`` and reusing those already there. Returns the records by (method, clip)."""
    done = flip_rates._records(path, settings)
    bands = bands_within(data.waveforms.shape[-1], data.sample_rate, queries)
    order = flip_rates._coarse_to_fine(len(chosen))
    start = time.perf_counter()
    for count, position in enumerate(order):
        i = chosen[position]
        clip, label = data.waveforms[i : i + 1], int(data.labels[i])
        budget: Optional[int] = None
        for method in [LIMIT] + methods:
            record = done.get((method, i))
            if record is not None and (record["label"] != label or record["source"] != data.sources[i]):
                raise SystemExit(f"{path}: the record of clip {i} is of another clip ({record['source']}, label "
                                 f"{record['label']}) than the data set's ({data.sources[i]}, label {label}): the data "
                                 "set changed; pass another --out folder, or move that file away to start over")
            if record is None:
                if method == LIMIT:
                    made = {"method": LIMIT, "label": label, **single_bin_flips(model, clip, data.sample_rate, batch_rows)}
                else:
                    made = flip_rates._clip_record(model, clip, label, method, budget, bands, ks, seed)
                record = {"clip": i, "source": data.sources[i], **made, **settings}
                flip_rates.append_record(path, record)
                done[(method, i)] = record
            if method == "FeatureAblation":  # its queries set the others' budget on this clip
                budget = record["queries"]
        print(f"{name}: {count + 1}/{len(chosen)} clips, {time.perf_counter() - start:.0f} s; clip {i}: "
              f"{done[(LIMIT, i)]['flips']} single-bin flips", file=sys.stderr, flush=True)
    return done


def drop_records(path: str, methods: List[str]) -> int:
    r"""Remove the records of ``methods`` from the records file ``path`` (kept: every other line).

    Returns:
        int: Records removed (0 when the file does not exist).
    """
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        lines = handle.readlines()
    kept = [line for line in lines if not line.strip() or _method_of(line) not in methods]
    with open(path, "w") as handle:
        handle.writelines(kept)
    return len(lines) - len(kept)


def _method_of(line: str) -> Optional[str]:
    try:
        return json.loads(line).get("method")
    except json.JSONDecodeError:  # a record cut short: kept, and skipped when read
        return None


def _median(values: List[float]) -> Optional[float]:
    return round(statistics.median(values), 1) if values else None


def summarize(model: str, selection: str, limit: List[Dict[str, Any]], methods: Dict[str, List[Dict[str, Any]]],
              ks: List[int]) -> List[Dict[str, Any]]:
    r"""The table rows of one model: the limit, then each method beside it.

    Args:
        model (str): Zoo model name.
        selection (str): Which clips were run.
        limit (list of dict): The exhaustive record of each clip.
        methods (dict): Method name -> its records on the same clips (same order).
        ks (list of int): The k measured (1 first).

    Returns:
        list of dict: ``flip@k`` counts of clips, ``share_of_limit`` (flip@1 / clips with a
        single-bin flip; None when there are none), ``flip@1_beyond_limit`` (flips at k = 1 on
        clips where no single bin flips: must be 0), median SNRs of the flips (dB), mean queries and
        seconds per clip. The limit's row has flip@1 = clips with a single-bin flip and SNR@1 the
        median over them of the quietest flipping bin (the best a method can do at k = 1).
    """
    n = len(limit)
    reachable = {r["clip"] for r in limit if r["flips"]}
    n_limit = len(reachable)
    flipping = [r for r in limit if r["flips"]]
    rows = [{
        "model": model, "clips": selection, "method": LIMIT, "n": n,
        "queries": statistics.fmean(r["queries"] for r in limit) if limit else 0.0,
        "flip@1": n_limit, **{f"flip@{k}": None for k in ks if k != 1},
        "share_of_limit": 1.0 if n_limit else None, "flip@1_beyond_limit": 0,
        "snr_db@1": _median([r["quietest"]["snr_db"] for r in flipping]), **{f"snr_db@{k}": None for k in ks if k != 1},
        "flipping_bins_median": _median([r["flips"] for r in flipping]),
        "loudest_flip_snr_db_median": _median([r["loudest"]["snr_db"] for r in flipping]),
        "ties": sum(r["ties"] for r in limit),
        "seconds": statistics.fmean(r["seconds"] for r in limit) if limit else 0.0,
        "model_share": (sum(r["model_seconds"] for r in limit) / max(sum(r["seconds"] for r in limit), 1e-12)) if limit else 0.0,
    }]
    for method, records in methods.items():
        row: Dict[str, Any] = {"model": model, "clips": selection, "method": LABELS.get(method, method), "n": len(records),
                               "queries": statistics.fmean(r["queries"] for r in records) if records else 0.0}
        for j, k in enumerate(ks):
            row[f"flip@{k}"] = sum(r["flipped"][j] for r in records)
        row["share_of_limit"] = round(row["flip@1"] / n_limit, 3) if n_limit else None
        row["flip@1_beyond_limit"] = sum(r["flipped"][0] for r in records if r["clip"] not in reachable)
        for j, k in enumerate(ks):
            row[f"snr_db@{k}"] = _median([r["snr_db"][j] for r in records if r["flipped"][j]])
        if method != "FeatureAblation":
            row.update(_paired_with_ablation(records, methods.get("FeatureAblation"), ks))
        row.update({"flipping_bins_median": None, "loudest_flip_snr_db_median": None, "ties": None,
                    "seconds": statistics.fmean(r["seconds"] for r in records) if records else 0.0, "model_share": None})
        rows.append(row)
    for key in [key for row in rows for key in row]:  # one set of CSV columns: None where a row has none
        for row in rows:
            row.setdefault(key, None)
    return rows


def _paired_with_ablation(records: List[Dict[str, Any]], ablation: Optional[List[Dict[str, Any]]],
                          ks: List[int]) -> Dict[str, Any]:
    # A method's SNR beside FeatureAblation's on the clips where both flip at k: the medians of the
    # main table are over different clips (a method that flips more hard clips, whose flips are
    # loud, gets a lower median), so only the paired difference says which change is quieter.
    if not ablation:
        return {}
    row: Dict[str, Any] = {}
    for j, k in enumerate(ks):
        both = [(r["snr_db"][j], a["snr_db"][j]) for r, a in zip(records, ablation) if r["flipped"][j] and a["flipped"][j]]
        differences = [mine - theirs for mine, theirs in both]
        row[f"paired@{k}"] = len(both)
        row[f"snr_db@{k}_minus_ablation"] = round(statistics.median(differences), 2) + 0.0 if differences else None
        row[f"quieter@{k}"] = sum(d > 0.05 for d in differences)
        row[f"louder@{k}"] = sum(d < -0.05 for d in differences)
    return row


def _markdown(rows: List[Dict[str, Any]], ks: List[int]) -> str:
    def cell(value: Any, form: str = "{:.1f}") -> str:
        return "-" if value is None else form.format(value)

    head = ["model", "clips", "method", "queries / clip"] + [f"flip@{k}" for k in ks] + ["share of the limit (flip@1)"]
    head += [f"median SNR@{k} of flips (dB)" for k in ks] + ["s / clip"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["model"], r["clips"], r["method"], f"{r['queries']:.0f}"]
        cells += [cell(r[f"flip@{k}"], "{}") + (f"/{r['n']}" if r[f"flip@{k}"] is not None else "") for k in ks]
        cells += [cell(None if r["share_of_limit"] is None else 100 * r["share_of_limit"], "{:.0f}%")]
        cells += [cell(r[f"snr_db@{k}"]) for k in ks] + [f"{r['seconds']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    detail = ["| model | clips | clips with a single-bin flip | flipping bins / clip (median, over those) | "
              "quietest flip SNR (dB, median) | loudest flip SNR (dB, median) | ties (bins, all clips) | "
              "queries / clip | s / clip | model share of time | method flips@1 beyond the limit |",
              "|" + " --- |" * 11]
    for r in rows:
        if r["method"] != LIMIT:
            continue
        beyond = sum(o["flip@1_beyond_limit"] for o in rows if o["model"] == r["model"] and o["method"] != LIMIT)
        detail.append(f"| {r['model']} | {r['clips']} | {r['flip@1']}/{r['n']} | {cell(r['flipping_bins_median'])} | "
                      f"{cell(r['snr_db@1'])} | {cell(r['loudest_flip_snr_db_median'])} | {r['ties']} | {r['queries']:.0f} | "
                      f"{r['seconds']:.1f} | {100 * r['model_share']:.0f}% | {beyond} |")
    paired = ["| model | method | k | clips both flip | median SNR minus FeatureAblation's (dB) | quieter | louder |",
              "|" + " --- |" * 7]
    for r in rows:
        for k in ks:
            if r[f"paired@{k}"] is not None:
                paired.append(f"| {r['model']} | {r['method']} | {k} | {r[f'paired@{k}']} | "
                              f"{cell(r[f'snr_db@{k}_minus_ablation'], '{:+.2f}')} | {r[f'quieter@{k}']} | {r[f'louder@{k}']} |")
    return "\n".join(lines) + "\n\n" + "\n".join(detail) + "\n\n" + "\n".join(paired)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="zoo models (default: percussion percussion-wave silero-vad speech)")
    parser.add_argument("--split", choices=["shipped", "test"], default="shipped",
                        help="the zoo's shipped clips (default) or each model's held-out test split")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets for --split test")
    parser.add_argument("--methods", nargs="+", default=METHODS, help=f"any of {METHODS} (FeatureAblation sets the budget)")
    parser.add_argument("--queries", type=int, default=1000, help="most queries per clip of each method (default 1000)")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128, help="single-bin removals per model call (default 128)")
    parser.add_argument("--limit", nargs="+", default=[], metavar="[MODEL=]N", help="the first N clips (of MODEL; after --stride)")
    parser.add_argument("--stride", nargs="+", default=[], metavar="[MODEL=]K", help="every K-th clip (of MODEL)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--summarize", action="store_true", help="tables from the records only, run nothing")
    parser.add_argument("--redo", nargs="+", default=[], metavar="METHOD",
                        help="drop these methods' records (of every clip) first and make them again")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [m for m in args.methods + args.redo if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {METHODS}")
    if args.redo and args.summarize:
        parser.error("--redo makes records again: it cannot go with --summarize")
    if args.ks[0] != 1:
        parser.error(f"--ks must start with 1 (the limit is of flip@1), got {args.ks}")
    methods = [m for m in METHODS if m in args.methods]  # FeatureAblation first: it sets the budget
    models = args.models or ["percussion", "percussion-wave", "silero-vad", "speech"]
    strides = flip_rates._strides(args.stride)
    try:
        limits = flip_rates._strides(args.limit)  # the same K or MODEL=K syntax
    except SystemExit:
        parser.error(f"--limit takes N or MODEL=N with N a positive integer, got {args.limit}")
    settings = {"split": args.split, "ks": args.ks, "seed": args.seed, "max_queries": args.queries}
    command = flip_rates.command_line("single_bin_limit.py", argv)
    os.makedirs(args.out, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    for name in models:
        model, data = shipped_clips(name) if args.split == "shipped" else flip_rates.load_held_out(name, "test", args.data)
        chosen, selection = flip_rates._selection(len(data.labels), strides.get(name, strides.get("*", 1)),
                                                limits.get(name, limits.get("*")))
        if args.split == "shipped":
            selection = f"shipped: {selection}"
        path = os.path.join(args.out, f"single_bin_limit_{args.split}_{name}.jsonl")
        if args.summarize:
            done = flip_rates._records(path, settings)
            missing = [i for i in chosen if any((m, i) not in done for m in [LIMIT] + methods)]
            if missing:
                raise SystemExit(f"{name}: {len(missing)} of the {len(chosen)} selected clips have no records in {path} "
                                 "(pick a coarser --stride or a --limit, or run without --summarize to make them)")
        else:
            if args.redo:
                drop_records(path, args.redo)
            done = run_clips(name, model, data, chosen, path, settings, methods, args.ks, args.seed, args.queries, args.batch)
        rows += summarize(name, selection, [done[(LIMIT, i)] for i in chosen],
                          {m: [done[(m, i)] for i in chosen] for m in methods}, args.ks)
        table = _markdown(rows, args.ks)
        with open(os.path.join(args.out, f"single_bin_limit_{args.split}.md"), "w") as handle:
            handle.write(f"{flip_rates.results_header(command)}\n\n{table}\n")
        with open(os.path.join(args.out, f"single_bin_limit_{args.split}.csv"), "w", newline="") as handle:
            write_rows(handle, rows)
    print(_markdown(rows, args.ks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
