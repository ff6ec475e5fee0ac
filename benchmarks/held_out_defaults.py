"""The default explanation on held-out clips: what it spends, which way it took, and its three sets.

``FreqReX(model).explain(clip, seed=s)`` with no other option, on every K-th clip of a zoo model's
held-out split (built into ``--data`` by ``scripts/build_datasets.py``) and for each seed given:
the queries of the whole explanation and of its search, the strategy the default took and why it
stopped, and the size and level (loudest bin relative to the clip's, dB) of the sufficient, the
sufficient-and-necessary and the complete set. The summary gives medians and counts: sets flagged
far below the clip's level (more than 20 dB), sets over half the features. Run it at two commits
to compare defaults on clips they were not tuned on; the records (one JSON line per clip and seed)
resume an interrupted run.

With ``--files``, the clips are audio files as users bring them instead (any rate, stereo,
shorter or longer than the model's input), loaded as ``freqrex explain`` loads them: mixed down,
resampled, cropped or padded to the model (``pad_short_clips`` honoured). Each record then also
says whether every set was certified and the flags ``summary()`` raised; a file that cannot be
loaded, or whose explanation fails, is recorded with its error (the run goes on). The results go to
``held_out_defaults_<model>_files.{jsonl,md}``.

Usage::

    .venv/bin/python benchmarks/held_out_defaults.py --model instruments --stride 7 --seeds 0 1 --threads 1
    .venv/bin/python benchmarks/held_out_defaults.py --model percussion --stride 4 --out /tmp/defaults
    .venv/bin/python benchmarks/held_out_defaults.py --model percussion --threads 1 --stride 9 \
        --files /usr/share/hydrogen/data/drumkits/*/*.wav /usr/share/hydrogen/data/drumkits/*/*.flac \
            /usr/share/sonic-pi/samples/drum_*.flac
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (held-out loading, records, the results header)

from captum_freqrex import FreqReX, zoo  # noqa: E402
from captum_freqrex.audio import load_audio  # noqa: E402
from captum_freqrex._explanation.informative import MIN_LEVEL_DB  # noqa: E402

SETS = ("sufficient", "sufficient_necessary", "complete")


def explain_record(model: Any, clip: torch.Tensor, seed: int) -> Dict[str, Any]:
    r"""The default explanation of one clip, as a JSON-serialisable record.

    Args:
        model (Any): The classifier (waveforms ``(N, T)`` to scores).
        clip (Tensor): ``(1, T)`` waveform.
        seed (int): ``explain``'s seed.

    Returns:
        dict: ``queries``, ``search_queries``, ``strategy``, ``stopped_by``, ``seconds`` and per set
        ``size``, ``share`` of the features and ``level_db`` (None for a set not found).
    """
    explainer = FreqReX(model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = explainer.explain(clip, seed=seed)[0]
    seconds = time.perf_counter() - start
    search = explainer.last_search[0]
    n = expl.feature_responsibility.numel()
    sets = {}
    for name in SETS:
        found = getattr(expl, name)
        sets[name] = None if found is None else {
            "size": found.size, "share": found.size / n,
            "level_db": None if found.level_db == float("-inf") else round(found.level_db, 2),
        }
    flags = sorted({f"{entry['set']}: {entry['flag']}" for entry in expl.summary()["flags"]})
    return {"queries": expl.stats.queries, "search_queries": search.queries, "strategy": search.details.get("strategy"),
            "stopped_by": search.stopped_by, "seconds": round(seconds, 3), "sets": sets,
            "certified": expl.certified, "flags": flags}


def file_record(model: zoo.ZooModel, path: str, seed: int) -> Dict[str, Any]:
    r"""The default explanation of one audio file, loaded as ``freqrex explain`` loads it, or the
    error that stopped it (``{"error": ...}``)."""
    try:
        loaded = load_audio(path, model.sample_rate, model.num_samples, pad_short=model.pad_short_clips)
        return explain_record(model.model, loaded.waveform.reshape(1, -1), seed)
    except Exception as error:  # a finding, not the end of the run
        return {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"}


def summarize(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    r"""One row per set: median size, share and level, and how many are flagged, over the records
    (those that ended in an error are left out: :func:`_markdown` counts them)."""
    records = [r for r in records if "error" not in r]
    rows = []
    for name in SETS:
        found = [r["sets"][name] for r in records if r["sets"][name] is not None]
        levels = [s["level_db"] for s in found if s["level_db"] is not None]
        rows.append({
            "set": name, "found": len(found), "runs": len(records),
            "median_size": statistics.median(s["size"] for s in found) if found else None,
            "median_share": statistics.median(s["share"] for s in found) if found else None,
            "median_level_db": statistics.median(levels) if levels else None,
            "below_clip_level": sum(1 for s in found if s["level_db"] is not None and s["level_db"] < MIN_LEVEL_DB),
            "over_half": sum(1 for s in found if s["share"] > 0.5),
            "median_queries": statistics.median(r["queries"] for r in records) if records else None,
            "median_search_queries": statistics.median(r["search_queries"] for r in records) if records else None,
        })
    return rows


def _markdown(rows: List[Dict[str, Any]], records: List[Dict[str, Any]]) -> str:
    def cell(value: Any, form: str) -> str:
        return "-" if value is None else form.format(value)

    lines = ["| set | found | median size (bins) | median share | median level (dB) | below -20 dB | over half the features |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['found']}/{r['runs']} | {cell(r['median_size'], '{:,.0f}')} | "
                     f"{cell(None if r['median_share'] is None else 100 * r['median_share'], '{:.2f}%')} | "
                     f"{cell(r['median_level_db'], '{:.1f}')} | {r['below_clip_level']} | {r['over_half']} |")
    failed = [r for r in records if "error" in r]
    explained = [r for r in records if "error" not in r]
    strategies: Dict[str, int] = {}
    for r in explained:
        strategies[r["strategy"]] = strategies.get(r["strategy"], 0) + 1
    first = rows[0] if rows else {}
    lines += ["", f"Median queries: {cell(first.get('median_queries'), '{:,.0f}')} "
                  f"(search {cell(first.get('median_search_queries'), '{:,.0f}')}); strategies: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(strategies.items(), key=lambda kv: -kv[1]))]
    if any("certified" in r for r in explained):
        seconds = [r["seconds"] for r in explained]
        lines += ["", f"Certified (every set found and held): {sum(bool(r.get('certified')) for r in explained)} "
                      f"of {len(explained)}; failed: {len(failed)}; seconds: median {cell(statistics.median(seconds) if seconds else None, '{:.2f}')}, "
                      f"most {cell(max(seconds) if seconds else None, '{:.2f}')}"]
    lines += ["", "| clip | seed | queries (search / all) | strategy | stopped | sufficient | sufficient-and-necessary | complete | flags |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['clip']} | {r['seed']} | error: {r['error']} | | | | | | |")
            continue
        sets = [("-" if r["sets"][k] is None else f"{r['sets'][k]['size']:,} ({cell(r['sets'][k]['level_db'], '{:.1f}')} dB)")
                for k in SETS]
        lines.append(f"| {r['clip']} | {r['seed']} | {r['search_queries']} / {r['queries']} | {r['strategy']} | "
                     f"{r['stopped_by']} | " + " | ".join(sets) + f" | {'; '.join(r.get('flags', []))} |")
    return "\n".join(lines)


def _without_files(argv: Optional[List[str]], files: Optional[List[str]]) -> List[str]:
    # The command for the results' header with the file list (thousands of paths, as the shell
    # expanded the globs) said in a few words: how many files, in how many folders, under which.
    argv = list(argv if argv is not None else sys.argv[1:])
    if not files:
        return argv
    folders = sorted({os.path.dirname(os.path.abspath(path)) for path in files})
    under = os.path.commonpath(folders) if folders else ""
    listed = set(files)
    kept = [a for a in argv if a not in listed]
    at = kept.index("--files") + 1
    return [*kept[:at], f"<{len(files)} files in {len(folders)} folders under {under}>", *kept[at:]]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="instruments", help="zoo model (its held-out test split)")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets (default: data/)")
    parser.add_argument("--stride", type=int, help="every K-th clip (default 7; every file with --files)")
    parser.add_argument("--limit", type=int, help="the first N clips (after --stride)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="explain's seeds (default 0)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--out", default=os.path.join(flip_rates.REPO, "benchmarks", "results"))
    parser.add_argument("--files", nargs="+", help="audio files to explain instead of the held-out split "
                        "(loaded as freqrex explain loads them; every K-th of them sorted, with --stride)")
    args = parser.parse_args(argv)
    if args.stride is None:
        args.stride = 1 if args.files else 7
    if args.stride < 1:
        parser.error(f"--stride must be a positive integer, got {args.stride}")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    if args.files:
        loaded = zoo.load(args.model)
        paths = sorted(args.files)
        chosen, selection = flip_rates._selection(len(paths), args.stride, args.limit)
        stem = os.path.join(args.out, f"held_out_defaults_{args.model}_files")
        # A file is its path's last two parts (a drum kit's folder and the sample), the key to resume by.
        names = [os.path.join(*os.path.normpath(path).split(os.sep)[-2:]) for path in paths]

        def explain_clip(i: int, seed: int) -> Dict[str, Any]:
            return {"clip": names[i], "seed": seed, "source": paths[i], **file_record(loaded, paths[i], seed)}
    else:
        model, data = flip_rates.load_held_out(args.model, "test", args.data)
        chosen, selection = flip_rates._selection(len(data.labels), args.stride, args.limit)
        stem = os.path.join(args.out, f"held_out_defaults_{args.model}")
        names = list(range(len(data.labels)))

        def explain_clip(i: int, seed: int) -> Dict[str, Any]:
            return {"clip": i, "seed": seed, "source": data.sources[i], **explain_record(model, data.waveforms[i : i + 1], seed)}
    # A record that ended in an error is asked again (the error may have been mended since).
    done = {(r["clip"], r["seed"]): r for r in flip_rates.read_records(stem + ".jsonl") if "error" not in r}
    records = []
    for i in chosen:
        for seed in args.seeds:
            record = done.get((names[i], seed))
            if record is None:
                record = explain_clip(i, seed)
                flip_rates.append_record(stem + ".jsonl", record)
                said = record["error"] if "error" in record else f"{record['queries']} queries, {record['strategy']}"
                print(f"{args.model} clip {names[i]} seed {seed}: {said}", file=sys.stderr, flush=True)
            records.append(record)
    header = flip_rates.results_header(flip_rates.command_line("held_out_defaults.py", _without_files(argv, args.files)))
    table = _markdown(summarize(records), records)
    with open(stem + ".md", "w") as handle:
        handle.write(f"{header}\n\n{args.model}, {selection}, seeds {args.seeds}\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
