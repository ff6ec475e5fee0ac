"""The result folder of one explained clip (``demo`` and ``explain``) and its printed summary.

:func:`write_result` writes the audio (:data:`AUDIO_CHOICES`), plots, ``summary.json``, and on
request ``bins.csv`` and ``report.html``, each file created exclusively unless ``--overwrite``;
:func:`human_summary` is what the command prints for it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from captum_freqrex._explanation import MANIPULATION, QUIET_SUFFICIENT, SET_NAMES, Explanation
from captum_freqrex._explanation.informative import result_hints
from captum_freqrex._explanation.text import closing_lines, set_lines
from captum_freqrex.cli._common import CliError, LoadedModel, class_name, exists_error, open_new, say

__all__ = [
    "AUDIO_CHOICES", "RESULT_FILES", "result_files", "result_folder_names", "channel_count", "explained_clips", "write_result", "file_notes",
    "baseline_record", "human_summary",
]



def result_files(n_explanations: int = 1) -> Tuple[str, ...]:
    r"""Every file a result folder of ``demo`` or ``explain`` may hold (which set files a run writes
    is known only after the search, so all of them are checked beforehand).

    Args:
        n_explanations (int, optional): ``--explanations``: the folder may also hold the audio of
                    ``n_explanations - 1`` alternative sufficient sets (``alternative_1.wav``, ...).
                    Default: 1

    Returns:
        tuple of str: The file names (``quiet_sufficient.wav`` and the like among them: the quiet
        sufficient set that the sufficient set replaced, where there is one).
    """
    signals = list(SET_NAMES) + [f"alternative_{number}" for number in range(1, n_explanations)] + [QUIET_SUFFICIENT]
    return (
        "summary.json",
        "bins.csv",
        "report.html",
        "responsibility.png",
        "spectrograms.png",
        "original.wav",
    ) + tuple(
        f"{name}{suffix}{ending}"
        for name in signals
        for suffix in ("", "_removed")
        for ending in (".wav", ".listen.wav")
    ) + tuple(f"{name}.listen.flac" for name in signals) + tuple(
        f"{MANIPULATION}_removed{ending}" for ending in (".wav", ".listen.wav")
    )


#: The result files of a run without alternative sets (:func:`result_files`).
RESULT_FILES: Tuple[str, ...] = result_files()

#: An alternative set's audio file, whatever the run's ``--explanations``: an earlier run's are stale.
_ALTERNATIVE_FILE = re.compile(r"alternative_[0-9]+(_removed)?(\.wav|\.listen\.wav|\.listen\.flac)$")

#: What ``--audio-files`` writes: ``sets`` (the default), each set kept alone as a 16-bit FLAC listening
#: copy (a 10-minute clip's folder stays under 50 MB); ``all``, the true-level 32-bit float WAVs of
#: the original and of every set kept alone and removed, with their 16-bit WAV listening copies;
#: ``none``, no audio.
AUDIO_CHOICES: Tuple[str, ...] = ("sets", "all", "none")


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


def channel_count(path: str) -> int:
    """The number of channels of an audio file; 1 where it cannot be read here (reading it says why)."""
    try:
        import soundfile

        return max(1, int(soundfile.info(path).channels))
    except Exception:  # missing, unreadable or no soundfile: load_audio reports it with its own message
        return 1


def explained_clips(paths: Sequence[str], out: str, per_channel: bool = False) -> List[Tuple[str, Optional[int], str]]:
    r"""What ``explain`` explains, in order: ``(audio file, channel, result folder)``.

    One file writes into ``out``, several into ``out/NAME`` (:func:`result_folder_names`). With
    ``per_channel`` each channel of a file is explained on its own, into ``channel-1``,
    ``channel-2``, ... of the file's folder; without it the channel is None (mixed to mono).

    Args:
        paths (sequence of str): The audio files, in command-line order.
        out (str): ``--out``.
        per_channel (bool, optional): ``--per-channel``. Default: False

    Returns:
        list of (str, int or None, str): One entry per explanation.
    """
    folders = [out] if len(paths) == 1 else [os.path.join(out, name) for name in result_folder_names(paths)]
    clips: List[Tuple[str, Optional[int], str]] = []
    for path, folder in zip(paths, folders):
        if not per_channel:
            clips.append((path, None, folder))
            continue
        clips += [(path, c, os.path.join(folder, f"channel-{c + 1}")) for c in range(channel_count(path))]
    return clips


# ----------------------------------------------------------------------------- the result folder


def write_result(
    explanation: Explanation,
    model: LoadedModel,
    out_dir: str,
    clip_name: str,
    notes: Sequence[str] = (),
    *,
    extra: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    html: bool = False,
    html_audio: str = "embed",
    source: Any = None,
    audio: str = "sets",
    bins_csv: bool = False,
) -> dict:
    r"""Write an explanation's folder: audio, plots, ``summary.json`` and the files asked for; return the summary.

    Args:
        explanation (Explanation): The explanation of one clip.
        model (LoadedModel): The explained model and its metadata.
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
                    written at its rate, and the spectrograms leave out its zero padding.
                    Default: None
        audio (str, optional): Which audio to write, one of :data:`AUDIO_CHOICES`. Default: ``"sets"``
        bins_csv (bool, optional): Also write ``bins.csv``, one row per frequency bin (241 MB for a
                    10-minute clip at 16 kHz). Default: False

    Returns:
        dict: The JSON summary.

    Raises:
        CliError: When a file exists (without ``overwrite``) or cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = model.sample_rate
    try:
        os.makedirs(out_dir, exist_ok=True)
        wavs = _save_audio(explanation, rate, out_dir, audio, overwrite, getattr(source, "file_rate", None))
        plots = _save_plots(explanation, model, out_dir, overwrite, source)
        report = html_audio if html else None
        tables = _save_tables(explanation, model, out_dir, clip_name, notes, extra, overwrite, report, source, bins_csv)
        summary = explanation.summary(sample_rate=rate)
        files = {key: os.path.basename(path) for key, path in wavs.items()} | plots | tables
        summary.update(_summary_names(explanation, model, clip_name, notes, files))
        summary.update(extra or {})
        with open_new(os.path.join(out_dir, "summary.json"), "w", overwrite) as handle:
            json.dump(summary, handle, indent=2)
        if overwrite:
            _remove_stale(out_dir, {"summary.json", *summary["files"].values()})
    except OSError as error:
        plt.close("all")
        raise CliError(f"cannot write {error.filename or out_dir}: {error.strerror or error}") from None
    return summary


def _save_audio(
    explanation: Explanation, rate: int, out_dir: str, audio: str, overwrite: bool, listen_rate: Optional[int]
) -> Dict[str, str]:
    """The audio files that ``audio`` (one of :data:`AUDIO_CHOICES`) names; returns them by summary key."""
    from captum_freqrex.audio import save_explanation_wavs, save_set_listening_copies

    if audio not in AUDIO_CHOICES:
        raise ValueError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    try:
        if audio == "all":
            return save_explanation_wavs(explanation, out_dir, rate, overwrite=overwrite, listen_rate=listen_rate)
        if audio == "sets":
            return save_set_listening_copies(explanation, out_dir, rate, overwrite=overwrite, listen_rate=listen_rate)
    except FileExistsError as error:
        raise exists_error(error.filename) from None
    return {}


def _save_plots(
    explanation: Explanation, model: LoadedModel, out_dir: str, overwrite: bool, source: Any = None
) -> Dict[str, str]:
    """``responsibility.png`` and ``spectrograms.png``; returns them by summary key."""
    from captum_freqrex.plotting import plot_explanation_spectrograms, plot_responsibility

    import matplotlib.pyplot as plt

    rate = model.sample_rate
    names = list(model.class_names or []) or None
    plots = {"responsibility_plot": "responsibility.png", "spectrograms_plot": "spectrograms.png"}
    fig = plot_responsibility(explanation, sample_rate=rate, class_names=names)
    with open_new(os.path.join(out_dir, plots["responsibility_plot"]), "wb", overwrite) as handle:
        fig.savefig(handle, format="png", dpi=110)
    fig = plot_explanation_spectrograms(
        explanation, rate, class_names=names, valid_samples=getattr(source, "valid_samples", None)
    )
    with open_new(os.path.join(out_dir, plots["spectrograms_plot"]), "wb", overwrite) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close("all")
    return plots


def _save_tables(
    explanation: Explanation,
    model: LoadedModel,
    out_dir: str,
    clip_name: str,
    notes: Sequence[str],
    extra: Optional[Dict[str, Any]],
    overwrite: bool,
    html_audio: Optional[str],
    source: Any = None,
    bins_csv: bool = False,
) -> Dict[str, str]:
    """``bins.csv`` when ``bins_csv``, and ``report.html`` when ``html_audio`` says how (``"embed"``
    or ``"link"``); returns them by summary key."""
    rate = model.sample_rate
    tables: Dict[str, str] = {}
    if bins_csv:
        try:
            explanation.to_csv(os.path.join(out_dir, "bins.csv"), rate, overwrite=overwrite)
        except FileExistsError as error:
            raise exists_error(error.filename) from None
        tables["bins_table"] = "bins.csv"
    if html_audio is not None:
        from captum_freqrex.report import write_html

        names = list(model.class_names or []) or None
        baseline = (extra or {}).get("baseline") or {}
        details = {"model": model.name, "clip": clip_name, "baseline": baseline.get("description", "silence")}
        hints = result_hints(
            explanation.summary(rate, max_listed=0), str(class_name(model, explanation.target)), baseline.get("kind", "silence")
        )
        if notes:
            details["audio notes"] = "; ".join(notes)
        try:
            write_html(
                explanation, os.path.join(out_dir, "report.html"), rate, class_names=names,
                title=f"FreqReX: {model.name} on {clip_name}", details=details, overwrite=overwrite,
                audio=html_audio, listen_rate=getattr(source, "file_rate", None),
                valid_samples=getattr(source, "valid_samples", None), hints=hints,
            )
        except FileExistsError as error:
            raise exists_error(error.filename) from None
        tables["report"] = "report.html"
    return tables


def _summary_names(
    explanation: Explanation, model: LoadedModel, clip_name: str, notes: Sequence[str], files: Dict[str, str]
) -> Dict[str, Any]:
    """The command's entries of ``summary.json``: model, clip, class names, audio notes and files."""
    return {
        "model": model.name,
        "clip": clip_name,
        "sample_rate": model.sample_rate,
        "target_name": class_name(model, explanation.target),
        "original_class_name": class_name(model, explanation.original.decided),
        "flip_class_name": class_name(model, explanation.flip_class),
        "manipulation_class_name": class_name(
            model, None if explanation.manipulation is None else explanation.manipulation.flip_class
        ),
        "audio_notes": list(notes),
        "files": files,
        "file_notes": file_notes(explanation, files),
    }


def _remove_stale(out_dir: str, written: set) -> None:
    """With ``--overwrite``: remove an earlier run's result files that this run did not write."""
    earlier = {name for name in os.listdir(out_dir) if _ALTERNATIVE_FILE.match(name)}
    for stale in sorted((set(RESULT_FILES) | earlier) - written):
        path = os.path.join(out_dir, stale)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)
            say(f"removed {path}: an earlier run's result that this run does not produce")


def file_notes(explanation: Explanation, files: Dict[str, str]) -> Dict[str, str]:
    """What each result file holds, by file name (``summary.json``'s ``file_notes``)."""
    from captum_freqrex.audio import LISTEN_PEAK_DBFS, single_waveform, peak_dbfs

    notes = {
        "original.wav": "the clip as the model heard it (resynthesised from its spectrum), true level, 32-bit float",
        "responsibility.png": "the clip's spectrum with each set's frequencies marked, and the responsibility",
        "spectrograms.png": "spectrograms: the clip with the sets drawn over it, each set alone, the decisive removal",
        "bins.csv": "one row per frequency bin: Hz, responsibility, rank, and whether it is in each set",
        "report.html": "self-contained HTML report: players, figures, sets, probabilities, settings, warnings",
    }
    for key, name in files.items():
        if not name.endswith((".wav", ".flac")) or key == "original":
            continue
        listen = key.endswith("_listen")
        signal = key[: -len("_listen")] if listen else key
        removed = signal.endswith("_removed")
        which = signal[: -len("_removed")] if removed else signal
        what = f"the clip with the {_set_title(which)} removed" if removed else f"the {_set_title(which)} alone"
        level = peak_dbfs(single_waveform(explanation.waveform(which, removed=removed)))
        peak = f"peak {round(level, 1) + 0.0:.1f} dBFS" if level > float("-inf") else "silent"
        if listen:
            of = f" of {signal}.wav" if f"{signal}.wav" in files.values() else ""
            kind = "16-bit FLAC" if name.endswith(".flac") else "16-bit"
            notes[name] = (
                f"LISTENING COPY{of}: {what}, peak-normalised to {LISTEN_PEAK_DBFS:g} dBFS "
                f"(true {peak}), {kind}; louder than in the clip, not for measuring"
            )
        else:
            notes[name] = f"{what} at its TRUE level ({peak}), 32-bit float: exactly what the model was given"
    return {name: notes[name] for name in files.values() if name in notes}


def _set_title(which: str) -> str:
    # "sufficient_necessary" -> "sufficient-and-necessary set", "alternative_2" -> "alternative sufficient set 2"
    if which.startswith("alternative_"):
        return f"alternative sufficient set {which[len('alternative_'):]}"
    if which == QUIET_SUFFICIENT:
        return "quiet sufficient set (far below the clip's level; the sufficient set replaced it)"
    if which == MANIPULATION:
        return "necessary-mode answer (the fewest features found whose removal changes the decision)"
    return f"{which.replace('_', '-and-')} set"


def baseline_record(explanation: Explanation, model: LoadedModel, record: Dict[str, Any]) -> Dict[str, Any]:
    """The baseline's summary record, with the class the model decides on the baseline alone."""
    probe = getattr(explanation, "baseline", None)
    if probe is not None:
        record = dict(record, decided_class=probe.decided, decided_class_name=class_name(model, probe.decided))
    return record


# ----------------------------------------------------------------------------- the printed summary


def human_summary(
    summary: dict,
    out_dir: str,
    display_name: str,
    show_target: bool,
    class_names: Optional[Sequence[str]] = None,
) -> str:
    """What ``demo`` and ``explain`` print for one clip: the decision, each set, warnings, cost, folder."""
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
    lines += set_lines(summary)
    lines += closing_lines(summary, str(summary["target_name"]), class_names, kind)
    lines.append(f"results in {out_dir}/")
    return "\n".join(lines)
