"""The ``freqrex`` command: ``demo``, ``explain`` and ``compare``.

Every failure the user can cause (missing file, unreadable or silent audio, unknown model) ends
with a one-line ``freqrex: error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch

from captum_freqrex import FreqReX
from captum_freqrex._core.explanation import Explanation
from captum_freqrex.compare import METHODS, compare_methods

DEMO_MODEL = "instruments"


class CliError(Exception):
    """A user error reported as one line."""


@dataclass
class _Model:
    model: Any
    name: str
    sample_rate: int
    num_samples: Optional[int]
    class_names: Optional[Tuple[str, ...]]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_model(name_or_path: str, sample_rate: Optional[int]) -> _Model:
    if os.path.isfile(name_or_path):
        try:
            model = torch.jit.load(name_or_path, map_location="cpu").eval()
        except Exception as error:
            raise CliError(f"cannot load {name_or_path} as a TorchScript model ({type(error).__name__})") from None
        return _Model(model, os.path.basename(name_or_path), sample_rate or 16000, None, None)
    from captum_freqrex import zoo

    try:
        loaded = zoo.load(name_or_path)
    except ValueError as error:
        raise CliError(str(error)) from None
    except ImportError as error:
        raise CliError(str(error)) from None
    return _Model(loaded.model, loaded.name, loaded.sample_rate, loaded.num_samples, tuple(loaded.class_names))


def _class_name(model: _Model, index: Optional[int]) -> Any:
    if index is None:
        return None
    if model.class_names and 0 <= index < len(model.class_names):
        return model.class_names[index]
    return index


def _parse_target(target: Optional[str], model: _Model) -> Optional[int]:
    if target is None:
        return None
    if target.isdigit():
        return int(target)
    if model.class_names and target in model.class_names:
        return model.class_names.index(target)
    choices = ", ".join(model.class_names or ())
    raise CliError(f"unknown target {target!r}; use a class index or one of: {choices}")


def write_result(
    explanation: Explanation, model: _Model, out_dir: str, clip_name: str, notes: Sequence[str] = ()
) -> dict:
    r"""Write an explanation's folder: WAVs, plots and ``summary.json``; return the summary.

    Args:
        explanation (Explanation): The explanation of one clip.
        model (_Model): The explained model and its metadata.
        out_dir (str): Folder to write into (created if missing).
        clip_name (str): Name of the clip, recorded in the summary.
        notes (sequence of str): What was done to the audio to fit the model.

    Returns:
        dict: The JSON summary.
    """
    from captum_freqrex.audio import save_explanation_wavs
    from captum_freqrex.plotting import plot_responsibility, plot_spectrograms

    import matplotlib

    matplotlib.use("Agg")
    os.makedirs(out_dir, exist_ok=True)
    rate = model.sample_rate
    wavs = save_explanation_wavs(explanation, out_dir, rate)
    fig = plot_responsibility(explanation, sample_rate=rate, class_names=list(model.class_names or []) or None)
    fig.savefig(os.path.join(out_dir, "responsibility.png"), dpi=110)
    signals = {"original": explanation.original_waveform()}
    for name, chosen in explanation.sets.items():
        if chosen is not None:
            signals[f"{name} kept ({chosen.size} features)"] = explanation.waveform(name)
    if explanation.sufficient_necessary is not None:
        signals["sufficient & necessary removed"] = explanation.waveform("sufficient_necessary", removed=True)
    fig = plot_spectrograms(signals, rate)
    fig.savefig(os.path.join(out_dir, "spectrograms.png"), dpi=110)
    import matplotlib.pyplot as plt

    plt.close("all")
    summary = explanation.summary()
    summary.update(
        {
            "model": model.name,
            "clip": clip_name,
            "sample_rate": rate,
            "target_name": _class_name(model, explanation.target),
            "original_class_name": _class_name(model, explanation.original.decided),
            "flip_class_name": _class_name(model, explanation.flip_class),
            "audio_notes": list(notes),
            "files": {key: os.path.basename(path) for key, path in wavs.items()}
            | {"responsibility_plot": "responsibility.png", "spectrograms_plot": "spectrograms.png"},
        }
    )
    with open(os.path.join(out_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def _human_summary(summary: dict, out_dir: str) -> str:
    sets = summary["sets"]
    lines = [
        f"model {summary['model']} on {summary['clip']}: decision {summary['original_class_name']!s} "
        f"(confidence {summary['original_confidence']:.2f})",
    ]
    labels = {"sufficient": "sufficient", "sufficient_necessary": "sufficient & necessary", "complete": "complete"}
    for key, label in labels.items():
        entry = sets.get(key)
        if entry is None:
            lines.append(f"  {label:24s} none found")
            continue
        status = "certified" if entry["certified"] else "NOT certified"
        extra = ""
        if key == "sufficient_necessary":
            extra = f"; removing it flips to {summary['flip_class_name']!s}"
        lines.append(f"  {label:24s} {entry['features']} features ({entry['bins']} bins), {status}{extra}")
    lines.append(
        f"  {summary['queries']} model queries in {summary['forward_calls']} calls, "
        f"{summary['total_seconds']:.1f} s ({summary['model_seconds']:.1f} s in the model)"
    )
    lines.append(f"results in {out_dir}/")
    return "\n".join(lines)


def _explain_one(model: _Model, waveform: torch.Tensor, target: Optional[int], seed: int) -> Explanation:
    explainer = FreqReX(model.model)
    with torch.inference_mode():
        return explainer.explain(waveform.unsqueeze(0), target=target, seed=seed)[0]


def _zoo_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("captum_freqrex.zoo") is not None


def _synthetic_demo(args: argparse.Namespace) -> int:
    from captum_freqrex._demo import SAMPLE_RATE, demo_model_and_clip

    start = time.perf_counter()
    _say("[1/3] the example-model zoo is not installed: using the synthetic note classifier")
    model, clip, names = demo_model_and_clip()
    wrapped = _Model(model, "synthetic-notes", SAMPLE_RATE, clip.shape[-1], names)
    _say(f"[2/3] explaining a {clip.shape[-1] / SAMPLE_RATE:.0f} s chord ({clip.shape[-1] // 2 + 1} frequency bins)")
    explanation = _explain_one(wrapped, clip, None, args.seed)
    _say(f"[3/3] writing WAVs, plots and summary.json to {args.out}")
    summary = write_result(explanation, wrapped, args.out, "synthetic chord")
    print(_human_summary(summary, args.out))
    _say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if not _zoo_available():
        return _synthetic_demo(args)
    from captum_freqrex import zoo

    start = time.perf_counter()
    _say(f"[1/3] loading the shipped '{args.model}' model and sample clip {args.clip}")
    model = _load_model(args.model, None)
    clips = zoo.sample_clips(args.model)
    if not 0 <= args.clip < len(clips):
        raise CliError(f"clip index {args.clip} out of range: '{args.model}' ships {len(clips)} clips")
    clip = clips[args.clip]
    seconds = clip.waveform.shape[-1] / clip.sample_rate
    _say(f"[2/3] explaining {clip.name} ({seconds:.0f} s at {clip.sample_rate} Hz, "
         f"{clip.waveform.shape[-1] // 2 + 1} frequency bins) with FreqReX")
    explanation = _explain_one(model, clip.waveform, None, args.seed)
    _say(f"[3/3] writing WAVs, plots and summary.json to {args.out}")
    summary = write_result(explanation, model, args.out, clip.name)
    summary["label"] = clip.label
    with open(os.path.join(args.out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    print(_human_summary(summary, args.out))
    _say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _read_audio(path: str, model: _Model) -> Any:
    """An audio file fitted to the model's rate and length; what was changed is said on stderr."""
    from captum_freqrex.audio import AudioError, load_audio

    try:
        audio = load_audio(path, model.sample_rate, model.num_samples)
    except AudioError as error:
        raise CliError(str(error)) from None
    for note in audio.notes:
        _say(f"{os.path.basename(path)}: {note}")
    return audio


def _cmd_explain(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.sample_rate)
    target = _parse_target(args.target, model)
    for path in args.audio:
        audio = _read_audio(path, model)
        out_dir = args.out if len(args.audio) == 1 else os.path.join(args.out, os.path.splitext(os.path.basename(path))[0])
        _say(f"explaining {path} ...")
        explanation = _explain_one(model, audio.waveform, target, args.seed)
        summary = write_result(explanation, model, out_dir, os.path.basename(path), audio.notes)
        print(_human_summary(summary, out_dir))
    return 0


def _compare_clips(args: argparse.Namespace, model: _Model) -> torch.Tensor:
    """The user's audio files, or the zoo model's first ``--clips`` shipped clips."""
    if args.audio:
        waves = [_read_audio(path, model).waveform for path in args.audio]
        lengths = {w.shape[-1] for w in waves}
        if len(lengths) > 1:
            raise CliError(
                f"the audio files have different lengths ({sorted(lengths)} samples); a TorchScript model "
                "compares clips of one length: trim or pad them to the same duration"
            )
        return torch.stack(waves)
    from captum_freqrex import zoo

    if model.num_samples is None:
        raise CliError("a TorchScript model has no shipped clips: pass audio files to compare on")
    return torch.stack([c.waveform for c in zoo.sample_clips(args.model)[: args.clips]])


def _cmd_compare(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.sample_rate)
    waves = _compare_clips(args, model)
    _say(f"comparing {len(args.methods) if args.methods else 'all'} methods on {waves.shape[0]} clip(s) "
         f"of {waves.shape[-1] / model.sample_rate:.1f} s ({waves.shape[-1] // 2 + 1} frequency bins)")
    table = compare_methods(
        model.model, waves, methods=args.methods, sample_rate=model.sample_rate, ks=args.ks,
        max_queries=args.max_queries, seed=args.seed, show_progress=True,
    )
    markdown_path, csv_path = table.save(args.out)
    print(table.to_markdown())
    _say(f"table written to {markdown_path} and {csv_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``freqrex`` command."""
    parser = argparse.ArgumentParser(
        prog="freqrex", description="Explain audio classifiers with causal responsibility in the frequency domain."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="explain a shipped clip with a shipped model (offline)")
    demo.add_argument("--model", default=DEMO_MODEL, help=f"zoo model (default: {DEMO_MODEL})")
    demo.add_argument("--clip", type=int, default=0, help="index of the shipped sample clip (default: 0)")
    demo.add_argument("--out", default="freqrex_out/demo", help="result folder (default: freqrex_out/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)
    explain = sub.add_parser("explain", help="explain audio files (WAV/FLAC/OGG)")
    explain.add_argument("audio", nargs="+", help="audio files")
    explain.add_argument("--model", required=True, help="zoo model name or TorchScript file")
    explain.add_argument("--target", help="class index or name to explain (default: the model's decision)")
    explain.add_argument("--out", default="freqrex_out/explain", help="result folder")
    explain.add_argument("--sample-rate", type=int, help="sample rate of a TorchScript model (default 16000)")
    explain.add_argument("--seed", type=int, default=0)
    explain.set_defaults(run=_cmd_explain)
    compare = sub.add_parser("compare", help="FreqReX vs Captum methods on the same frequency features")
    compare.add_argument("audio", nargs="*", help="audio files of one length (default: the model's shipped clips)")
    compare.add_argument("--model", default=DEMO_MODEL, help=f"zoo model name or TorchScript file (default: {DEMO_MODEL})")
    compare.add_argument("--clips", type=int, default=4, help="number of shipped clips without audio files (default 4)")
    compare.add_argument("--methods", nargs="*", default=None, choices=METHODS, help="method names (default: all)")
    compare.add_argument("--ks", type=int, nargs="+", default=[1, 5], help="top-k sizes of the flip rates (default 1 5)")
    compare.add_argument("--max-queries", type=int, default=1000, help="FreqReX's query budget per clip (default 1000)")
    compare.add_argument("--sample-rate", type=int, help="sample rate of a TorchScript model (default 16000)")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--out", default="freqrex_out/compare", help="result folder")
    compare.set_defaults(run=_cmd_compare)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``freqrex`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"freqrex: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a library failure: still one line, with its type
        print(f"freqrex: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
