"""Explanations as short text: where a set's frequencies are and what each set is, in a few lines.

The ``freqrex`` command prints these lines for each clip (:func:`~captum_freqrex.cli._explain.human_summary`),
:meth:`Explanation.describe` (and ``print(explanation)``) prints them with the decision and the cost
(:func:`describe`), and the HTML report writes the frequencies with :func:`format_frequencies`.
Everything here reads a summary record (:meth:`Explanation.summary`), so a saved ``summary.json``
reads the same.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from captum_freqrex._explanation.informative import format_level_db, result_hints

__all__ = ["COMMAND_LISTING", "LIBRARY_LISTING", "format_frequencies", "frequency_text", "set_lines", "manipulation_lines",
           "with_class_names", "describe", "closing_lines"]


def format_frequencies(values: Sequence[float]) -> str:
    r"""Frequencies as short text, ``"27.77, 56.57, 1804.97, 1805"``: four significant digits, more
    where two distinct values would otherwise read the same.

    Args:
        values (sequence of float): Frequencies (Hz or bins).

    Returns:
        str: The values, comma-separated.
    """
    decimals = 0
    while decimals < 4 and len({round(v, decimals) for v in values}) < len(set(values)):
        decimals += 1

    def one(value: float) -> str:
        digits = len(str(int(abs(value))))
        return f"{value:.{max(4, digits + decimals)}g}"

    return ", ".join(one(v) for v in values)


#: Where the command line says a large set's frequencies are listed, and what writes them all.
COMMAND_LISTING = ("summary.json", "--bins-csv")

#: The same for :meth:`Explanation.describe`.
LIBRARY_LISTING = ("summary()", "to_csv()")


def frequency_text(entry: Dict[str, Any], shown: int = 8, listing: Tuple[str, str] = COMMAND_LISTING) -> str:
    """Where a set's frequencies are, in a few words: all of them for a small set, else a span and the strongest."""
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
        more = f", ... ({entry['features']:,} bands)" if entry["features"] > shown else ""
        return f"bands {text}{more}{unit}"
    if total <= shown:
        return "at " + format_frequencies(values) + unit
    span = location.get("frequency_span_hz") if hz is not None else [values[0], values[-1]]
    assert span is not None, "a set with frequencies records their span"
    place, writer = listing
    where = (
        f"the {len(values):,} most responsible in {place}; {writer} writes all"
        if location.get("frequencies_truncated") else f"every one in {place}"
    )
    return f"{total:,} frequencies from {span[0]:.4g} to {span[1]:.4g}{unit} ({where})"


def count_of(n: int, noun: str) -> str:
    """``"1 feature"``, ``"8,946 features"``: a count with its noun, singular for one."""
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _size(entry: Mapping[str, Any]) -> str:
    # "1 feature (1 bin)", "3 features (12 bins)", "8,946 features (8,946 bins)"
    return f"{count_of(entry['features'], 'feature')} ({count_of(entry['bins'], 'bin')})"


def manipulation_lines(summary: Mapping[str, Any], listing: Tuple[str, str] = COMMAND_LISTING) -> List[str]:
    """The necessary-mode answer's two lines (none without one): what removing it does and how
    loud that is, then where its frequencies are."""
    found = summary.get("manipulation")
    if not found:
        return []
    status = "certified" if found["certified"] else "NOT certified"
    snr = "" if found.get("snr_db") is None else f", SNR {found['snr_db']:.1f} dB"
    share = "" if found.get("feature_share") is None else f", {100 * found['feature_share']:.2g}% of the features"
    pronoun = "it" if found["features"] == 1 else "them"
    return [
        f"  {'fewest to remove':24s} {_size(found)}{share}{snr}, {status}; removing {pronoun} flips the decision to "
        f"{summary.get('manipulation_class_name', found['removed_class'])!s}",
        f"  {'':24s} {frequency_text(found, listing=listing)}",
    ] + [f"  {'':24s} FLAGGED, not a small manipulation: it {flag['reason']}" for flag in found.get("flags", [])]


def set_lines(summary: Mapping[str, Any], listing: Tuple[str, str] = COMMAND_LISTING) -> List[str]:
    """Two lines per set of the summary: its size, loudness and certificate, then where its
    frequencies are; the necessary-mode answer first, where there is one (:func:`manipulation_lines`)."""
    sets = summary["sets"]
    lines = manipulation_lines(summary, listing)
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
            loudness = f", {100 * entry['energy_share']:.1f}% of the energy, loudest bin {format_level_db(entry['level_db'])}"
        share = "" if entry.get("feature_share") is None else f", {100 * entry['feature_share']:.1f}% of the features"
        lines.append(
            f"  {label:24s} {_size(entry)}{share}{loudness}, {status}{extra}"
        )
        lines.append(f"  {'':24s} {frequency_text(entry, listing=listing)}")
        lines += [f"  {'':24s} FLAGGED, not informative: {flag['reason']}" for flag in entry.get("flags", [])]
    for number, entry in enumerate(summary.get("alternatives") or [], start=1):
        status = "certified" if entry["certified"] else "NOT certified"
        label = f"alternative {number}"
        lines.append(f"  {label:24s} {_size(entry)}, disjoint from the others, {status}")
        lines.append(f"  {'':24s} {frequency_text(entry, listing=listing)}")
    report = summary.get("alternatives_report")
    if report and report.get("stopped"):
        lines.append(f"  {'':24s} no further disjoint set: {report['stopped']}")
    quiet = summary.get("quiet_sufficient")
    if quiet:
        lines.append(
            f"  {'quiet sufficient':24s} {_size(quiet)}, loudest bin "
            f"{format_level_db(quiet['level_db'])}, certified: the model keeps its decision on this near-silent input too "
            "(the sufficient set above, at the clip's level, replaced it)"
        )
        lines.append(f"  {'':24s} {frequency_text(quiet, listing=listing)}")
    return lines


def with_class_names(text: str, class_names: Optional[Sequence[str]]) -> str:
    """``class 7`` -> ``class 7 'reed'`` in a message of the core, where the model names its classes."""
    if not class_names:
        return text

    def name(match: "re.Match[str]") -> str:
        index = int(match.group(1))
        return f"{match.group(0)} '{class_names[index]}'" if index < len(class_names) else match.group(0)

    return re.sub(r"\bclass (\d+)\b(?! ')", name, text)


def describe(summary: Mapping[str, Any], class_names: Optional[Sequence[str]] = None) -> str:
    r"""An explanation in a few lines, from its summary: the decision, each set (as the ``freqrex``
    command prints it), the warnings and hints, and the cost.

    Args:
        summary (mapping): :meth:`Explanation.summary`.
        class_names (sequence of str, optional): Names of the model's classes. Default: None
                    (classes by index)

    Returns:
        str: The lines, joined by newlines.
    """

    def name(index: Optional[int]) -> str:
        return "none" if index is None else with_class_names(f"class {index}", class_names)

    header = f"decision: {name(summary['original_class'])} (confidence {summary['original_confidence']:.2f})"
    if summary["target"] != summary["original_class"]:
        header += f"; explained target {name(summary['target'])} (confidence {summary['target_confidence']:.2f})"
    found = summary.get("manipulation") or {}
    names = {"flip_class_name": name(summary.get("flip_class")), "manipulation_class_name": name(found.get("removed_class"))}
    lines = [header] + set_lines({**summary, **names}, LIBRARY_LISTING)
    return "\n".join(lines + closing_lines(summary, name(summary["target"]), class_names))


def closing_lines(
    summary: Mapping[str, Any], target_name: str, class_names: Optional[Sequence[str]] = None,
    baseline_kind: Optional[str] = None,
) -> List[str]:
    """The lines after the sets: each warning (classes named), each hint
    (:func:`~captum_freqrex._explanation.informative.result_hints`) and the cost."""
    lines = [f"  warning: {with_class_names(warning, class_names)}" for warning in summary.get("warnings", [])]
    lines += [f"  hint: {hint}" for hint in result_hints(summary, target_name, baseline_kind)]
    lines.append(
        f"  {summary['queries']:,} model queries in {summary['forward_calls']:,} calls, "
        f"{summary['total_seconds']:.1f} s ({summary['model_seconds']:.1f} s in the model)"
    )
    return lines
