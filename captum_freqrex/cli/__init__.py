"""The ``freqrex`` command: ``demo``, ``explain``, ``compare`` and ``explain-dataset``.

``explain-dataset`` lives in :mod:`captum_freqrex.corpus._cli`; this module registers it.
This module holds the parser, :func:`main` and the three commands' steps; what they share is in
``_common`` (options, model loading, baselines, safe writing), an explained clip's result folder
and printed summary in ``_explain``, the clips and files of ``compare`` in ``_compare``.

Every failure the user can cause (a bad option value, missing, unreadable, silent or absurdly loud
audio, an unknown or ambiguous model, a target that is not a class, a result folder that exists or
cannot be written, Ctrl-C, running out of memory) ends with a one-line ``freqrex: error: ...`` and
exit status 2, never a traceback. An unexpected failure inside the library ends with one line
naming its type and exit status 1.

The command never overwrites a file it did not create in the same run: every path it may write is
checked before any work, and an existing one stops it unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings as _warnings
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from captum_freqrex import FreqReX, FreqReXOptions, __version__
from captum_freqrex._explanation import Explanation
from captum_freqrex._core.model.outputs import NonFiniteScoresError, OutputSelector
from captum_freqrex._core.model.oracle import raised_by_model
from captum_freqrex.cli._common import (
    DEMO_MODEL,
    ZOO_PREFIX,
    Baseline,
    CliError,
    LoadedModel,
    add_common_options,
    add_output_option,
    add_explanations_option,
    add_rows_option,
    add_complete_tolerance_option,
    add_search_options,
    check_out,
    check_output,
    input_files,
    load_model,
    load_zoo,
    parse_baseline,
    parse_clip_index,
    parse_count,
    parse_sample_rate,
    parse_target,
    say,
    zoo_available,
)
from captum_freqrex.cli._compare import COMPARE_FILES, compare_baselines, compare_clips, save_table
from captum_freqrex.cli._explain import (
    AUDIO_CHOICES,
    result_files,
    baseline_record,
    explained_clips,
    human_summary,
    result_folder_names,
    write_result,
)
from captum_freqrex.compare import METHODS, compare_methods
from captum_freqrex.report import AUDIO_MODES

__all__ = ["main", "build_parser", "CliError", "check_out", "write_result", "result_folder_names"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``freqrex: error: ...`` line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"freqrex: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------- explaining


def _read_audio(path: str, model: LoadedModel, channel: Optional[int] = None) -> Any:
    """An audio file (or one of its channels) fitted to the model's rate and length; changes are said on stderr."""
    from captum_freqrex.audio import AudioError, load_audio

    try:
        audio = load_audio(path, model.sample_rate, model.num_samples, channel=channel, pad_short=model.pad_short_clips)
    except AudioError as error:
        raise CliError(str(error)) from None
    for note in audio.notes:
        say(f"{os.path.basename(path)}: {note}")
    return audio


def _explain_one(
    model: LoadedModel,
    waveform: Tensor,
    target: Optional[int],
    seed: int,
    baseline: Optional[Tensor] = None,
    max_queries: int = 1000,
    *,
    bands: Optional[int] = None,
    mode: str = "sufficient",
    search: Optional[str] = None,
    output: OutputSelector = None,
    n_explanations: int = 1,
    rows_per_call: Optional[int] = None,
    complete_tolerance: float = 0.05,
) -> Explanation:
    check_output(model, waveform.unsqueeze(0), output)
    explainer = FreqReX(model.model, search=search, output=output)
    baselines = None if baseline is None else baseline.unsqueeze(0)
    feature_mask = None
    if bands is not None:
        from captum_freqrex import log_bands

        try:
            feature_mask = log_bands(waveform.shape[-1], bands, sample_rate=model.sample_rate)
        except ValueError as error:
            raise CliError(f"--bands {bands}: {error}") from None
    with _warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        _warnings.simplefilter("always")
        try:
            try:
                options = FreqReXOptions(seed=seed, max_queries=max_queries, mode=mode, n_explanations=n_explanations,
                                         perturbations_per_eval=rows_per_call, complete_tolerance=complete_tolerance)
            except ValueError as error:
                raise CliError(f"--explanations {n_explanations}: {error}") from None
            explanation = explainer.explain(
                waveform.unsqueeze(0), baselines=baselines, target=target, feature_mask=feature_mask, options=options,
            )[0]
        except ValueError as error:
            if target is not None and "target" in str(error):
                raise CliError(f"--target {target}: {error}") from None
            if isinstance(error, NonFiniteScoresError):  # the model's failing, not the library's
                raise CliError(f"--model {model.name}: {error}") from None
            raise
    for caught_warning in caught:  # the ones already in the explanation are printed with it
        text = str(caught_warning.message)
        if text not in getattr(explanation, "warnings", []):
            say(f"freqrex: warning: {text}")
    return explanation


def _explain_and_write(
    model: LoadedModel,
    waveform: Tensor,
    args: argparse.Namespace,
    target: Optional[int],
    baseline: Baseline,
    out_dir: str,
    clip_name: str,
    display_name: str,
    notes: Sequence[str] = (),
    extra: Optional[Dict[str, Any]] = None,
    announce: Optional[str] = None,
    source: Any = None,
) -> None:
    base_wave, record = baseline.for_clip(waveform, model.sample_rate)
    record["description"] = baseline.describe()
    explanation = _explain_one(
        model, waveform, target, args.seed, base_wave, args.max_queries,
        bands=getattr(args, "bands", None), mode=getattr(args, "mode", "sufficient"),
        search=getattr(args, "search", None), output=getattr(args, "output", None),
        n_explanations=getattr(args, "explanations", 1), rows_per_call=getattr(args, "rows_per_call", None),
        complete_tolerance=getattr(args, "complete_tolerance", 0.05),
    )
    if announce:
        say(announce)
    extra = dict(extra or {}, baseline=baseline_record(explanation, model, record))
    summary = write_result(
        explanation, model, out_dir, clip_name, notes, extra=extra, overwrite=args.overwrite,
        html=getattr(args, "html", False), html_audio=getattr(args, "html_audio", "embed"), source=source,
        audio=args.audio_files, bins_csv=args.bins_csv,
    )
    print(human_summary(summary, out_dir, display_name, target is not None, model.class_names))


def _synthetic_demo(args: argparse.Namespace) -> int:
    from captum_freqrex._demo import SAMPLE_RATE, demo_model_and_clip

    start = time.perf_counter()
    check_out(args.out, result_files(args.explanations), args.overwrite, input_files(args))
    say("[1/3] the example-model zoo is not installed: using the synthetic note classifier")
    model, clip, names = demo_model_and_clip()
    wrapped = LoadedModel(model, "synthetic-notes", SAMPLE_RATE, clip.shape[-1], names)
    baseline = parse_baseline(args.baseline, wrapped, args.seed)
    say(f"[2/3] explaining a {clip.shape[-1] / SAMPLE_RATE:.0f} s chord ({clip.shape[-1] // 2 + 1} frequency bins)")
    _explain_and_write(
        wrapped, clip, args, None, baseline, args.out, "synthetic chord", "synthetic chord",
        announce=f"[3/3] writing audio, plots and summary.json to {args.out}",
    )
    say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if not zoo_available():
        return _synthetic_demo(args)
    from captum_freqrex import zoo

    start = time.perf_counter()
    check_out(args.out, result_files(args.explanations), args.overwrite, input_files(args))
    name = args.model[len(ZOO_PREFIX) :] if args.model.startswith(ZOO_PREFIX) else args.model
    say(f"[1/3] loading the shipped '{name}' model and sample clip {args.clip}")
    model = load_zoo(name)
    clips = zoo.sample_clips(name)
    if not 0 <= args.clip < len(clips):
        raise CliError(f"clip index {args.clip} out of range: '{name}' ships {len(clips)} clips")
    clip = clips[args.clip]
    baseline = parse_baseline(args.baseline, model, args.seed)
    seconds = clip.waveform.shape[-1] / clip.sample_rate
    say(f"[2/3] explaining {clip.name} ({seconds:.0f} s at {clip.sample_rate} Hz, "
        f"{clip.waveform.shape[-1] // 2 + 1} frequency bins) with FreqReX")
    _explain_and_write(
        model, clip.waveform, args, None, baseline, args.out, clip.name, clip.name, extra={"label": clip.label},
        announce=f"[3/3] writing audio, plots and summary.json to {args.out}",
    )
    say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    clips = explained_clips(args.audio, args.out, args.per_channel)
    if len(args.audio) > 1:
        check_out(args.out, (), args.overwrite)
    inputs = input_files(args)
    for _, _, folder in clips:
        check_out(folder, result_files(args.explanations), args.overwrite, inputs)
    for path in args.audio:
        if not os.path.isfile(path):
            raise CliError(f"no such audio file: {path}")
    model = load_model(args.model, args.sample_rate)
    target = parse_target(args.target, model)
    baseline = parse_baseline(args.baseline, model, args.seed)
    for path, channel, out_dir in clips:
        audio = _read_audio(path, model, channel)
        where = path if channel is None else f"{path} channel {channel + 1}"
        say(f"explaining {where} ...")
        clip_name = os.path.basename(path) + ("" if channel is None else f" channel {channel + 1}")
        extra: Dict[str, Any] = {"source": os.path.abspath(path)}
        if channel is not None:
            extra["channel"] = channel + 1
        _explain_and_write(
            model, audio.waveform, args, target, baseline, out_dir, clip_name, where, audio.notes, extra=extra,
            source=audio,
        )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    inputs = input_files(args)
    check_out(args.out, COMPARE_FILES, args.overwrite, inputs)
    model = load_model(args.model, args.sample_rate)
    baseline = parse_baseline(args.baseline, model, args.seed)
    waves = compare_clips([_read_audio(path, model).waveform for path in args.audio], model, args.clips)
    check_output(model, waves[:1], args.output)
    baselines = compare_baselines(baseline, waves, model.sample_rate)
    say(f"comparing {len(args.methods) if args.methods else 'all'} methods on {waves.shape[0]} clip(s) "
        f"of {waves.shape[-1] / model.sample_rate:.1f} s ({waves.shape[-1] // 2 + 1} frequency bins)")
    table = compare_methods(
        model.model, waves, methods=args.methods, baselines=baselines, sample_rate=model.sample_rate, ks=args.ks,
        max_queries=args.max_queries, seed=args.seed, show_progress=True, output=args.output, budget=args.budget,
        **_rows_per_call_of_compare(args.rows_per_call),
    )
    table.notes.append(f"baseline: {baseline.describe()}")
    check_out(args.out, COMPARE_FILES, args.overwrite, inputs)  # again: the comparison took a while
    markdown_path, csv_path = save_table(table, args.out)
    print(table.to_markdown())
    say(f"table written to {markdown_path} and {csv_path}")
    return 0


def _rows_per_call_of_compare(rows_per_call: Optional[int]) -> Dict[str, Any]:
    # One cap for every model call of the comparison: Captum's and shap's methods, the metrics, FreqReX.
    if rows_per_call is None:
        return {}
    return {"perturbations_per_eval": rows_per_call, "max_examples_per_batch": rows_per_call}


# ----------------------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``freqrex`` command."""
    parser = _Parser(
        prog="freqrex", description="Explain audio classifiers with causal responsibility in the frequency domain."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_demo(sub)
    _add_explain(sub)
    _add_compare(sub)
    from captum_freqrex.corpus._cli import add_parser as add_dataset_parser

    add_dataset_parser(sub)  # explain-dataset: captum_freqrex/corpus/_cli.py, dispatched through run= like the rest
    return parser


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="explain a shipped clip with a shipped model (offline)")
    demo.add_argument("--model", default=DEMO_MODEL, help=f"zoo model (default: {DEMO_MODEL})")
    demo.add_argument("--clip", type=parse_clip_index, default=0, help="index of the shipped sample clip (default: 0)")
    demo.add_argument("--html", action="store_true", help="also write report.html, a self-contained HTML report")
    _add_result_options(demo)
    add_common_options(demo, "freqrex_out/demo")
    add_search_options(demo)
    add_explanations_option(demo)
    add_complete_tolerance_option(demo)
    add_rows_option(demo)
    demo.set_defaults(run=_cmd_demo)


def _add_explain(sub: Any) -> None:
    explain = sub.add_parser("explain", help="explain audio files (WAV/FLAC/OGG)")
    explain.add_argument("audio", nargs="+", help="audio files")
    explain.add_argument(
        "--model", required=True,
        help="zoo model name (or zoo:NAME), TorchScript file, or package.module:callable (a model, or a "
        "function or class making one; optional attributes sample_rate, num_samples, class_names)",
    )
    explain.add_argument("--target", help="class index or name to explain (default: the model's decision)")
    explain.add_argument(
        "--sample-rate", type=parse_sample_rate,
        help="sample rate of a TorchScript or module:callable model (default: its sample_rate, else 16000)",
    )
    explain.add_argument("--html", action="store_true", help="also write report.html, a self-contained HTML report")
    explain.add_argument("--html-audio", choices=AUDIO_MODES, default="embed",
                         help="report.html's audio: embedded (one file, ~9 MB for 30 s) or linked WAVs in report_files/")
    _add_result_options(explain)
    explain.add_argument(
        "--per-channel", action="store_true",
        help="explain each channel of a multi-channel file on its own, into channel-1, channel-2, ... of its "
        "result folder (default: mix the channels down to mono)",
    )
    add_common_options(explain, "freqrex_out/explain")
    add_search_options(explain)
    add_explanations_option(explain)
    add_complete_tolerance_option(explain)
    add_rows_option(explain)
    add_output_option(explain)
    explain.set_defaults(run=_cmd_explain)


def _add_result_options(parser: argparse.ArgumentParser) -> None:
    """``--audio-files`` and ``--bins-csv``: which of the large result files to write."""
    parser.add_argument(
        "--audio-files", choices=AUDIO_CHOICES, default="sets",
        help="audio written: sets (default), each set kept alone as a 16-bit FLAC listening copy "
        "(NAME.listen.flac); all, also the true-level 32-bit float WAVs (original.wav, NAME.wav, "
        "NAME_removed.wav, exactly what the model heard) and 16-bit WAV listening copies of each; none",
    )
    parser.add_argument(
        "--bins-csv", action="store_true",
        help="also write bins.csv, one row per frequency bin (about 20 MB per minute of audio at 16 kHz)",
    )


def _add_compare(sub: Any) -> None:
    compare = sub.add_parser("compare", help="FreqReX vs Captum methods on the same frequency features")
    compare.add_argument("audio", nargs="*", help="audio files of one length (default: the model's shipped clips)")
    compare.add_argument(
        "--model", default=ZOO_PREFIX + DEMO_MODEL,
        help="zoo model name (or zoo:NAME), TorchScript file or package.module:callable "
        f"(default: the zoo's {DEMO_MODEL})",
    )
    compare.add_argument(
        "--clips", type=parse_count, default=4, help="number of shipped clips without audio files (default 4)"
    )
    compare.add_argument("--methods", nargs="*", default=None, choices=METHODS, help="method names (default: all)")
    compare.add_argument(
        "--ks", type=parse_count, nargs="+", default=[1, 5], help="top-k sizes of the flip rates (default 1 5)"
    )
    compare.add_argument(
        "--budget", type=parse_count, default=None, metavar="N",
        help="samples per clip of KernelShap, Lime and ShapleyValueSampling (default: FreqReX's queries on each clip)",
    )
    compare.add_argument(
        "--sample-rate", type=parse_sample_rate, help="sample rate of a TorchScript model (default 16000)"
    )
    add_common_options(compare, "freqrex_out/compare")
    add_output_option(compare)
    add_rows_option(compare)
    compare.set_defaults(run=_cmd_compare)


#: What torch, MKL and CUDA say when an allocation fails (a RuntimeError, not a MemoryError).
OUT_OF_MEMORY_SIGNS = ("Not enough memory", "can't allocate memory", "out of memory")


def main(argv: Optional[List[str]] = None) -> int:
    r"""Entry point of the ``freqrex`` command.

    Args:
        argv (list of str, optional): The arguments after ``freqrex``. Default: ``sys.argv[1:]``

    Returns:
        int: The exit status: 0 on success, 2 for anything the user can fix (one line
        ``freqrex: error: ...`` on stderr), 1 for an unexpected failure inside the library.
        Usage errors (a bad option value) exit with status 2 from the parser, before any work.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"freqrex: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freqrex: error: interrupted", file=sys.stderr)
        return 2
    except MemoryError as error:
        print(f"freqrex: error: out of memory: {error or 'the clip is too long for this machine'}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if not any(sign in str(error) for sign in OUT_OF_MEMORY_SIGNS):
            return _failed(error)
        # Memory ran out inside the FFT library or the model, past the up-front estimate.
        print(f"freqrex: error: out of memory inside the FFT or the model ({str(error).splitlines()[0]}): explain "
              "a shorter clip, or free memory (ulimit -v and container limits count)", file=sys.stderr)
        return 2
    except Exception as error:
        return _failed(error)


def _failed(error: Exception) -> int:
    # One line either way: status 2 where the model itself raised (the user's to fix, with the
    # notes FreqReX added: a dtype, a device, one waveform a call), 1 for a failure of the library.
    text = " ".join(str(error).split())
    if raised_by_model(error):
        notes = "".join(f"; {' '.join(note.split())}" for note in getattr(error, "__notes__", []))
        print(f"freqrex: error: the model failed on FreqReX's waveforms: {type(error).__name__}: {text}{notes}",
              file=sys.stderr)
        return 2
    print(f"freqrex: error: {type(error).__name__}: {text}", file=sys.stderr)
    return 1
