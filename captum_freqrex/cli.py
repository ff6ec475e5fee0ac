"""The ``freqrex`` command: ``demo``, ``explain``, ``compare`` and ``explain-dataset``.

``explain-dataset`` lives in :mod:`captum_freqrex.corpus._cli`; this module registers it.

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
import json
import os
import re
import sys
import time
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex import FreqReX, __version__
from captum_freqrex._core.explanation import SET_NAMES, Explanation
from captum_freqrex._core.freqrex import MAX_SEED
# The generated baselines (anything else given to --baseline is an audio file) and their noise level.
from captum_freqrex.audio import BASELINE_KINDS, NOISE_LEVEL_DB
from captum_freqrex._core.model.querier import OutputSelector, check_model_outputs, check_output_selector
from captum_freqrex.compare import METHODS, compare_methods

DEMO_MODEL = "instruments"

#: Prefix that names a zoo model even when a file or folder of that name exists here.
ZOO_PREFIX = "zoo:"

#: ``--model package.module:callable`` (dotted names on both sides of one colon).
CALLABLE_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: ``--search`` choices (see :class:`FreqReX`'s ``search=``).
SEARCHES = ("refinement", "interleaved", "energy", "adaptive", "band_screening")


#: Smallest FreqReX query budget: one refinement step of the default 4 pieces (2**4 - 1 mutants).
MIN_MAX_QUERIES = 15

#: Every file a result folder of ``demo`` or ``explain`` may hold (which set WAVs a run writes is
#: known only after the search, so all of them are checked beforehand).
RESULT_FILES: Tuple[str, ...] = (
    "summary.json",
    "bins.csv",
    "report.html",
    "responsibility.png",
    "spectrograms.png",
    "original.wav",
) + tuple(
    f"{name}{suffix}{ending}"
    for name in SET_NAMES
    for suffix in ("", "_removed")
    for ending in (".wav", ".listen.wav")
)

#: The files ``compare`` writes.
COMPARE_FILES: Tuple[str, ...] = ("compare.md", "compare.csv")


class CliError(Exception):
    """A user error reported as one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``freqrex: error: ...`` line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"freqrex: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


@dataclass
class _Model:
    model: Any
    name: str
    sample_rate: int
    num_samples: Optional[int]
    class_names: Optional[Tuple[str, ...]]
    zoo_name: Optional[str] = None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- option values


def _int_option(low: int, high: Optional[int] = None, why: str = "") -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in ``[low, high]``; ``why`` explains the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}{why}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


_SEED = _int_option(0, MAX_SEED, " (2**63 - 1, a 64-bit generator seed)")
_SAMPLE_RATE = _int_option(1, None, " (a sample rate in Hz)")
_COUNT = _int_option(1)
_CLIP_INDEX = _int_option(0)
_MAX_QUERIES = _int_option(MIN_MAX_QUERIES, None, " (one FreqReX refinement step takes 15 queries)")


def _output_option(text: str) -> OutputSelector:
    """``--output KEY``: an integer is a tuple index, anything else a key or attribute name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a key or attribute name, or a tuple index, got an empty string")
    return check_output_selector(int(text) if re.fullmatch(r"[+-]?\d+", text) else text)


# ----------------------------------------------------------------------------- model and target


def _zoo_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("captum_freqrex.zoo") is not None


def _zoo_names() -> List[str]:
    if not _zoo_available():
        return []
    from captum_freqrex import zoo

    return zoo.available()


def _load_zoo(name: str) -> _Model:
    try:
        from captum_freqrex import zoo

        loaded = zoo.load(name)
    except (ValueError, ImportError) as error:
        raise CliError(str(error)) from None
    return _Model(
        loaded.model, loaded.name, loaded.sample_rate, loaded.num_samples, tuple(loaded.class_names), loaded.name
    )


def _model_attribute(spec: str, holders: Sequence[Any], name: str, check: Callable[[Any], Any]) -> Any:
    """The first ``name`` attribute found on ``holders`` (model, then module), checked; None if none."""
    for holder in holders:
        value = getattr(holder, name, None)
        if value is not None:
            try:
                return check(value)
            except (TypeError, ValueError) as error:
                raise CliError(f"--model {spec}: its {name} {value!r} is invalid ({error})") from None
    return None


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError("expected a positive integer")
    return int(value)


def _names(value: Any) -> Tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected a sequence of class names, not one string")
    return tuple(str(name) for name in value)


def _is_factory(obj: Any) -> bool:
    """A class, or a function callable without arguments, is called to make the model."""
    import inspect

    if isinstance(obj, type):
        return True
    if isinstance(obj, torch.nn.Module) or not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        return False
    try:
        inspect.signature(obj).bind()
    except TypeError:
        return False
    return True


def _load_callable(spec: str, sample_rate: Optional[int]) -> _Model:
    r"""Load ``--model package.module:callable``.

    The module is imported (from ``sys.path``, so the current folder or ``PYTHONPATH``) and the
    dotted name after the colon looked up in it. A class, or a function that can be called without
    arguments, is called to make the model; an ``nn.Module`` instance or a function of waveforms is the model
    itself. The model maps waveforms ``(batch, time)`` to scores ``(batch, classes)`` (a tensor, or
    a Hugging Face ``ModelOutput``, dict or tuple holding the logits, see FreqReX's ``output=``).
    Optional attributes of the model, else of the module: ``sample_rate`` (Hz; ``--sample-rate``
    overrides it, default 16000), ``num_samples`` (the input length clips are fitted to) and
    ``class_names`` (printed instead of class numbers, and accepted by ``--target``).
    """
    import importlib

    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        where = "" if missing == module_name else f" (needed by {module_name})"
        raise CliError(f"--model {spec}: no module named {missing!r}{where}; is its folder on PYTHONPATH?") from None
    except Exception as error:
        raise CliError(f"--model {spec}: importing {module_name} failed ({type(error).__name__}: {error})") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise CliError(f"--model {spec}: {module_name} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CliError(
            f"--model {spec}: {attribute} is of type {type(obj).__name__}, not a model or a function making one"
        )
    model = obj
    if _is_factory(obj):
        try:
            model = obj()
        except Exception as error:
            raise CliError(f"--model {spec}: calling {attribute}() failed ({type(error).__name__}: {error})") from None
        if not callable(model):
            raise CliError(
                f"--model {spec}: {attribute}() returned an object of type {type(model).__name__}, not a model "
                "(a callable mapping (batch, time) waveforms to scores)"
            )
    if isinstance(model, torch.nn.Module):
        model = model.eval()
    holders = (model, module)
    rate = sample_rate or _model_attribute(spec, holders, "sample_rate", _positive_int) or 16000
    num_samples = _model_attribute(spec, holders, "num_samples", _positive_int)
    class_names = _model_attribute(spec, holders, "class_names", _names)
    return _Model(model, spec, rate, num_samples, class_names)


def _load_model(name_or_path: str, sample_rate: Optional[int]) -> _Model:
    r"""Load ``--model``: ``zoo:NAME``, a zoo name, a TorchScript file, or ``package.module:callable``.

    A bare zoo name that is also a file or folder here is ambiguous and refused; ``./NAME`` picks
    the file, ``zoo:NAME`` the zoo model. ``module:callable`` is described in :func:`_load_callable`.
    """
    if name_or_path.startswith(ZOO_PREFIX):
        return _load_zoo(name_or_path[len(ZOO_PREFIX) :])
    if CALLABLE_SPEC.match(name_or_path) and not os.path.lexists(name_or_path):
        return _load_callable(name_or_path, sample_rate)
    if name_or_path in _zoo_names() and os.path.lexists(name_or_path):
        kind = "folder" if os.path.isdir(name_or_path) else "file"
        raise CliError(
            f"--model {name_or_path} is ambiguous: a {kind} {name_or_path} exists here and "
            f"{name_or_path!r} is also a zoo model; pass ./{name_or_path} for the {kind}, or "
            f"{ZOO_PREFIX}{name_or_path} for the zoo model"
        )
    if os.path.isdir(name_or_path):
        raise CliError(f"--model {name_or_path} is a folder, not a TorchScript model file")
    if os.path.isfile(name_or_path):
        try:
            model = torch.jit.load(name_or_path, map_location="cpu").eval()
        except Exception as error:
            raise CliError(f"cannot load {name_or_path} as a TorchScript model ({type(error).__name__})") from None
        return _Model(model, os.path.basename(name_or_path), sample_rate or 16000, None, None)
    zoo_names = _zoo_names()
    looks_like_path = os.sep in name_or_path or bool(os.altsep and os.altsep in name_or_path)
    if name_or_path not in zoo_names and (looks_like_path or "." in name_or_path):
        known = f"; zoo models: {', '.join(zoo_names)}" if zoo_names else ""
        raise CliError(f"no such model file: {name_or_path}{known}")
    loaded = _load_zoo(name_or_path)
    if sample_rate is not None and sample_rate != loaded.sample_rate:
        _say(f"--sample-rate {sample_rate} is ignored: zoo model {loaded.name} runs at {loaded.sample_rate} Hz")
    return loaded


def _class_name(model: _Model, index: Optional[int]) -> Any:
    if index is None:
        return None
    if model.class_names and 0 <= index < len(model.class_names):
        return model.class_names[index]
    return index


def _parse_target(target: Optional[str], model: _Model) -> Optional[int]:
    """``--target`` as a class index, checked against the model's classes when they are known."""
    if target is None:
        return None
    names = model.class_names
    try:
        index = int(target)
    except ValueError:
        index = None
    if index is not None:
        if names and not 0 <= index < len(names):
            listed = ", ".join(f"{i} {n}" for i, n in enumerate(names))
            raise CliError(f"--target {target} is out of range: {model.name} has {len(names)} classes ({listed})")
        if index < 0:
            raise CliError(f"--target {target} is out of range: a class index is >= 0")
        return index
    if names and target in names:
        return names.index(target)
    if not names:
        raise CliError(f"unknown target {target!r}: {model.name} has no class names; use a class index")
    raise CliError(f"unknown target {target!r}; use a class index or one of: {', '.join(names)}")


# ----------------------------------------------------------------------------- baselines


@dataclass
class _Baseline:
    """What ``--baseline`` asks for, and (for a file) its audio at the model's rate."""

    kind: str
    seed: int
    path: Optional[str] = None
    waveform: Optional[Tensor] = None
    notes: List[str] = field(default_factory=list)

    def for_clip(self, clip: Tensor, sample_rate: int) -> Tuple[Optional[Tensor], Dict[str, Any]]:
        """The baseline waveform for ``clip`` ``(time,)`` (None: silence) and its summary record."""
        from captum_freqrex.audio import fit_length, noise_like

        if self.kind == "silence":
            return None, {"kind": "silence"}
        if self.kind in ("noise", "pink"):
            color = "white" if self.kind == "noise" else "pink"
            noise = noise_like(clip, color, NOISE_LEVEL_DB, torch.Generator().manual_seed(self.seed))
            record = {"kind": self.kind, "color": color, "level_db": NOISE_LEVEL_DB, "seed": self.seed}
            return noise, record
        assert self.waveform is not None and self.path is not None
        wave, fitted = fit_length(self.waveform, clip.shape[-1], sample_rate)
        return wave, {"kind": "file", "path": os.path.abspath(self.path), "notes": self.notes + fitted}

    def describe(self) -> str:
        """A few words for the human summary."""
        if self.kind == "file":
            return f"the audio file {self.path}"
        if self.kind == "silence":
            return "silence"
        color = "white" if self.kind == "noise" else "pink"
        return f"{color} noise {-NOISE_LEVEL_DB:.0f} dB below the clip's RMS (seed {self.seed})"


def _parse_baseline(spec: str, model: _Model, seed: int) -> _Baseline:
    """``--baseline silence|noise|pink|FILE``; a file is read and fitted to the model."""
    if spec in BASELINE_KINDS:
        if os.path.lexists(spec):
            _say(f"--baseline {spec}: using generated {spec}; to use the file {spec} here, pass ./{spec}")
        return _Baseline(spec, seed)
    from captum_freqrex.audio import AudioError, load_audio

    if not os.path.isfile(spec):
        raise CliError(f"--baseline {spec}: not one of {', '.join(BASELINE_KINDS)}, and no such audio file")
    try:
        audio = load_audio(spec, model.sample_rate, model.num_samples, allow_silent=True)
    except AudioError as error:
        raise CliError(f"--baseline: {error}") from None
    for note in audio.notes:
        _say(f"baseline {os.path.basename(spec)}: {note}")
    return _Baseline("file", seed, spec, audio.waveform, list(audio.notes))


# ----------------------------------------------------------------------------- result folders


def _exists(path: str) -> CliError:
    return CliError(
        f"{path} already exists (from an earlier run?); pass --overwrite to replace it, or choose another --out"
    )


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def check_out(folder: str, names: Sequence[str], overwrite: bool) -> None:
    r"""Refuse, before any work, a result folder the command must not or cannot write.

    Args:
        folder (str): The result folder (``--out``, or one clip's subfolder of it).
        names (sequence of str): File names the command may write in it.
        overwrite (bool): Whether ``--overwrite`` allows replacing existing files.

    Raises:
        CliError: When ``folder`` is a file, cannot be created or written, or (without
                    ``overwrite``) already holds one of ``names``.
    """
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise CliError(f"{folder} is a file, not a folder; choose another --out")
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise CliError(f"cannot create the folder {folder}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {folder}: {existing} is not writable; choose another --out")
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            raise CliError(f"{path} is a folder where a result file goes; choose another --out")
        if not overwrite and os.path.lexists(path):
            raise _exists(path)


def result_folder_names(paths: Sequence[str]) -> List[str]:
    r"""Unique result folder names for the audio files of one ``explain`` run.

    Each file's folder is its stem (the name without folder and extension). When stems repeat
    (``d1/clip.wav d2/clip.wav``, ``clip.wav clip.flac``), the first file in command-line order
    keeps the stem and each later one gets ``STEM-2``, ``STEM-3``, ... (skipping a name that
    another file's stem is). Names are compared case-insensitively, so they stay distinct on
    case-insensitive file systems. The same paths always give the same names.

    Args:
        paths (sequence of str): The audio files, in command-line order.

    Returns:
        list of str: One folder name per path.
    """
    stems = [os.path.splitext(os.path.basename(os.path.normpath(path)))[0] for path in paths]
    reserved = {stem.casefold() for stem in stems}
    used: set = set()
    names = []
    for stem in stems:
        name, number = stem, 2
        if name.casefold() in used:
            name = f"{stem}-{number}"
            while name.casefold() in used or name.casefold() in reserved:
                number += 1
                name = f"{stem}-{number}"
        used.add(name.casefold())
        names.append(name)
    return names


def _open_new(path: str, mode: str, overwrite: bool) -> Any:
    """``open(path, mode)``; without ``overwrite`` the file is created exclusively (never replaced)."""
    try:
        return open(path, mode if overwrite else mode.replace("w", "x"))
    except FileExistsError:
        raise _exists(path) from None


def write_result(
    explanation: Explanation,
    model: _Model,
    out_dir: str,
    clip_name: str,
    notes: Sequence[str] = (),
    *,
    extra: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    html: bool = False,
    html_audio: str = "embed",
    source: Any = None,
) -> dict:
    r"""Write an explanation's folder: WAVs, plots, ``bins.csv`` and ``summary.json``; return the summary.

    Args:
        explanation (Explanation): The explanation of one clip.
        model (_Model): The explained model and its metadata.
        out_dir (str): Folder to write into (created if missing).
        clip_name (str): Name of the clip, recorded in the summary.
        notes (sequence of str): What was done to the audio to fit the model.
        extra (dict, optional): More entries for the summary (source path, baseline, label).
                    Default: None
        overwrite (bool, optional): Replace existing files, and remove result files of an earlier
                    run that this one does not produce (e.g. ``complete.wav`` when no complete set
                    is found). False refuses any existing file. Default: False
        html (bool, optional): Also write the self-contained ``report.html``. Default: False
        html_audio (str, optional): The report's audio, ``"embed"`` or ``"link"`` (WAVs in
                    ``report_files/``). Default: ``"embed"``
        source (LoadedAudio, optional): The file the clip was read from: listening copies are
                    written at its rate, and the report's spectrograms leave out its zero padding.
                    Default: None

    Returns:
        dict: The JSON summary.

    Raises:
        CliError: When a file exists (without ``overwrite``) or cannot be written.
    """
    from captum_freqrex.audio import save_explanation_wavs
    from captum_freqrex.plotting import plot_explanation_spectrograms, plot_responsibility

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = model.sample_rate
    listen_rate = getattr(source, "file_rate", None)
    try:
        os.makedirs(out_dir, exist_ok=True)
        try:
            wavs = save_explanation_wavs(explanation, out_dir, rate, overwrite=overwrite, listen_rate=listen_rate)
        except FileExistsError as error:
            raise _exists(error.filename) from None
        names = list(model.class_names or []) or None
        plots = {"responsibility_plot": "responsibility.png", "spectrograms_plot": "spectrograms.png"}
        fig = plot_responsibility(explanation, sample_rate=rate, class_names=names)
        with _open_new(os.path.join(out_dir, plots["responsibility_plot"]), "wb", overwrite) as handle:
            fig.savefig(handle, format="png", dpi=110)
        fig = plot_explanation_spectrograms(
            explanation, rate, class_names=names, valid_samples=getattr(source, "valid_samples", None)
        )
        with _open_new(os.path.join(out_dir, plots["spectrograms_plot"]), "wb", overwrite) as handle:
            fig.savefig(handle, format="png", dpi=110)
        plt.close("all")
        tables = {"bins_table": "bins.csv"}
        try:
            explanation.to_csv(os.path.join(out_dir, tables["bins_table"]), rate, overwrite=overwrite)
        except FileExistsError as error:
            raise _exists(error.filename) from None
        if html:
            from captum_freqrex.report import write_html

            baseline = (extra or {}).get("baseline") or {}
            details = {"model": model.name, "clip": clip_name, "baseline": baseline.get("description", "silence")}
            if notes:
                details["audio notes"] = "; ".join(notes)
            try:
                write_html(
                    explanation, os.path.join(out_dir, "report.html"), rate, class_names=names,
                    title=f"FreqReX: {model.name} on {clip_name}", details=details, overwrite=overwrite,
                    audio=html_audio, listen_rate=listen_rate, valid_samples=getattr(source, "valid_samples", None),
                )
            except FileExistsError as error:
                raise _exists(error.filename) from None
            tables["report"] = "report.html"
        summary = explanation.summary(sample_rate=rate)
        files = {key: os.path.basename(path) for key, path in wavs.items()} | plots | tables
        summary.update(
            {
                "model": model.name,
                "clip": clip_name,
                "sample_rate": rate,
                "target_name": _class_name(model, explanation.target),
                "original_class_name": _class_name(model, explanation.original.decided),
                "flip_class_name": _class_name(model, explanation.flip_class),
                "audio_notes": list(notes),
                "files": files,
                "file_notes": _file_notes(explanation, files),
            }
        )
        summary.update(extra or {})
        with _open_new(os.path.join(out_dir, "summary.json"), "w", overwrite) as handle:
            json.dump(summary, handle, indent=2)
        if overwrite:
            written = {"summary.json", *summary["files"].values()}
            for stale in sorted(set(RESULT_FILES) - written):
                path = os.path.join(out_dir, stale)
                if os.path.isfile(path) or os.path.islink(path):
                    os.remove(path)
                    _say(f"removed {path}: an earlier run's result that this run does not produce")
    except OSError as error:
        plt.close("all")
        raise CliError(f"cannot write {error.filename or out_dir}: {error.strerror or error}") from None
    return summary


# ----------------------------------------------------------------------------- explaining


def _file_notes(explanation: Explanation, files: Dict[str, str]) -> Dict[str, str]:
    """What each result file holds, by file name (``summary.json``'s ``file_notes``)."""
    from captum_freqrex.audio import LISTEN_PEAK_DBFS, _single_wave, peak_dbfs

    notes = {
        "original.wav": "the clip as the model heard it (resynthesised from its spectrum), true level, 32-bit float",
        "responsibility.png": "the clip's spectrum with each set's frequencies marked, and the responsibility",
        "spectrograms.png": "spectrograms: the clip with the sets drawn over it, each set alone, the decisive removal",
        "bins.csv": "one row per frequency bin: Hz, responsibility, rank, and whether it is in each set",
        "report.html": "self-contained HTML report: players, figures, sets, probabilities, settings, warnings",
    }
    for key, name in files.items():
        if not name.endswith(".wav") or key == "original":
            continue
        listen = key.endswith("_listen")
        signal = key[: -len("_listen")] if listen else key
        removed = signal.endswith("_removed")
        which = signal[: -len("_removed")] if removed else signal
        what = f"the clip with the {which.replace('_', '-and-')} set removed" if removed else f"the {which.replace('_', '-and-')} set alone"
        level = peak_dbfs(_single_wave(explanation.waveform(which, removed=removed)))
        peak = f"peak {round(level, 1) + 0.0:.1f} dBFS" if level > float("-inf") else "silent"
        if listen:
            notes[name] = (
                f"LISTENING COPY of {signal}.wav: {what}, peak-normalised to {LISTEN_PEAK_DBFS:g} dBFS "
                f"(true {peak}), 16-bit; louder than in the clip, not for measuring"
            )
        else:
            notes[name] = f"{what} at its TRUE level ({peak}), 32-bit float: exactly what the model was given"
    return {name: notes[name] for name in files.values() if name in notes}


def _baseline_record(explanation: Explanation, model: _Model, record: Dict[str, Any]) -> Dict[str, Any]:
    probe = getattr(explanation, "baseline", None)
    if probe is not None:
        record = dict(record, decided_class=probe.decided, decided_class_name=_class_name(model, probe.decided))
    return record


def _with_class_names(text: str, class_names: Optional[Sequence[str]]) -> str:
    """``class 7`` -> ``class 7 'reed'`` in a message of the core, where the model names its classes."""
    if not class_names:
        return text

    def name(match: "re.Match[str]") -> str:
        index = int(match.group(1))
        return f"{match.group(0)} '{class_names[index]}'" if index < len(class_names) else match.group(0)

    return re.sub(r"\bclass (\d+)\b(?! ')", name, text)


def _frequency_text(entry: Dict[str, Any], shown: int = 8) -> str:
    """Where a set's frequencies are, in a few words: all of them for a small set, else a span and the strongest."""
    from captum_freqrex.report import format_frequencies

    location = entry["inputs"][0] if "inputs" in entry else entry
    hz = location.get("frequencies_hz")
    if hz is None:
        values, unit = location.get("frequency_bins", []), " (rfft bins)"
    else:
        values, unit = hz, " Hz"
    total = location.get("n_frequencies", len(values))
    if total == 0:
        return "no frequencies (the empty set)"
    bands = location.get("bands_hz") if hz is not None else location.get("bands")
    if bands:
        text = ", ".join(f"{format_frequencies([lo])}-{format_frequencies([hi])}" for lo, hi in bands[:shown])
        more = f", ... ({entry['features']} bands)" if entry["features"] > shown else ""
        return f"bands {text}{more}{unit}"
    if total <= shown:
        return "at " + format_frequencies(values) + unit
    span = location.get("frequency_span_hz") if hz is not None else [values[0], values[-1]]
    assert span is not None, "a set with frequencies records their span"
    return (
        f"{total} frequencies from {span[0]:.4g} to {span[1]:.4g}{unit} "
        f"(the {min(len(values), 1000)} most responsible in summary.json, all in bins.csv)"
    )


def _human_summary(
    summary: dict,
    out_dir: str,
    display_name: str,
    show_target: bool,
    class_names: Optional[Sequence[str]] = None,
) -> str:
    sets = summary["sets"]
    header = (
        f"model {summary['model']} on {display_name}: decision {summary['original_class_name']!s} "
        f"(confidence {summary['original_confidence']:.2f})"
    )
    if show_target or summary["target"] != summary["original_class"]:
        confidence = summary.get("target_confidence", summary["original_confidence"])
        header += f"; explained target {summary['target_name']!s} (confidence {confidence:.2f})"
    lines = [header]
    baseline = summary.get("baseline") or {}
    kind = baseline.get("kind", "silence")
    if kind != "silence":
        lines.append(f"  baseline: {baseline['description']}")
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
        loudness = ""
        if entry.get("energy_share") is not None and entry.get("level_db") is not None:
            loudness = f", {100 * entry['energy_share']:.1f}% of the energy, loudest bin {entry['level_db']:+.0f} dB"
        lines.append(
            f"  {label:24s} {entry['features']} features ({entry['bins']} bins){loudness}, {status}{extra}"
        )
        lines.append(f"  {'':24s} {_frequency_text(entry)}")
    for warning in summary.get("warnings", []):
        lines.append(f"  warning: {_with_class_names(warning, class_names)}")
    if summary.get("baseline_decides"):
        others = [other for other in ("noise", "pink") if other != kind] + ["an audio FILE"]
        lines.append(
            f"  hint: the baseline ({kind}) alone already makes the model decide {summary['target_name']!s}, so "
            f"these sets say little about the clip; run again with --baseline {others[0]} "
            f"(or {' or '.join(others[1:])})"
        )
    lines.append(
        f"  {summary['queries']} model queries in {summary['forward_calls']} calls, "
        f"{summary['total_seconds']:.1f} s ({summary['model_seconds']:.1f} s in the model)"
    )
    lines.append(f"results in {out_dir}/")
    return "\n".join(lines)


def _check_output(model: _Model, waveforms: Tensor, output: OutputSelector) -> None:
    """One model call on ``waveforms`` ``(1, time)`` before any search: scores that ``--output`` (or
    the default unwrapping) cannot find are a user error, said in one line with what the model returned."""
    with torch.inference_mode():
        outputs = model.model(waveforms)
    try:
        check_model_outputs(outputs, waveforms.shape[0], output)
    except TypeError as error:
        if output is not None:
            raise CliError(f"--output {output}: {error}") from None
        raise CliError(f"{error} (on the command line: --output KEY or --output INDEX)") from None


def _explain_one(
    model: _Model,
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
) -> Explanation:
    _check_output(model, waveform.unsqueeze(0), output)
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
            explanation = explainer.explain(
                waveform.unsqueeze(0), baselines=baselines, target=target, seed=seed, max_queries=max_queries,
                feature_mask=feature_mask, mode=mode,
            )[0]
        except ValueError as error:
            if target is not None and "target" in str(error):
                raise CliError(f"--target {target}: {error}") from None
            raise
    for caught_warning in caught:  # the ones already in the explanation are printed with it
        text = str(caught_warning.message)
        if text not in getattr(explanation, "warnings", []):
            _say(f"freqrex: warning: {text}")
    return explanation


def _explain_and_write(
    model: _Model,
    waveform: Tensor,
    args: argparse.Namespace,
    target: Optional[int],
    baseline: _Baseline,
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
    )
    if announce:
        _say(announce)
    extra = dict(extra or {}, baseline=_baseline_record(explanation, model, record))
    summary = write_result(
        explanation, model, out_dir, clip_name, notes, extra=extra, overwrite=args.overwrite,
        html=getattr(args, "html", False), html_audio=getattr(args, "html_audio", "embed"), source=source,
    )
    print(_human_summary(summary, out_dir, display_name, target is not None, model.class_names))


def _synthetic_demo(args: argparse.Namespace) -> int:
    from captum_freqrex._demo import SAMPLE_RATE, demo_model_and_clip

    start = time.perf_counter()
    check_out(args.out, RESULT_FILES, args.overwrite)
    _say("[1/3] the example-model zoo is not installed: using the synthetic note classifier")
    model, clip, names = demo_model_and_clip()
    wrapped = _Model(model, "synthetic-notes", SAMPLE_RATE, clip.shape[-1], names)
    baseline = _parse_baseline(args.baseline, wrapped, args.seed)
    _say(f"[2/3] explaining a {clip.shape[-1] / SAMPLE_RATE:.0f} s chord ({clip.shape[-1] // 2 + 1} frequency bins)")
    _explain_and_write(
        wrapped, clip, args, None, baseline, args.out, "synthetic chord", "synthetic chord",
        announce=f"[3/3] writing WAVs, plots and summary.json to {args.out}",
    )
    _say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if not _zoo_available():
        return _synthetic_demo(args)
    from captum_freqrex import zoo

    start = time.perf_counter()
    check_out(args.out, RESULT_FILES, args.overwrite)
    name = args.model[len(ZOO_PREFIX) :] if args.model.startswith(ZOO_PREFIX) else args.model
    _say(f"[1/3] loading the shipped '{name}' model and sample clip {args.clip}")
    model = _load_zoo(name)
    clips = zoo.sample_clips(name)
    if not 0 <= args.clip < len(clips):
        raise CliError(f"clip index {args.clip} out of range: '{name}' ships {len(clips)} clips")
    clip = clips[args.clip]
    baseline = _parse_baseline(args.baseline, model, args.seed)
    seconds = clip.waveform.shape[-1] / clip.sample_rate
    _say(f"[2/3] explaining {clip.name} ({seconds:.0f} s at {clip.sample_rate} Hz, "
         f"{clip.waveform.shape[-1] // 2 + 1} frequency bins) with FreqReX")
    _explain_and_write(
        model, clip.waveform, args, None, baseline, args.out, clip.name, clip.name, extra={"label": clip.label},
        announce=f"[3/3] writing WAVs, plots and summary.json to {args.out}",
    )
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
    single = len(args.audio) == 1
    folders = [args.out] if single else [os.path.join(args.out, n) for n in result_folder_names(args.audio)]
    if not single:
        check_out(args.out, (), args.overwrite)
    for folder in folders:
        check_out(folder, RESULT_FILES, args.overwrite)
    for path in args.audio:
        if not os.path.isfile(path):
            raise CliError(f"no such audio file: {path}")
    model = _load_model(args.model, args.sample_rate)
    target = _parse_target(args.target, model)
    baseline = _parse_baseline(args.baseline, model, args.seed)
    for path, out_dir in zip(args.audio, folders):
        audio = _read_audio(path, model)
        _say(f"explaining {path} ...")
        _explain_and_write(
            model, audio.waveform, args, target, baseline, out_dir, os.path.basename(path), path, audio.notes,
            extra={"source": os.path.abspath(path)}, source=audio,
        )
    return 0


def _compare_clips(args: argparse.Namespace, model: _Model) -> Tensor:
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

    if model.zoo_name is None:
        raise CliError("a model outside the zoo has no shipped clips: pass audio files to compare on")
    return torch.stack([c.waveform for c in zoo.sample_clips(model.zoo_name)[: args.clips]])


def _cmd_compare(args: argparse.Namespace) -> int:
    check_out(args.out, COMPARE_FILES, args.overwrite)
    model = _load_model(args.model, args.sample_rate)
    baseline = _parse_baseline(args.baseline, model, args.seed)
    waves = _compare_clips(args, model)
    _check_output(model, waves[:1], args.output)
    bases = [baseline.for_clip(wave, model.sample_rate)[0] for wave in waves]
    baselines = None if baseline.kind == "silence" else torch.stack(bases)  # type: ignore[arg-type]
    _say(f"comparing {len(args.methods) if args.methods else 'all'} methods on {waves.shape[0]} clip(s) "
         f"of {waves.shape[-1] / model.sample_rate:.1f} s ({waves.shape[-1] // 2 + 1} frequency bins)")
    table = compare_methods(
        model.model, waves, methods=args.methods, baselines=baselines, sample_rate=model.sample_rate, ks=args.ks,
        max_queries=args.max_queries, seed=args.seed, show_progress=True, output=args.output,
    )
    table.notes.append(f"baseline: {baseline.describe()}")
    check_out(args.out, COMPARE_FILES, args.overwrite)  # again: the comparison took a while
    try:
        markdown_path, csv_path = table.save(args.out)
    except OSError as error:
        raise CliError(f"cannot write {error.filename or args.out}: {error.strerror or error}") from None
    print(table.to_markdown())
    _say(f"table written to {markdown_path} and {csv_path}")
    return 0


# ----------------------------------------------------------------------------- parser and main


def _add_common(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument(
        "--max-queries", type=_MAX_QUERIES, default=1000, help="FreqReX's query budget per clip (>= 15, default 1000)"
    )
    parser.add_argument("--out", default=out, help=f"result folder (default: {out})")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace result files of an earlier run in --out (default: refuse)"
    )
    parser.add_argument("--seed", type=_SEED, default=0, help="seed of the search and of noise baselines (default 0)")
    parser.add_argument(
        "--baseline", default="silence", metavar="silence|noise|pink|FILE",
        help="what removed frequencies are replaced by: silence (default), white or pink noise "
        f"{-NOISE_LEVEL_DB:.0f} dB below the clip's RMS (seeded by --seed), or an audio file",
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", type=_output_option, default=None, metavar="KEY",
        help="where the scores are in what the model returns: a dict key or attribute (e.g. logits), or a "
        "tuple index (e.g. 0) (default: a tensor as is, else .logits, a dict's 'logits', a tuple's first element)",
    )


def _add_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bands", type=_COUNT, default=None, metavar="N",
        help="explain N log-spaced frequency bands instead of single rfft bins (default: bins)",
    )
    parser.add_argument(
        "--mode", choices=("sufficient", "necessary"), default="sufficient",
        help="sufficient (default): what keeps the decision; necessary: the fewest frequencies whose removal "
        "changes it (needs a baseline that changes the decision)",
    )
    parser.add_argument(
        "--search", choices=SEARCHES, default=None,
        help="how responsibility is searched (default: refinement; band_screening suits --mode necessary)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``freqrex`` command."""
    parser = _Parser(
        prog="freqrex", description="Explain audio classifiers with causal responsibility in the frequency domain."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser("demo", help="explain a shipped clip with a shipped model (offline)")
    demo.add_argument("--model", default=DEMO_MODEL, help=f"zoo model (default: {DEMO_MODEL})")
    demo.add_argument("--clip", type=_CLIP_INDEX, default=0, help="index of the shipped sample clip (default: 0)")
    demo.add_argument("--html", action="store_true", help="also write report.html, a self-contained HTML report")
    _add_common(demo, "freqrex_out/demo")
    _add_search(demo)
    demo.set_defaults(run=_cmd_demo)
    explain = sub.add_parser("explain", help="explain audio files (WAV/FLAC/OGG)")
    explain.add_argument("audio", nargs="+", help="audio files")
    explain.add_argument(
        "--model", required=True,
        help="zoo model name (or zoo:NAME), TorchScript file, or package.module:callable (a model, or a "
        "function or class making one; optional attributes sample_rate, num_samples, class_names)",
    )
    explain.add_argument("--target", help="class index or name to explain (default: the model's decision)")
    explain.add_argument(
        "--sample-rate", type=_SAMPLE_RATE,
        help="sample rate of a TorchScript or module:callable model (default: its sample_rate, else 16000)",
    )
    explain.add_argument("--html", action="store_true", help="also write report.html, a self-contained HTML report")
    explain.add_argument("--html-audio", choices=("embed", "link"), default="embed",
                         help="report.html's audio: embedded (one file, ~9 MB for 30 s) or linked WAVs in report_files/")
    _add_common(explain, "freqrex_out/explain")
    _add_search(explain)
    _add_output(explain)
    explain.set_defaults(run=_cmd_explain)
    compare = sub.add_parser("compare", help="FreqReX vs Captum methods on the same frequency features")
    compare.add_argument("audio", nargs="*", help="audio files of one length (default: the model's shipped clips)")
    compare.add_argument(
        "--model", default=ZOO_PREFIX + DEMO_MODEL,
        help="zoo model name (or zoo:NAME), TorchScript file or package.module:callable "
        f"(default: the zoo's {DEMO_MODEL})",
    )
    compare.add_argument(
        "--clips", type=_COUNT, default=4, help="number of shipped clips without audio files (default 4)"
    )
    compare.add_argument("--methods", nargs="*", default=None, choices=METHODS, help="method names (default: all)")
    compare.add_argument(
        "--ks", type=_COUNT, nargs="+", default=[1, 5], help="top-k sizes of the flip rates (default 1 5)"
    )
    compare.add_argument("--sample-rate", type=_SAMPLE_RATE, help="sample rate of a TorchScript model (default 16000)")
    _add_common(compare, "freqrex_out/compare")
    _add_output(compare)
    compare.set_defaults(run=_cmd_compare)
    from captum_freqrex.corpus._cli import add_parser as add_dataset_parser

    add_dataset_parser(sub)  # explain-dataset: captum_freqrex/corpus/_cli.py, dispatched through run= like the rest
    return parser


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
    except Exception as error:  # a library failure: still one line, with its type
        print(f"freqrex: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
