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

With ``--split test`` it runs over a whole held-out split instead (built by
``scripts/build_datasets.py`` into ``--data``, default ``data/``): each zoo model's own test split,
and for "silero-vad" the speech / no-speech set of its card (``scripts/train_zoo.py``'s
``silero_held_out``). The decision explained is the model's own (its argmax); flips are counted
over all clips and over the clips the model classifies correctly, and the SNR column is the median
over the flipped clips only. ``--limit N`` takes the first N clips, ``--stride K`` (or
``--stride MODEL=K``) every K-th; the table says which. One record per clip and method is
appended to ``flip_rates_<split>_<model>.jsonl`` as it finishes, so an interrupted run resumes
where it stopped (records made with other ``--ks``, ``--bands`` or ``--seed`` are refused), and
``flip_rates_<split>.md`` / ``.csv`` are rewritten after each model. Clips are run coarse to
fine (every 2^j-th clip of the selection for decreasing j), so a run stopped early has finished
every 2^j-th clip for some j; ``--summarize`` makes the tables from the records alone (with a ``--stride`` they cover)::

    nice -n 10 .venv/bin/python benchmarks/flip_rates.py --split test --threads 1 \
        --models percussion speech silero-vad instruments --methods FeatureAblation necessary band_screening
    .venv/bin/python benchmarks/flip_rates.py --split test --models speech --limit 20   # a quick check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.attr import FeatureAblation

from captum_freqrex import FeatureSpace, FreqReX, FrequencyForward, log_bands
from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._utils.csv_cells import write_rows
from captum_freqrex.compare import load_zoo_inputs
from captum_freqrex.datasets import DatasetSplit, load_split
from captum_freqrex.metrics import perturbation_success_rate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Method name -> FreqReX constructor and attribute options (FeatureAblation is run separately).
VARIANTS: Dict[str, Tuple[Any, Dict[str, Any]]] = {
    "refinement (sufficient)": ("refinement", {}),
    "refinement (necessary)": ("refinement", {"mode": "necessary"}),
    "adaptive (necessary)": ("adaptive", {"mode": "necessary"}),
    "band_screening (necessary)": ("band_screening", {"mode": "necessary"}),
}
METHODS = ["FeatureAblation"] + list(VARIANTS)
SHORT = {"refinement": "refinement (sufficient)", "necessary": "refinement (necessary)",
         "adaptive": "adaptive (necessary)", "band_screening": "band_screening (necessary)"}


def _feature_ablation(model: Callable, clip: torch.Tensor, target: int, bands: torch.Tensor) -> Tuple[torch.Tensor, int]:
    oracle = Oracle(model)  # counts the queries, as FreqReX's own oracle does
    ids = FeatureSpace((clip,), (torch.zeros_like(clip),), bands).ids()[0].unsqueeze(0)
    wrapped = FrequencyForward(oracle, clip)
    attr = FeatureAblation(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=target, feature_mask=ids, perturbations_per_eval=32
    )
    return attr.detach(), oracle.stats.queries


def _freqrex(model: Callable, clip: torch.Tensor, target: int, name: str, budget: int, seed: int) -> Tuple[torch.Tensor, int]:
    search, options = VARIANTS[name]
    explainer = FreqReX(model, search=search)
    # Two anchor queries (the input and the baseline alone) come on top of max_queries.
    attr = explainer.attribute(clip, target=target, max_queries=budget - 2, seed=seed, **options)
    return attr.detach(), explainer.last_stats.queries


def run(models: List[str], n_clips: int, methods: List[str], ks: List[int], seed: int, n_bands: int) -> List[Dict[str, Any]]:
    rows = []
    for name in models:
        model, clips, rate, labels = load_zoo_inputs(name, n_clips)
        with torch.no_grad():
            targets = model(clips).argmax(1)
        bands = log_bands(clips.shape[-1], n_bands, sample_rate=rate)
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


# ----------------------------------------------------------------------------- held-out splits


def _train_zoo() -> Any:
    """scripts/train_zoo.py as a module (it builds the silero-vad held-out set)."""
    spec = importlib.util.spec_from_file_location("train_zoo", os.path.join(REPO, "scripts", "train_zoo.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _task_of(name: str, card: Dict[str, Any], data_dir: str) -> str:
    """The data set a zoo model was trained for: its card's build command names it (e.g. a second
    percussion model's card says ``build_datasets.py percussion``); else its name or name prefix."""
    build = str(card.get("data", {}).get("build", "")).split()
    candidates = ([build[-1]] if build else []) + [name, name.split("-")[0]]
    for task in candidates:
        if os.path.exists(os.path.join(data_dir, task, "manifest.json")):
            return task
    raise SystemExit(f"no held-out data for zoo model {name!r} under {data_dir} (looked for {sorted(set(candidates))}); "
                     f"build it with scripts/build_datasets.py or pass --data DIR")


def load_held_out(name: str, split: str, data_dir: str) -> Tuple[Callable, DatasetSplit]:
    r"""A zoo model and the held-out split it is measured on, clips fitted to its input length.

    Args:
        name (str): A zoo model name.
        split (str): "test" (or "train").
        data_dir (str): Where ``scripts/build_datasets.py`` wrote the data sets.

    Returns:
        tuple: The model and its :class:`~captum_freqrex.datasets.DatasetSplit`.
    """
    from captum_freqrex import zoo

    loaded = zoo.load(name)
    if name == "silero-vad":
        if split != "test":
            raise SystemExit("silero-vad has a held-out set only: use --split test")
        data = _train_zoo().silero_held_out(data_dir, loaded.sample_rate, loaded.num_samples)
    else:
        data = load_split(data_dir, _task_of(name, loaded.info, data_dir), split)
    if data.sample_rate != loaded.sample_rate or data.class_names != loaded.class_names:
        raise SystemExit(f"{name}: the data set ({data.sample_rate} Hz, classes {data.class_names}) does not match the model "
                         f"({loaded.sample_rate} Hz, classes {loaded.class_names}); rebuild the data or pick its model")
    waves = data.waveforms[..., : loaded.num_samples]
    waves = torch.nn.functional.pad(waves, (0, loaded.num_samples - waves.shape[-1]))
    return loaded.model, DatasetSplit(waves, data.labels, data.class_names, data.sample_rate, data.sources)


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _selection(n: int, stride: int, limit: Optional[int]) -> Tuple[List[int], str]:
    rows = list(range(0, n, stride))[:limit]
    if len(rows) == n:
        return rows, f"all {n}"
    how = [f"every {_ordinal(stride)}" if stride > 1 else "", f"first {len(rows)}" if limit is not None and limit < len(range(0, n, stride)) else ""]
    return rows, f"{len(rows)} of {n} ({', '.join(h for h in how if h)})"


def _lowbit(position: int) -> int:
    """The largest power of two dividing ``position`` (position 0 counts as the largest)."""
    return position & -position if position else 1 << 30


def _coarse_to_fine(n: int) -> List[int]:
    """Positions 0..n-1, every 2^j-th first for decreasing j (n = 20: 0, 16, 8, 4, 12, 2, 6, ...): a run
    stopped at any point has finished every 2^j-th clip of the selection for some j, a subset spread
    over the whole split (which is ordered by class) that ``--stride`` can summarise."""
    return sorted(range(n), key=lambda p: (-_lowbit(p), p))


def read_records(path: str) -> List[Dict[str, Any]]:
    """The JSON records of ``path``, one per line (none when it does not exist yet), for a run to
    resume from: a line cut short by a run killed mid-write is skipped (that clip is redone)."""
    records: List[Dict[str, Any]] = []
    if not os.path.exists(path):
        return records
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"{path}:{number}: skipped an unreadable record", file=sys.stderr)
    return records


def _records(path: str, settings: Dict[str, Any]) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """The records already made, by (method, clip); records made with other settings are refused."""
    done: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for record in read_records(path):
        if {key: record.get(key) for key in settings} != settings:
            raise SystemExit(f"{path} holds records made with {({key: record.get(key) for key in settings})}, not {settings}: "
                             "pass another --out folder, or move that file away to start over")
        done[(record["method"], record["clip"])] = record
    return done


def append_record(path: str, record: Dict[str, Any]) -> None:
    """Append one JSON record as a line of ``path`` (after a record cut short, on a new line)."""
    with open(path, "a+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(handle.tell() - 1)
            ends = handle.read(1) == "\n"
            handle.seek(0, os.SEEK_END)
            handle.write("" if ends else "\n")
        handle.write(json.dumps(record) + "\n")


def _clip_record(model: Callable, clip: torch.Tensor, label: int, method: str, budget: Optional[int],
                 bands: torch.Tensor, ks: List[int], seed: int) -> Dict[str, Any]:
    with torch.no_grad():
        target = int(model(clip).argmax(1))
    start = time.perf_counter()
    if method == "FeatureAblation":
        attr, used = _feature_ablation(model, clip, target, bands)
    else:
        # Without FeatureAblation in the run, the budget is what it would spend: one query per band plus one.
        attr, used = _freqrex(model, clip, target, method, budget if budget is not None else int(bands.unique().numel()) + 1, seed)
    seconds = time.perf_counter() - start
    flips = perturbation_success_rate(model, clip, attr, target=target, k=ks)
    return {"method": method, "label": label, "target": target, "queries": used, "seconds": round(seconds, 3),
            "flipped": [bool(f) for f in flips.flipped[0].tolist()], "snr_db": [round(float(v), 2) for v in flips.snr_db[0].tolist()]}


def _share(flipped: int, n: int) -> str:
    return f"{flipped}/{n} ({100 * flipped / n:.0f}%)" if n else "0/0"


def summarize(model: str, selection: str, method: str, records: List[Dict[str, Any]], ks: List[int]) -> Dict[str, Any]:
    r"""One table row: flips at each k over all clips and over the correctly classified ones.

    Args:
        model (str): Zoo model name.
        selection (str): Which clips of the split were run.
        method (str): Method name.
        records (list of dict): One per clip, as appended to the records file.
        ks (list of int): The k measured.

    Returns:
        dict: Counts, percentages, median SNR of the flips (dB; None when none flipped), mean
        queries and seconds per clip.
    """
    correct = [r for r in records if r["target"] == r["label"]]
    row: Dict[str, Any] = {"model": model, "clips": selection, "method": method, "n": len(records),
                           "queries": statistics.fmean(r["queries"] for r in records) if records else 0.0}
    for j, k in enumerate(ks):
        snrs = [r["snr_db"][j] for r in records if r["flipped"][j]]
        row[f"flip@{k}"] = len(snrs)
        row[f"flip@{k}_pct"] = round(100 * len(snrs) / len(records), 1) if records else 0.0
        row[f"snr_db@{k}"] = round(statistics.median(snrs), 1) if snrs else None
    row["correct"] = len(correct)
    for j, k in enumerate(ks):
        row[f"flip@{k}_correct"] = sum(r["flipped"][j] for r in correct)
    row["seconds"] = statistics.fmean(r["seconds"] for r in records) if records else 0.0
    return row


def _markdown(rows: List[Dict[str, Any]], ks: List[int]) -> str:
    head = ["model", "clips", "method", "queries / clip"]
    head += [f"flip@{k} (all)" for k in ks] + [f"median SNR@{k} of flips (dB)" for k in ks]
    head += ["correctly classified"] + [f"flip@{k} (correct)" for k in ks] + ["s / clip"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["model"], r["clips"], r["method"], f"{r['queries']:.1f}"]
        cells += [_share(r[f"flip@{k}"], r["n"]) for k in ks]
        cells += ["-" if r[f"snr_db@{k}"] is None else f"{r[f'snr_db@{k}']:.1f}" for k in ks]
        cells += [f"{r['correct']}/{r['n']}"] + [_share(r[f"flip@{k}_correct"], r["correct"]) for k in ks]
        cells += [f"{r['seconds']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def run_split(models: List[str], split: str, data_dir: str, methods: List[str], ks: List[int], seed: int, n_bands: int,
              strides: Dict[str, int], limit: Optional[int], out: str, command: str,
              summarize_only: bool = False) -> List[Dict[str, Any]]:
    r"""Every method on every selected clip of each model's held-out split, at equal queries per clip.

    Records are appended per clip (all methods of a clip, then the next clip) and the tables are
    rewritten after each model, so a long run can be stopped and resumed. With ``summarize_only``
    nothing is run: the tables come from the records, and a selected clip without one is an error.

    Returns:
        list of dict: One summary row per model and method (see :func:`summarize`).
    """
    os.makedirs(out, exist_ok=True)
    settings = {"split": split, "ks": ks, "seed": seed, "bands": n_bands}
    rows: List[Dict[str, Any]] = []
    for name in models:
        model, data = load_held_out(name, split, data_dir)
        chosen, selection = _selection(len(data.labels), strides.get(name, strides.get("*", 1)), limit)
        bands = log_bands(data.waveforms.shape[-1], n_bands, sample_rate=data.sample_rate)
        path = os.path.join(out, f"flip_rates_{split}_{name}.jsonl")
        done = _records(path, settings)
        missing = [i for i in chosen if any((m, i) not in done for m in methods)]
        if summarize_only and missing:
            raise SystemExit(f"{name}: {len(missing)} of the {len(chosen)} selected clips have no records in {path} "
                             "(pick a coarser --stride, or run without --summarize to make them)")
        start, made = time.perf_counter(), 0
        order = _coarse_to_fine(len(chosen))
        for count, position in enumerate(order):
            i = chosen[position]
            clip, label = data.waveforms[i : i + 1], int(data.labels[i])
            budget: Optional[int] = None
            for method in methods:
                record = done.get((method, i))
                if record is not None and (record["label"] != label or record.get("source", data.sources[i]) != data.sources[i]):
                    raise SystemExit(f"{path}: the record of clip {i} is of another clip ({record.get('source')}, label "
                                     f"{record['label']}) than the data set's ({data.sources[i]}, label {label}): the data "
                                     "set changed; pass another --out folder, or move that file away to start over")
                if record is None:
                    record = _clip_record(model, clip, label, method, budget, bands, ks, seed)
                    record = {"clip": i, "source": data.sources[i], **record, **settings}
                    append_record(path, record)
                    done[(method, i)] = record
                    made += 1
                if method == "FeatureAblation":  # its queries set everyone's budget on this clip
                    budget = record["queries"]
            # Finished every L-th clip of the selection when the next position is finer than L.
            finer = _lowbit(order[count + 1]) if count + 1 < len(order) else 0
            level = _lowbit(position) if len(order) > _lowbit(position) > finer else 0
            if made and ((count + 1) % 10 == 0 or level):
                elapsed = time.perf_counter() - start
                print(f"{name}: {count + 1}/{len(chosen)} clips, {elapsed:.0f} s"
                      + (f"; every {_ordinal(level)} of the selection done" if level > 1 else "; all done" if level else ""), file=sys.stderr, flush=True)
        for method in methods:
            row = summarize(name, selection, method, [done[(method, i)] for i in chosen], ks)
            rows.append(row)
            print(" | ".join(str(v) for v in row.values()), file=sys.stderr, flush=True)
        _write_tables(rows, ks, out, f"flip_rates_{split}", command)
    return rows


def command_line(script: str, argv: Optional[Sequence[str]]) -> str:
    """The command that ran ``benchmarks/<script>`` with ``argv`` (None: this process's arguments)."""
    return " ".join([f"benchmarks/{script}"] + list(argv if argv is not None else sys.argv[1:]))


def write_and_print(out: str, filename: str, text: str) -> None:
    """Write a results file into ``out`` (created if missing) and print it."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, filename), "w") as handle:
        handle.write(text)
    print(text)


def results_header(command: str) -> str:
    """The first line of every results file: the command that made it, torch's version and threads."""
    return f"`{command}`, torch {torch.__version__}, {torch.get_num_threads()} threads"


def _write_tables(rows: List[Dict[str, Any]], ks: List[int], out: str, stem: str, command: str) -> None:
    table = _markdown(rows, ks)
    with open(os.path.join(out, f"{stem}.md"), "w") as handle:
        handle.write(f"{results_header(command)}\n\n{table}\n")
    with open(os.path.join(out, f"{stem}.csv"), "w", newline="") as handle:
        write_rows(handle, rows)


def _strides(values: Sequence[str]) -> Dict[str, int]:
    strides: Dict[str, int] = {}
    for value in values:
        name, _, k = value.rpartition("=")
        if not k.isdigit() or int(k) < 1:
            raise SystemExit(f"--stride takes K or MODEL=K with K a positive integer, got {value!r}")
        strides[name or "*"] = int(k)
    return strides


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="zoo models (default: percussion speech instruments; with --split, "
                        "every zoo model, instruments last)")
    parser.add_argument("--clips", type=int, default=2, help="shipped clips per model (default 2)")
    parser.add_argument("--methods", nargs="+", default=METHODS, help=f"any of {METHODS} or {list(SHORT)}")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--bands", type=int, default=256, help="log bands requested for FeatureAblation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--split", choices=["test", "train"], help="run over this held-out split of each model's data set")
    parser.add_argument("--data", default=os.path.join(REPO, "data"), help="built data sets for --split (default: data/)")
    parser.add_argument("--limit", type=int, help="with --split: the first N clips (after --stride)")
    parser.add_argument("--stride", nargs="+", default=[], metavar="[MODEL=]K", help="with --split: every K-th clip (of MODEL)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--summarize", action="store_true", help="with --split: tables from the records only, run nothing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [SHORT.get(m, m) for m in args.methods]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {METHODS} or {list(SHORT)}")
    if "FeatureAblation" in methods:  # its queries set everyone's budget
        methods = ["FeatureAblation"] + [m for m in methods if m != "FeatureAblation"]
    torch.manual_seed(args.seed)
    if args.models is None:
        from captum_freqrex import zoo

        args.models = (sorted(zoo.available(), key=lambda m: m == "instruments") if args.split
                       else ["percussion", "speech", "instruments"])
    if args.split:
        if args.limit is not None and args.limit < 1:
            parser.error(f"--limit must be at least 1, got {args.limit}")
        command = command_line("flip_rates.py", argv)
        rows = run_split(args.models, args.split, args.data, methods, args.ks, args.seed, args.bands,
                         _strides(args.stride), args.limit, args.out, command, args.summarize)
        print(_markdown(rows, args.ks))
        return 0
    rows = run(args.models, args.clips, methods, args.ks, args.seed, args.bands)
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "flip_rates.md"), "w") as handle:
        handle.write(f"{results_header(command_line('flip_rates.py', argv))}\n\n{table}\n")
    with open(os.path.join(args.out, "flip_rates.csv"), "w", newline="") as handle:
        write_rows(handle, rows, fieldnames=columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
