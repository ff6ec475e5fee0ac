"""The default necessary-mode answer on held-out clips: is there one, and how small is it?

``FreqReX(model).explain(clip, mode="necessary")`` with no other option (the default search, band
screening, and the default budget), on every K-th clip of each zoo model's held-out split (built
into ``--data`` by ``scripts/build_datasets.py``). Its responsibility is ``attribute(clip,
mode="necessary")``'s, bit for bit. Per clip: whether removing every frequency (the
baseline alone) changes the decision, how many features the answer credits (0: an all-zero answer,
which the explainer warns about), the smallest flipping set it found (1 / the largest value; 1 for a
single-bin flip), the narrowest wide part that flipped where the screening fell back to them
(``details["wide_flip"]``), the smallest removal of loud runs that flipped where it ended with them
(``details["loud_run_flip"]``), the flips of its top 1 and top 5 bins
(:func:`~captum_freqrex.metrics.perturbation_success_rate`), the answer as a set
(``Explanation.manipulation``: its size, whether its re-query certified it, its SNR, whether it is
the sufficient-and-necessary set), the responsibility search's queries (``queries``), the whole
explanation's (``explain_queries``) and the time. The summary
counts the all-zero answers (and of them, those where the baseline alone changes the decision: a
removal that flips exists, the whole spectrum at least), the answers against their limit (the
clips where a removal that flips is known to exist: the baseline alone flips, or the answer found
one), the wide fallbacks, the loud-run answers, the median smallest flipping set, the flips, and
the certified answers against the same limit with their median size and SNR. Records written
before the answer existed (no ``manipulation`` key) count as none.
Run it at two commits to compare; the records (one JSON line per clip) resume an interrupted run.

``--next-step`` also tries the flagged answers' next step: where the answer is flagged (it removes
most of the spectrum, or its change carries most of the clip's energy:
:func:`~captum_freqrex._explanation.informative.manipulation_flags`), the clip is explained again
in ``mode="necessary"`` over time-frequency cells (``StftDomain(n_fft=512)``), and a second table
counts how many of those answers are certified and no longer flagged there, with the median SNR
before and after (records in ``necessary_answers_<model>_next_step.jsonl``).

Usage::

    .venv/bin/python benchmarks/necessary_answers.py --models percussion percussion-wave --stride 4 --threads 1
    .venv/bin/python benchmarks/necessary_answers.py --models speech silero-vad --stride 16 --out /tmp/answers
    .venv/bin/python benchmarks/necessary_answers.py --models percussion speech --stride 4 speech=16
    .venv/bin/python benchmarks/necessary_answers.py --models speech silero-vad --stride 16 --next-step
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (held-out loading, records, the results header)

from captum_freqrex import FreqReX, StftDomain  # noqa: E402
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
        ``manipulation`` (the answer's size, None for none), ``manipulation_certified``,
        ``manipulation_snr_db``, ``manipulation_from_sn`` (it is the sufficient-and-necessary set),
        ``queries`` (the responsibility search's, as ``attribute`` spends them),
        ``explain_queries``, ``stopped_by`` and ``seconds`` (the whole explanation's).
    """
    with torch.no_grad():
        target = int(model(clip).argmax(dim=1))
        baseline_flips = int(model(torch.zeros_like(clip)).argmax(dim=1)) != target
    explainer = FreqReX(model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = explainer.explain(clip, target=target, mode="necessary", seed=0)[0]
    seconds = time.perf_counter() - start
    responsibility = explanation.feature_responsibility.unsqueeze(0)
    found = explanation.manipulation
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
        "manipulation": None if found is None else found.size,
        "manipulation_certified": found is not None and found.certified,
        "manipulation_snr_db": None if found is None or not math.isfinite(found.snr_db) else round(found.snr_db, 2),
        "manipulation_from_sn": found is not None and found.note.startswith("the sufficient-and-necessary set"),
        "manipulation_flags": [] if found is None else [flag["flag"] for flag in found.flags],
        "n_features": int(responsibility.numel()),
        # attribute()'s count: the anchors (input and baseline) and the search.
        "queries": explanation.responsibility_queries + 2, "explain_queries": explanation.stats.queries,
        "stopped_by": search.stopped_by, "seconds": round(seconds, 3),
    }


def next_step_record(model: Any, clip: torch.Tensor, target: int) -> Dict[str, Any]:
    r"""A flagged answer's next step: the clip explained in ``mode="necessary"`` over STFT cells.

    Args:
        model (Any): The classifier.
        clip (Tensor): ``(1, T)`` waveform.
        target (int): The decision explained by :func:`answer_record`.

    Returns:
        dict: ``stft_answer`` (the answer's cells, None for none), ``stft_certified``,
        ``stft_snr_db``, ``stft_flags``, ``stft_cells`` (all cells of the clip), ``stft_queries``
        and ``stft_seconds``.
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = FreqReX(model, domain=StftDomain(n_fft=512)).explain(clip, target=target, mode="necessary", seed=0)[0]
    found = explanation.manipulation
    return {
        "stft_answer": None if found is None else found.size,
        "stft_certified": found is not None and found.certified,
        "stft_snr_db": None if found is None or not math.isfinite(found.snr_db) else round(found.snr_db, 2),
        "stft_flags": [] if found is None else [flag["flag"] for flag in found.flags],
        "stft_cells": int(explanation.feature_responsibility.numel()),
        "stft_queries": explanation.stats.queries, "stft_seconds": round(time.perf_counter() - start, 3),
    }


def summarize_next_step(model: str, records: List[Dict[str, Any]], steps: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    r"""One row of the next step's table: the flagged answers, and what the STFT cells gave them."""
    flagged = [r for r in records if r.get("manipulation_certified") and r.get("manipulation_flags")]
    tried = [(r, steps[r["clip"]]) for r in flagged if r["clip"] in steps]
    better = [step for _, step in tried if step["stft_certified"] and not step["stft_flags"]]
    return {
        "model": model, "flagged": len(flagged), "tried": len(tried),
        "certified": sum(1 for _, step in tried if step["stft_certified"]), "unflagged": len(better),
        "median_snr": _median([r["manipulation_snr_db"] for r, _ in tried if r["manipulation_snr_db"] is not None]),
        "median_stft_snr": _median([step["stft_snr_db"] for _, step in tried
                                    if step["stft_certified"] and step["stft_snr_db"] is not None]),
        "median_stft_share": _median([step["stft_answer"] / step["stft_cells"] for _, step in tried if step["stft_certified"]]),
        "median_stft_queries": _median([step["stft_queries"] for _, step in tried]),
    }


def _next_step_markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | flagged answer sets | certified over STFT cells | no longer flagged | median SNR (dB): rfft bins | "
             "median SNR (dB): STFT cells | median share of the cells | median explain queries (STFT) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        share = "-" if r["median_stft_share"] is None else f"{100 * r['median_stft_share']:.2f}%"
        lines.append(f"| {r['model']} | {r['flagged']} | {r['certified']}/{r['tried']} | {r['unflagged']}/{r['tried']} | "
                     f"{_number(r['median_snr'], 1)} | {_number(r['median_stft_snr'], 1)} | {share} | "
                     f"{_number(r['median_stft_queries'])} |")
    return "\n".join(lines)


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
        "certified_answers": sum(1 for r in known if r.get("manipulation_certified")),
        "median_answer": _median([r["manipulation"] for r in records if r.get("manipulation_certified")]),
        "median_answer_snr": _median([r["manipulation_snr_db"] for r in records
                                      if r.get("manipulation_certified") and r["manipulation_snr_db"] is not None]),
        "answers_from_sn": sum(1 for r in records if r.get("manipulation_certified") and r.get("manipulation_from_sn")),
        "median_queries": statistics.median(r["queries"] for r in records) if records else None,
        "median_explain_queries": _median([r["explain_queries"] for r in records if "explain_queries" in r]),
        "median_seconds": statistics.median(r["seconds"] for r in records) if records else None,
    }


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _number(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| model | clips | all-zero answers | of them, the baseline flips | answers where a flip is known to exist | "
             "wide-part answers | loud-run answers | smallest flipping set (bins, median) | flip@1 | flip@5 | "
             "certified answer sets where a flip is known to exist | answer set (bins, median) | its SNR (dB, median) | "
             "of them, the S&N set | median search queries | median explain queries | median s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['clips']} | {r['all_zero']} | {r['all_zero_baseline_flips']} | "
                     f"{r['answered']}/{r['flip_known']} | {r['wide']} | {r['loud_runs']} | {_number(r['median_smallest'])} | "
                     f"{r['flip@1']} | {r['flip@5']} | {r['certified_answers']}/{r['flip_known']} | "
                     f"{_number(r['median_answer'])} | {_number(r['median_answer_snr'], 1)} | {r['answers_from_sn']} | "
                     f"{r['median_queries']:,.0f} | {_number(r['median_explain_queries'])} | {r['median_seconds']:.2f} |")
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
    parser.add_argument("--next-step", action="store_true",
                        help="also explain the clips with a flagged answer over STFT cells (the flag's next step)")
    args = parser.parse_args(argv)
    strides = flip_rates._strides(args.stride)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    rows, sections, step_rows = [], [], []
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
        if args.next_step:
            step_rows.append(summarize_next_step(name, records, _next_steps(name, model, data, records, args.out)))
    header = flip_rates.results_header(flip_rates.command_line("necessary_answers.py", argv))
    table = _markdown(rows) + (f"\n\n{_next_step_markdown(step_rows)}" if step_rows else "")
    with open(os.path.join(args.out, "necessary_answers.md"), "w") as handle:
        handle.write(f"{header}\n\n" + "; ".join(sections) + f"\n\n{table}\n")
    print(table)
    return 0


def _next_steps(name: str, model: Any, data: Any, records: List[Dict[str, Any]], out: str) -> Dict[int, Dict[str, Any]]:
    # The next step's records of the flagged answers, by clip (resumed from its own file).
    path = os.path.join(out, f"necessary_answers_{name}_next_step.jsonl")
    steps = {record["clip"]: record for record in flip_rates.read_records(path)}
    for record in records:
        if record["clip"] in steps or not (record.get("manipulation_certified") and record.get("manipulation_flags")):
            continue
        i = record["clip"]
        steps[i] = {"clip": i, **next_step_record(model, data.waveforms[i : i + 1], record["target"])}
        flip_rates.append_record(path, steps[i])
        print(f"{name} clip {i} over STFT cells: {steps[i]['stft_answer']} cells at {steps[i]['stft_snr_db']} dB",
              file=sys.stderr, flush=True)
    return steps


if __name__ == "__main__":
    sys.exit(main())
