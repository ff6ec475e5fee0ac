"""Self-contained HTML reports of explanations: one file, readable in any browser, offline.

:func:`write_html` (also :meth:`Explanation.to_html` and ``freqrex explain ... --html``) writes a
page with audio players for the original clip, each set kept alone and each set removed (WAVs
embedded as base64 ``data:`` URIs, or with ``audio="link"`` written into a folder beside the page
and linked by relative path), the responsibility spectrum and the spectrograms with the sets drawn
over them (PNG ``data:`` URIs), the certification status and frequencies of each set, the class
probabilities, the warnings and the settings. Nothing is fetched from the network.

Every player plays a peak-normalised copy (-1 dBFS, as the ``*.listen.wav`` files) so that quiet
sets can be heard; the text beside it gives the signal's true peak level and the gain applied.
Needs ``matplotlib`` for the figures. The core never imports this module; the report reads
explanations through their public attributes only.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import urllib.parse
import wave
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._explanation.informative import format_level_db, result_hints
from captum_freqrex._explanation.text import count_of, format_frequencies

if TYPE_CHECKING:
    from captum_freqrex._explanation import Explanation

__all__ = ["explanation_html", "write_html", "audio_folder", "AUDIO_MODES", "wav_bytes", "format_frequencies"]

SET_LABELS = {
    "sufficient": "sufficient",
    "sufficient_necessary": "sufficient &amp; necessary",
    "complete": "complete",
}

SET_MEANINGS = {
    "sufficient": "kept alone (everything else at the baseline), the model still decides the target",
    "sufficient_necessary": "sufficient, and removing it from the clip changes the decision",
    "complete": "sufficient and necessary, and kept alone it reaches the clip's confidence (within the tolerance)",
}

#: What an alternative set of explain(n_explanations=k) is.
ALTERNATIVE_MEANING = "sufficient too, and disjoint from the sufficient set and every earlier alternative"

#: What the quiet sufficient set (Explanation.quiet_sufficient) is.
QUIET_MEANING = (
    "sufficient too, but far below the clip's level: the model keeps its decision on this near-silent input; "
    "the sufficient set above, at the clip's level, replaced it"
)

#: What the necessary-mode answer (Explanation.manipulation) is.
MANIPULATION_MEANING = (
    "explain(mode=\"necessary\"): the fewest features found whose removal from the clip changes the decision; "
    "the SNR says how loud that change is (higher is quieter)"
)

#: Frequencies listed per set in the page's table (the summary and the CSV hold more).
LISTED = 24

#: How the players get their audio: embedded in the page, or WAV files linked beside it.
AUDIO_MODES = ("embed", "link")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 0.3em 0.6em;
     text-align: left; vertical-align: top; font-size: 0.92em; } th { background: #f4f4f4; }
.ok { color: #1a7f37; font-weight: 600; } .flagged { color: #9a5b00; font-weight: 600; }
.hints { background: #fff8e1; border: 1px solid #e0a800; padding: 0.6em 1.2em; } .bad { color: #b42318; font-weight: 600; } .none { color: #777; }
.warnings { background: #fff4e5; border: 1px solid #f0b35b; padding: 0.6em 1.2em; }
.warnings li { margin: 0.3em 0; } .muted { color: #666; font-size: 0.9em; }
.bar { background: #3182bd; height: 0.9em; display: inline-block; vertical-align: middle; }
.freqs { font-family: ui-monospace, monospace; font-size: 0.85em; max-width: 30em; }
audio { width: 22em; vertical-align: middle; } img { max-width: 100%; border: 1px solid #eee; }
"""


def wav_bytes(waveform: Tensor, sample_rate: float) -> bytes:
    r"""A 16-bit PCM WAV file of ``(time,)`` or ``(channels, time)`` samples in [-1, 1], in memory.

    Uses the standard library only (no ``soundfile``); samples beyond full scale are clipped.

    Args:
        waveform (Tensor): The samples.
        sample_rate (int): Sample rate in Hz.

    Returns:
        bytes: The WAV file.
    """
    data = waveform.detach().cpu().float()
    data = data.unsqueeze(0) if data.dim() == 1 else data
    pcm = (data.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).T.contiguous()  # (time, channels)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(data.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.numpy().astype("<i2").tobytes())
    return buffer.getvalue()


def _data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _png(fig: Any) -> bytes:
    from captum_freqrex.plotting import pyplot

    plt = pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _class(class_names: Optional[Sequence[str]], index: Optional[int]) -> str:
    if index is None:
        return "none"
    if class_names and 0 <= index < len(class_names):
        return f"{class_names[index]} ({index})"
    return str(index)


def _level_text(level: float, gain: float) -> str:
    if not math.isfinite(level):
        return "silent: nothing to hear"
    louder = f", played {round(gain) + 0:+d} dB" if abs(gain) >= 0.5 else ""
    return f"true peak {round(level, 1) + 0.0:.1f} dBFS{louder} (player peak-normalised to -1 dBFS)"


def _frequencies_text(entry: Mapping[str, Any], features: int) -> str:
    """A set's frequencies from a summary entry listing at most :data:`LISTED` (its most responsible)."""
    hz = entry.get("frequencies_hz")
    values = hz if hz is not None else entry.get("frequency_bins", [])
    unit = " Hz" if hz is not None else " (rfft bins)"
    total = entry.get("n_frequencies", len(values))
    if total == 0:
        return "none (the empty set)"
    bands = entry.get("bands_hz") if hz is not None else entry.get("bands")
    if bands:
        shown = ", ".join(f"{format_frequencies([lo])}-{format_frequencies([hi])}" for lo, hi in bands)
        more = f"; the {len(bands)} most responsible of {features} bands" if features > len(bands) else ""
        return f"bands {shown}{unit}{more}"
    text = format_frequencies(values) + unit
    if total <= len(values):
        return text
    span = entry.get("frequency_span_hz")
    where = f" from {span[0]:.4g} to {span[1]:.4g} Hz" if span else ""
    return f"{total} frequencies{where}; the {len(values)} most responsible: {text}"


def _set_row(key: str, label: str, meaning: str, entry: Dict[str, Any], location: Dict[str, Any], class_names: Optional[Sequence[str]]) -> str:
    status = '<span class="ok">certified &#10003;</span>' if entry["certified"] else '<span class="bad">NOT certified &#10007;</span>'
    share = "" if entry["energy_share"] is None else f"{100 * entry['energy_share']:.2f}%"
    features = "" if entry.get("feature_share") is None else f"{100 * entry['feature_share']:.2f}%"
    flags = "; ".join(flag["reason"] for flag in entry.get("flags", []))
    level = "" if entry["level_db"] is None else format_level_db(entry["level_db"], 1)
    kept = ""  # the necessary-mode answer is only ever removed
    if "kept_class" in entry:
        kept = f"{_e(_class(class_names, entry['kept_class']))}, confidence {entry['kept_confidence']:.3f}"
    snr = "" if entry.get("snr_db") is None else f"SNR {entry['snr_db']:.1f} dB; "
    removed = ""
    if "removed_class" in entry:
        removed = f"{_e(_class(class_names, entry['removed_class']))}, confidence {entry['removed_confidence']:.3f}"
    return (
        f'<tr data-set="{key}" data-certified="{str(entry["certified"]).lower()}">'
        f'<td title="{_e(meaning)}">{label}</td><td>{status}</td>'
        f"<td>{entry['features']} ({entry['bins']})</td><td>{features}</td>"
        f"<td class=\"freqs\">{_e(_frequencies_text(location, entry['features']))}</td>"
        f"<td>{share}</td><td>{level}</td><td>{kept}</td><td>{removed}</td>"
        f'<td class="flagged" data-flags="{len(entry.get("flags", []))}">{_e(flags)}</td><td>{_e(snr + entry["note"])}</td></tr>'
    )


def _sets_table(summary: Dict[str, Any], listed: Dict[str, Any], class_names: Optional[Sequence[str]]) -> str:
    rows = [
        "<tr><th>set</th><th>status</th><th>features (bins)</th><th>share of the features</th><th>frequencies</th>"
        "<th>energy share</th><th>loudest bin</th><th>kept alone: model decides</th><th>removed: model decides</th>"
        "<th>flags (not informative)</th><th>note</th></tr>"
    ]
    found, short = summary.get("manipulation"), listed.get("manipulation")
    if found and short:
        rows.append(_set_row("manipulation", "fewest to remove (manipulation)", MANIPULATION_MEANING, found, _location(short),
                             class_names))
    for name, entry in summary["sets"].items():
        if entry is None:
            rows.append(
                f'<tr data-set="{name}" data-certified="none"><td>{SET_LABELS[name]}</td><td class="none">not found</td>'
                '<td colspan="9" class="none">no prefix of the ranking satisfied this set within the budget</td></tr>'
            )
            continue
        rows.append(_set_row(name, SET_LABELS[name], SET_MEANINGS[name], entry, _location(listed["sets"][name]), class_names))
    for number, (entry, short) in enumerate(zip(summary.get("alternatives", []), listed.get("alternatives", [])), 1):
        label = f"sufficient, alternative {number}"
        rows.append(_set_row(f"alternative_{number}", label, ALTERNATIVE_MEANING, entry, _location(short), class_names))
    quiet, short = summary.get("quiet_sufficient"), listed.get("quiet_sufficient")
    if quiet and short:
        rows.append(_set_row("quiet_sufficient", "sufficient, quiet (replaced)", QUIET_MEANING, quiet, _location(short), class_names))
    return "<table>" + "".join(rows) + "</table>" + _alternatives_note(summary)


def _location(short: Dict[str, Any]) -> Dict[str, Any]:
    # Where a set's frequencies are, from its short listing: the first input's for tuple inputs.
    return short if "inputs" not in short else short["inputs"][0]


def _alternatives_note(summary: Mapping[str, Any]) -> str:
    """What explain(n_explanations=k) found, and why not more (nothing without it)."""
    report = summary.get("alternatives_report")
    if not report:
        return ""
    found = 1 + len(summary.get("alternatives", []))
    queries = ", ".join(str(q) for q in report["queries"]) or "none"
    why = f" Why not more: {_e(report['stopped'])}." if report["stopped"] else ""
    return (
        f'<p id="alternatives" data-found="{found}" data-requested="{report["requested"]}">Multiple explanations: '
        f"{found} of the {report['requested']} pairwise-disjoint sufficient sets asked for (queries per "
        f"alternative: {queries}).{why}</p>"
    )


def _signals(explanation: "Explanation") -> List[Tuple[str, str, Tensor]]:
    """``(key, label, waveform)`` of every player: the original, each set alone and removed."""
    from captum_freqrex.audio import single_waveform

    signals: List[Tuple[str, str, Tensor]] = [("original", "the clip (resynthesised from its spectrum)", single_waveform(explanation.original_waveform()))]
    for name, chosen in explanation.sets.items():
        if chosen is None:
            continue
        label = SET_LABELS[name]
        signals.append((name, f"{label} set kept alone ({chosen.size} features)", single_waveform(explanation.waveform(name))))
        signals.append(
            (f"{name}_removed", f"clip with the {label} set removed", single_waveform(explanation.waveform(name, removed=True)))
        )
    for number, chosen in enumerate(explanation.alternatives, 1):
        key = f"alternative_{number}"
        label = f"sufficient set, alternative {number}, kept alone ({chosen.size} features)"
        signals.append((key, label, single_waveform(explanation.waveform(key))))
    if explanation.quiet_sufficient is not None:
        label = f"quiet sufficient set (replaced) kept alone ({explanation.quiet_sufficient.size} features)"
        signals.append(("quiet_sufficient", label, single_waveform(explanation.waveform("quiet_sufficient"))))
    if explanation.manipulation is not None:
        found = explanation.manipulation
        label = f"clip with the fewest features found to flip the decision removed ({found.size} features, SNR {found.snr_db:.1f} dB)"
        signals.append(("manipulation_removed", label, single_waveform(explanation.waveform("manipulation", removed=True))))
    return signals


def _check_audio(audio: str) -> None:
    if audio not in AUDIO_MODES:
        raise ValueError(f"audio must be one of {AUDIO_MODES}, got {audio!r}")


def audio_folder(path: str) -> str:
    r"""The folder that a linked report's WAVs go to: ``report.html`` -> ``report_files``, beside it.

    Args:
        path (str): The report's path.

    Returns:
        str: The folder's path.
    """
    return os.path.splitext(path)[0] + "_files"


def _players(
    explanation: "Explanation", sample_rate: float, audio: str, folder: str, listen_rate: Optional[float]
) -> str:
    from captum_freqrex.audio import LISTEN_SUFFIX, listening_copy_at, peak_dbfs

    rows = ["<tr><th>signal</th><th>listen</th><th>level</th></tr>"]
    for key, label, signal in _signals(explanation):
        level = peak_dbfs(signal)
        loud, gain, rate = listening_copy_at(signal, sample_rate, listen_rate)
        if audio == "embed":
            uri = _data_uri("audio/wav", wav_bytes(loud, rate))
        else:  # the same copy, written there by write_html
            uri = urllib.parse.quote(f"{folder}/{key}{LISTEN_SUFFIX}")
        rows.append(
            f'<tr><td>{label}</td><td><audio controls preload="auto" data-signal="{key}" src="{uri}"></audio></td>'
            f'<td class="muted">{_e(_level_text(level, gain))}</td></tr>'
        )
    return "<table>" + "".join(rows) + "</table>"


def _probabilities(summary: Dict[str, Any], class_names: Optional[Sequence[str]]) -> str:
    confidences = summary.get("class_confidences")
    if confidences is None:
        return '<p class="muted">The decision gives no per-class confidences.</p>'
    rows = ["<tr><th>class</th><th>confidence</th><th></th></tr>"]
    for index, value in enumerate(confidences):
        marks = []
        if index == summary["original_class"]:
            marks.append("decision")
        if index == summary["target"] and summary["target"] != summary["original_class"]:
            marks.append("explained target")
        mark = f" <b>({', '.join(marks)})</b>" if marks else ""
        width = max(0.0, min(1.0, float(value))) * 20
        rows.append(
            f'<tr data-class="{index}"><td>{_e(_class(class_names, index))}{mark}</td><td>{100 * value:.2f}%</td>'
            f'<td><span class="bar" style="width: {width:.2f}em"></span></td></tr>'
        )
    return "<table>" + "".join(rows) + "</table>"


def _key_values(pairs: Mapping[str, Any]) -> str:
    rows = []
    for key, value in pairs.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else ("None" if value is None else str(value))
        rows.append(f"<tr><th>{_e(key)}</th><td>{_e(text)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def explanation_html(
    explanation: "Explanation",
    sample_rate: float,
    *,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    details: Optional[Mapping[str, Any]] = None,
    audio: str = "embed",
    audio_folder: str = "report_files",
    listen_rate: Optional[float] = None,
    valid_samples: Optional[int] = None,
    hints: Optional[Sequence[str]] = None,
) -> str:
    r"""The HTML report of one explanation, as a string (see :func:`write_html`).

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input, with its
                    waveforms).
        sample_rate (int): Sample rate in Hz.
        class_names (sequence of str, optional): The model's class names. Default: indices
        title (str, optional): The page's heading. Default: ``"FreqReX explanation"``
        details (mapping, optional): More facts shown under the heading (model, clip, baseline).
                    Default: None
        audio (str, optional): ``"embed"``: the players' WAVs inside the page; ``"link"``: the
                    players refer to ``audio_folder/<signal>.listen.wav``, relative to the page
                    (:func:`write_html` writes them). Default: ``"embed"``
        audio_folder (str, optional): The relative folder of the linked WAVs. Default:
                    ``"report_files"``
        listen_rate (int, optional): Rate of the players' audio in Hz, e.g. the rate of the file
                    the clip was read from. Default: ``sample_rate``
        valid_samples (int, optional): Leading samples of the clip that are real audio; the rest
                    (zero padding to the model's length) is left out of the spectrograms and
                    marked. Default: all
        hints (sequence of str, optional): The hints shown under the headline, as the
                    ``freqrex`` command prints them. Default: those of
                    :func:`~captum_freqrex._explanation.informative.result_hints` for the
                    explanation (the baseline's kind unknown)

    Returns:
        str: A complete HTML document.
    """
    from captum_freqrex.plotting import plot_explanation_spectrograms, plot_responsibility

    _check_audio(audio)

    names = list(class_names) if class_names is not None else None
    summary = explanation.summary(sample_rate=sample_rate)
    heading = title or "FreqReX explanation"
    if hints is None:
        hints = result_hints(summary, _class(names, summary["target"]))
    lead, status, warnings_html = _headline(summary, names)
    responsibility_png = _png(plot_responsibility(explanation, sample_rate=sample_rate, class_names=names))
    spectrogram_png = _png(
        plot_explanation_spectrograms(explanation, sample_rate, class_names=names, valid_samples=valid_samples)
    )
    settings = dict(summary["settings"])
    about = _about(summary, sample_rate)
    embedded = json.dumps(summary).replace("</", "<\\/")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
        f'<p id="lead">{lead}. {status}.</p>',
        _hints_html(hints),
        _key_values(dict(details)) if details else "",
        "<h2>Warnings</h2>",
        warnings_html,
        '<h2>Sets</h2><section id="sets">',
        "<p class=\"muted\">The sufficient set comes from the responsibility ranking (its shortest "
        "prefix that keeps the decision, shrunk, or a louder set where that one is far below the clip's "
        "level); the other two are searched for (removals of bands, single bins and runs of the loudest "
        "bins, beside the ranking's prefixes). Each set's note says how it was found. <b>Sufficient</b>: "
        f"{SET_MEANINGS['sufficient']}. <b>Sufficient &amp; necessary</b>: {SET_MEANINGS['sufficient_necessary']}. "
        f"<b>Complete</b>: {SET_MEANINGS['complete']}. <i>Certified</i>: the model was queried on the set "
        "again before it was returned, and the claim held.</p>",
        _sets_table(summary, explanation.summary(sample_rate=sample_rate, max_listed=LISTED), names),
        "</section>",
        '<h2>Listen</h2><section id="audio">',
        _players(explanation, sample_rate, audio, audio_folder, listen_rate),
        "</section>",
        '<h2>Spectrum and responsibility</h2><section id="figures">',
        f'<img data-figure="responsibility" alt="responsibility spectrum with the sets" src="{_data_uri("image/png", responsibility_png)}">',
        "<h2>Spectrograms</h2>",
        f'<img data-figure="spectrograms" alt="spectrograms with the sets over the clip" src="{_data_uri("image/png", spectrogram_png)}">',
        "</section>",
        '<h2>Class probabilities</h2><section id="probabilities">',
        "<p class=\"muted\">The decision's confidence in each class on the unmasked clip.</p>",
        _probabilities(summary, names),
        "</section>",
        '<h2>Settings</h2><section id="settings">',
        _key_values(about),
        "<p class=\"muted\">The options of the explain() call (pass the same to reproduce it):</p>",
        _key_values(settings),
        "</section>",
        f'<script type="application/json" id="freqrex-summary">{embedded}</script>',
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)



def _headline(summary: Mapping[str, Any], names: Optional[List[str]]) -> Tuple[str, str, str]:
    """The lead sentence (decision, target, flip), the certification status and the warnings, as HTML."""
    decision = _class(names, summary["original_class"])
    lead = f"The model decides <b>{_e(decision)}</b> (confidence {summary['original_confidence']:.3f})"
    if summary["target"] != summary["original_class"]:
        lead += f"; explained target <b>{_e(_class(names, summary['target']))}</b> (confidence {summary['target_confidence']:.3f})"
    if summary["flip_class"] is not None:
        lead += f". Removing the sufficient &amp; necessary set flips it to <b>{_e(_class(names, summary['flip_class']))}</b>"
    found = summary.get("manipulation")
    if found and found["certified"]:
        snr = "" if found.get("snr_db") is None else f" (SNR {found['snr_db']:.1f} dB)"
        lead += f". Removing {count_of(found['features'], 'feature')}{snr} flips it to <b>{_e(_class(names, found['removed_class']))}</b>"
        if found.get("flags"):
            said = "; ".join(f"it {flag['reason']}" for flag in found["flags"])
            lead += f' (<span class="flagged" id="manipulation-flags">no small manipulation: {_e(said)}</span>)'
    flags = summary.get("flags") or []
    said = "; ".join(f"the {SET_LABELS[f['set']]} set {_e(f['reason'])}" for f in flags)
    if not summary["certified"]:
        status = '<span class="bad" id="status" data-status="not-certified">not every set was found and certified: see the table and the warnings</span>'
    elif flags:
        status = f'<span class="flagged" id="status" data-status="flagged">certified but not informative: {said}</span>'
    else:
        status = '<span class="ok" id="status" data-status="certified">every set certified</span>'
    if summary["warnings"]:
        warnings_html = '<ul class="warnings" id="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in summary["warnings"]) + "</ul>"
    else:
        warnings_html = '<p id="warnings" class="muted">No warnings.</p>'
    return lead, status, warnings_html


def _hints_html(hints: Sequence[str]) -> str:
    """The hints under the headline (the ``freqrex`` command's, from one source), as HTML."""
    if not hints:
        return ""
    items = "".join(f"<li>hint: {_e(hint)}</li>" for hint in hints)
    return f'<ul class="hints" id="hints">{items}</ul>'


def _about(summary: Mapping[str, Any], sample_rate: float) -> Dict[str, Any]:
    """How the explanation was made: rate, seed, domain, features, queries, time, versions, schema."""
    return {
        "sample rate (Hz)": sample_rate,
        "seed": summary["seed"],
        "domain": summary["domain"].get("repr"),
        "features": summary["n_features"],
        "queries": f"{summary['queries']} in {summary['forward_calls']} model calls "
        f"({summary['responsibility_queries']} responsibility, {summary['extraction_queries']} extraction)",
        "time": f"{summary['total_seconds']:.2f} s ({summary['model_seconds']:.2f} s in the model)",
        "responsibility search stopped by": summary["stopped_by"],
        "versions": ", ".join(f"{k} {v}" for k, v in summary["versions"].items()),
        "summary schema": f"{summary['schema']} {summary['schema_version']}",
    }

def write_html(
    explanation: "Explanation",
    path: str,
    sample_rate: float,
    *,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    details: Optional[Mapping[str, Any]] = None,
    overwrite: bool = True,
    audio: str = "embed",
    listen_rate: Optional[float] = None,
    valid_samples: Optional[int] = None,
    hints: Optional[Sequence[str]] = None,
) -> str:
    r"""Write the HTML report of one explanation: one self-contained file, or a page and its WAVs.

    The page holds: the decision and whether every set is certified; the warnings
    (:attr:`Explanation.warnings`); each set's certification status, size, frequencies, energy,
    and what the model decides with the set kept alone and removed; audio players for the original,
    each set alone and each set removed (16-bit WAVs, peak-normalised to -1 dBFS, embedded as
    ``data:`` URIs, with each signal's true level beside it); the responsibility spectrum and the
    spectrograms (PNG ``data:`` URIs); the class probabilities; the settings, versions and cost; and
    the :meth:`Explanation.summary` as JSON in ``<script id="freqrex-summary">``. With
    ``audio="embed"`` the file needs nothing else: it opens offline, from a mail attachment,
    anywhere; but seven WAVs of a 30 s clip make it about 9 MB. With ``audio="link"`` the WAVs go
    to a folder beside it (``report.html`` -> ``report_files/original.listen.wav``, ...), the page
    refers to them by relative path (move the two together) and stays a few hundred kB.

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input, with its
                    waveforms).
        path (str): The ``.html`` file to write.
        sample_rate (int): Sample rate in Hz.
        class_names (sequence of str, optional): The model's class names. Default: indices
        title (str, optional): The page's heading. Default: ``"FreqReX explanation"``
        details (mapping, optional): More facts shown under the heading. Default: None
        overwrite (bool, optional): Replace existing files; False raises ``FileExistsError``.
                    Default: True
        audio (str, optional): ``"embed"`` or ``"link"`` (see above). Default: ``"embed"``
        listen_rate (int, optional): Rate of the players' audio in Hz, e.g. the rate of the file
                    the clip was read from. Default: ``sample_rate``
        valid_samples (int, optional): Leading samples of the clip that are real audio; the zero
                    padding after them is left out of the spectrograms and marked. Default: all
        hints (sequence of str, optional): The hints shown under the headline (see
                    :func:`explanation_html`). Default: those of the explanation

    Returns:
        str: The path.
    """
    _check_audio(audio)
    folder = audio_folder(path)
    text = explanation_html(
        explanation, sample_rate, class_names=class_names, title=title, details=details, audio=audio,
        audio_folder=os.path.basename(folder), listen_rate=listen_rate, valid_samples=valid_samples, hints=hints,
    )
    if audio == "link":
        _write_linked_audio(explanation, folder, sample_rate, listen_rate, overwrite)
    with open(path, "w" if overwrite else "x", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _write_linked_audio(
    explanation: "Explanation", folder: str, sample_rate: float, listen_rate: Optional[float], overwrite: bool
) -> None:
    from captum_freqrex.audio import LISTEN_SUFFIX, listening_copy_at

    os.makedirs(folder, exist_ok=True)
    for key, _, signal in _signals(explanation):
        loud, _, rate = listening_copy_at(signal, sample_rate, listen_rate)
        with open(os.path.join(folder, key + LISTEN_SUFFIX), "wb" if overwrite else "xb") as handle:
            handle.write(wav_bytes(loud, rate))
