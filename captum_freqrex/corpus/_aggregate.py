"""Class-level aggregates of a results store: the data set's figures of the paper, per class.

Per class (the explained target, or the clips' label) and overall:

* how many clips were explained, how many of them can be trusted, and why the others cannot
  (:data:`UNTRUSTED_REASONS`: the model's output changed between calls, the target is not the
  model's decision, the baseline alone decides, a set not found or not certified);
* mean responsibility per band of the store's fixed band grid and the bands the class relies on
  most, over the clips whose search found a cause: a clip whose baseline alone decides (the empty
  set suffices, so its responsibility says nothing about the clip), whose model was unstable, or
  whose responsibility is all zero is left out and counted (:data:`LEFT_OUT_REASONS`), so it
  cannot drag the class's figures towards zero (in ``mode="necessary"`` a clip whose baseline
  keeps the decision counts when its search found removals that change it);
* the flip rate at each k (the fraction of clips whose decision changes when the top-k features
  of their FreqReX ranking are removed) over every explained clip, beside the rate over the
  trusted clips alone, and the median SNR in dB of the changes that flipped;
* ``low_frequency_share``, the mean responsibility in bands centred below ``low_frequency_hz``
  (100 Hz by default), and ``low_frequency_cue``: the class's top band lies there. A classifier
  that decides on mains hum, rumble or a DC offset instead of the sound itself shows up here;
* with transfer targets, the acceptance matrix: per target model and class, the share of clips
  whose certified sufficient signal the target decides as the explained model did, beside the
  share of full clips it already decides that way (a
  :class:`~captum_freqrex.metrics.TransferResult`).

Clips whose status is ``"error"`` are left out.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from captum_freqrex._explanation import MANIPULATION
from captum_freqrex._utils.tables import rows_to_pandas
from captum_freqrex._utils.csv_cells import write_rows
from captum_freqrex.corpus._store import ResultStore
from captum_freqrex.metrics import TransferResult

__all__ = [
    "Aggregates", "ClassAggregate", "aggregate", "write_aggregates", "LOW_FREQUENCY_HZ", "UNTRUSTED_REASONS",
    "LEFT_OUT_REASONS",
]

#: Bands centred below this (Hz) count as low-frequency cues (mains hum at 50/60 Hz, rumble, DC).
LOW_FREQUENCY_HZ = 100.0

#: Name of the class row that aggregates every clip.
OVERALL = "(all)"

#: Why a clip's result cannot be trusted, in the order a clip is counted under (the first that
#: applies): ``unstable`` (the model's output on the clip changed between calls, so no verdict of
#: its search holds), ``target_not_decided`` (the unmasked clip does not keep the target: another
#: class, a tie, or a confidence below the filter), ``baseline_decides`` (the baseline alone gives
#: the target: the empty set suffices) and ``not_certified`` (a set was not found or did not hold
#: on re-query).
UNTRUSTED_REASONS = ("unstable", "target_not_decided", "baseline_decides", "not_certified")

#: Why a clip is left out of the band responsibility and top bands (the first that applies).
LEFT_OUT_REASONS = ("unstable", "baseline_decides", "no_cause")

#: Each reason in words, with the fix (``{n}`` clips, ``{s}`` the plural's "s").
_REASON_TEXT = {
    "unstable": "the model's output changed between calls on {n} clip{s}: make it deterministic (model.eval(), "
                "no dropout, no layer that depends on the rest of its batch)",
    "target_not_decided": "the target is not the model's decision on {n} clip{s} (another class, a tie, or below "
                          "the confidence filter): explain the model's decision",
    "baseline_decides": "the baseline alone decides {n} clip{s}: explain against another baseline (--baseline "
                        "noise, pink or a recording; baseline= in Python)",
    "not_certified": "{n} clip{s} have a set that was not found or did not hold on re-query: raise --max-queries "
                     "(max_queries=), or read the clips' warnings in the store",
    "no_cause": "the search found no cause in {n} clip{s}: raise --max-queries (max_queries=)",
}


#: Each reason once more, when the line has already given its fix.
_REASON_SHORT = {
    "unstable": "{n} unstable", "target_not_decided": "{n} whose target is not the model's decision",
    "baseline_decides": "{n} decided by the baseline alone", "not_certified": "{n} not certified",
}


def _reason_text(reason: str, n: int, short: bool = False) -> str:
    return (_REASON_SHORT if short else _REASON_TEXT)[reason].format(n=n, s="" if n == 1 else "s")


def _flag(clip: Dict[str, Any], column: str) -> bool:
    """A clip's ``target_is_decision`` or ``stable`` column (:attr:`Explanation.target_is_decision`,
    :attr:`Explanation.model_stable`)."""
    return bool(clip.get(column))


def untrusted_reason(clip: Dict[str, Any]) -> Optional[str]:
    """The first of :data:`UNTRUSTED_REASONS` that applies to a ``clips`` row (None: trusted)."""
    if not _flag(clip, "stable"):
        return "unstable"
    if not _flag(clip, "target_is_decision"):
        return "target_not_decided"
    if clip.get("baseline_decides"):
        return "baseline_decides"
    if not clip.get("certified"):
        return "not_certified"
    return None


def _left_out_reason(clip: Dict[str, Any], responsibility: Sequence[float], mode: str = "sufficient") -> Optional[str]:
    """Why a clip is left out of the band figures (None: its search found a cause and it counts).

    In ``mode="necessary"`` a baseline that keeps the decision does not void the responsibility:
    it ranks removals that change the decision all the same (a model need not be monotone in what
    is removed), so such a clip counts when its search found one, and is left out as
    ``baseline_decides`` (not ``no_cause``: no budget would help a monotone model) when not.
    """
    if not _flag(clip, "stable"):
        return "unstable"
    found = any(v > 0 for v in responsibility)
    if clip.get("baseline_decides") and (mode != "necessary" or not found):
        return "baseline_decides"
    if not found:
        return "no_cause"
    return None


@dataclass
class ClassAggregate:
    r"""The aggregates of one class (or of all clips).

    Attributes:
        name (str): The class: its name (or index) when grouped by target, the label when grouped
                    by label; ``"(all)"`` for every clip.
        clips (int): Number of explained clips in it.
        agreement (float, optional): Fraction of its labelled clips whose decision is their label
                    (by target: the precision of the class; by label: its recall). None without labels.
        flip_rate (dict): ``{k: fraction of clips flipped by removing the top-k features}``, over
                    every explained clip (the untrusted ones included: see ``untrusted``).
        median_snr_db (dict): ``{k: median SNR in dB of the flipping changes}`` (None when none flipped).
        band_responsibility (list of float): Mean responsibility per band of the grid over the
                    ``responsibility_clips`` clips whose search found a cause; every band None when
                    no clip counts (never zeros standing in for "no figure").
        top_bands (list of dict): The bands it relies on most, descending: ``band``, ``hz_low``,
                    ``hz_high``, ``hz_centre``, ``responsibility`` (bands with none are not listed).
        low_frequency_share (float, optional): Mean responsibility in bands centred below the
                    low-frequency limit (None when no clip counts).
        low_frequency_cue (bool): Its top band is centred below the low-frequency limit.
        trusted (int): Clips none of :data:`UNTRUSTED_REASONS` applies to.
        untrusted (dict): ``{reason: clips}`` for each of :data:`UNTRUSTED_REASONS` (each untrusted
                    clip under the first reason that applies; the counts sum to ``clips - trusted``).
        flip_rate_trusted (dict): ``{k: flip rate over the trusted clips}`` (None without any).
        responsibility_clips (int): Clips counted in ``band_responsibility``, ``top_bands`` and the
                    low-frequency figures: those whose model was stable, whose baseline alone does
                    not decide and whose responsibility is not all zero.
        left_out (dict): ``{reason: clips}`` for each of :data:`LEFT_OUT_REASONS`: the clips left
                    out of the band figures (they sum to ``clips - responsibility_clips``).
        answers (int, optional): In a ``mode="necessary"`` run, the clips with a certified answer
                    (``Explanation.manipulation``: the fewest features found whose removal changes
                    the decision); None in a ``mode="sufficient"`` run.
        median_answer_features (float, optional): Their median size in features (None without any).
        median_answer_snr_db (float, optional): The median SNR in dB of their removals (None
                    without any).
    """

    name: str
    clips: int
    agreement: Optional[float]
    flip_rate: Dict[int, Optional[float]]
    median_snr_db: Dict[int, Optional[float]]
    band_responsibility: List[Optional[float]]
    top_bands: List[Dict[str, Any]] = field(default_factory=list)
    low_frequency_share: Optional[float] = None
    low_frequency_cue: bool = False
    trusted: int = 0
    untrusted: Dict[str, int] = field(default_factory=dict)
    flip_rate_trusted: Dict[int, Optional[float]] = field(default_factory=dict)
    responsibility_clips: int = 0
    left_out: Dict[str, int] = field(default_factory=dict)
    answers: Optional[int] = None
    median_answer_features: Optional[float] = None
    median_answer_snr_db: Optional[float] = None

    @property
    def top_band_hz(self) -> Optional[List[float]]:
        """``[low, high]`` Hz of the top band (None when no band has responsibility)."""
        return None if not self.top_bands else [self.top_bands[0]["hz_low"], self.top_bands[0]["hz_high"]]


@dataclass
class Aggregates:
    r"""Class-level aggregates of one store.

    Attributes:
        by (str): ``"target"`` (the explained class) or ``"label"``.
        ks (list of int): The flip sizes.
        bands (list of dict): The band grid: ``band``, ``hz_low``, ``hz_high``, ``hz_centre``.
        low_frequency_hz (float): The limit of ``low_frequency_cue``.
        overall (ClassAggregate): Every explained clip.
        classes (list of ClassAggregate): One per class, in class order (by target) or by name (by label).
        failed (int): Clips whose status is ``"error"`` (left out).
        transfer (TransferResult, optional): The acceptance matrix of the transfer targets, its
                    classes those of ``classes`` (in order), its clips those with a certified
                    sufficient set; None for a run without targets.
    """

    by: str
    ks: List[int]
    bands: List[Dict[str, float]]
    low_frequency_hz: float
    overall: ClassAggregate
    classes: List[ClassAggregate]
    failed: int = 0
    transfer: Optional[TransferResult] = None

    def __getitem__(self, name: str) -> ClassAggregate:
        for entry in self.classes:
            if entry.name == name:
                return entry
        raise KeyError(f"no class {name!r}; classes: {', '.join(c.name for c in self.classes)}")

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-safe dict (``k`` keys become strings, as JSON requires)."""

        def plain(entry: ClassAggregate) -> Dict[str, Any]:
            record = asdict(entry)
            record["flip_rate"] = {str(k): v for k, v in entry.flip_rate.items()}
            record["median_snr_db"] = {str(k): v for k, v in entry.median_snr_db.items()}
            record["flip_rate_trusted"] = {str(k): v for k, v in entry.flip_rate_trusted.items()}
            return record

        return {
            "by": self.by, "ks": list(self.ks), "bands": list(self.bands), "low_frequency_hz": self.low_frequency_hz,
            "failed": self.failed, "notice": self.notice(),
            "overall": plain(self.overall), "classes": [plain(c) for c in self.classes],
            "transfer": None if self.transfer is None else _transfer_dict(self.transfer),
        }

    def _transfer_cells(self, index: Optional[int]) -> Dict[str, Any]:
        """The CSV cells of the transfer targets for class ``index`` (None: all clips)."""
        result = self.transfer
        if result is None:
            return {}
        counts, agree = result.counts, result.agree_counts
        assert agree is not None, "a store's transfers always hold the full-clip decisions"
        n = int(counts.sum() if index is None else counts[index])
        cells: Dict[str, Any] = {"transfer_clips": n}
        for m, name in enumerate(result.model_names):
            accepted = result.accepted_counts[m]
            a = int(accepted.sum() if index is None else accepted[index])
            g = int(agree[m].sum() if index is None else agree[m, index])
            cells[f"accepted@{name}"] = a / n if n else None
            cells[f"full_agrees@{name}"] = g / n if n else None
        return cells

    def to_pandas(self) -> Any:
        """The aggregates as a ``pandas.DataFrame``: the rows of :meth:`csv_rows` (one per class and
        one for all clips), as ``aggregates.csv`` holds them but with the names as they are."""
        return rows_to_pandas(self.csv_rows())

    def csv_rows(self) -> List[Dict[str, Any]]:
        """One flat row per class and one for all clips (what :func:`write_aggregates` writes)."""
        rows = []
        indexed: List[Tuple[Optional[int], ClassAggregate]] = [*enumerate(self.classes), (None, self.overall)]
        for index, entry in indexed:
            row: Dict[str, Any] = {"grouping": self.by, "class": entry.name, "clips": entry.clips,
                                   "trusted": entry.trusted, "agreement": entry.agreement}
            for reason in UNTRUSTED_REASONS:
                row[f"untrusted:{reason}"] = entry.untrusted.get(reason, 0)
            row["responsibility_clips"] = entry.responsibility_clips
            for reason in LEFT_OUT_REASONS:
                row[f"left_out:{reason}"] = entry.left_out.get(reason, 0)
            for k in self.ks:
                row[f"flip@{k}"] = entry.flip_rate.get(k)
            for k in self.ks:
                row[f"flip_trusted@{k}"] = entry.flip_rate_trusted.get(k)
            for k in self.ks:
                row[f"median_snr_db@{k}"] = entry.median_snr_db.get(k)
            top = entry.top_bands[0] if entry.top_bands else None
            row["top_band_hz_low"] = None if top is None else top["hz_low"]
            row["top_band_hz_high"] = None if top is None else top["hz_high"]
            row["top_band_responsibility"] = None if top is None else top["responsibility"]
            row["low_frequency_share"] = entry.low_frequency_share
            row["low_frequency_cue"] = int(entry.low_frequency_cue)
            for band, value in zip(self.bands, entry.band_responsibility):
                row[f"band {band['hz_low']:.0f}-{band['hz_high']:.0f} Hz"] = value
            if entry.answers is not None:  # a mode="necessary" run
                row["answers"] = entry.answers
                row["median_answer_features"] = entry.median_answer_features
                row["median_answer_snr_db"] = entry.median_answer_snr_db
            row.update(self._transfer_cells(index))
            rows.append(row)
        return rows

    def transfer_table(self) -> Optional[str]:
        r"""The acceptance matrix as a short plain-text table (None without transfer targets): per
        target, a row ``signal`` (accepted / clips with a certified sufficient set) and a row
        ``full clip`` (full clips the target decides as the explained model did), per class."""
        result = self.transfer
        if result is None:
            return None
        counts, agree = result.counts, result.agree_counts
        assert agree is not None, "a store's transfers always hold the full-clip decisions"

        def cells(hits: torch.Tensor) -> List[str]:
            pairs = [*zip(hits.tolist(), counts.tolist()), (int(hits.sum()), int(counts.sum()))]
            return [f"{h / n:.2f} ({h}/{n})" if n else "-" for h, n in pairs]

        head = ["transfer to", *[c.name for c in self.classes], self.overall.name]
        lines = []
        for m, name in enumerate(result.model_names):
            lines.append([f"{name}: signal", *cells(result.accepted_counts[m])])
            lines.append([f"{name}: full clip", *cells(agree[m])])
        widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
        return "\n".join(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in [head, *lines]
        )

    def table(self) -> str:
        """A short plain-text table: clips, trusted clips, flip rates, median SNR, top band per class
        (:meth:`notice` says which clips the figures leave out or count untrusted)."""
        answers = self.overall.answers is not None  # a mode="necessary" run: its answers' columns
        head = (["class", "clips", "trusted"] + [f"flip@{k}" for k in self.ks] + [f"SNR@{k} dB" for k in self.ks]
                + (["answers", "answer size", "answer SNR dB"] if answers else []) + ["top band"])
        lines = []
        for entry in [*self.classes, self.overall]:
            cells = [entry.name, str(entry.clips), str(entry.trusted)]
            cells += ["-" if entry.flip_rate.get(k) is None else f"{entry.flip_rate[k]:.2f}" for k in self.ks]
            cells += ["-" if entry.median_snr_db.get(k) is None else f"{entry.median_snr_db[k]:.1f}" for k in self.ks]
            if answers:
                size, snr = entry.median_answer_features, entry.median_answer_snr_db
                cells += [str(entry.answers), "-" if size is None else f"{size:g}", "-" if snr is None else f"{snr:.1f}"]
            band = entry.top_band_hz
            top = "-" if band is None else f"{band[0]:.0f}-{band[1]:.0f} Hz"
            if entry.low_frequency_cue:
                top += f"  (below {self.low_frequency_hz:g} Hz: the sound's own, or hum or rumble? listen to its sets)"
            cells.append(top)
            lines.append(cells)
        widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head) - 1)]
        out = []
        for row in [head, *lines]:
            out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                       + "  " + row[-1])
        return "\n".join(line.rstrip() for line in out)

    def notice(self) -> Optional[str]:
        r"""One line naming the clips each figure leaves out or counts untrusted, why, and the fix
        (None when every clip is trusted and counted). Over all clips (``overall``)::

            band responsibility and top bands leave out 12 of 40 clips: the baseline alone decides
            12 clips: explain against another baseline (...); flip rates count 12 untrusted clips
            (flip_trusted@k leaves them out): ...
        """
        entry = self.overall
        parts = []
        left = sum(entry.left_out.values())
        if left:
            reasons = [_reason_text(r, entry.left_out[r]) for r in LEFT_OUT_REASONS if entry.left_out.get(r)]
            parts.append(f"band responsibility and top bands leave out {left} of {entry.clips} clips: "
                         + "; ".join(reasons))
        untrusted = entry.clips - entry.trusted
        if untrusted:
            given = {r for r in LEFT_OUT_REASONS if entry.left_out.get(r)}  # their fix is said already
            reasons = [_reason_text(r, entry.untrusted[r], r in given) for r in UNTRUSTED_REASONS
                       if entry.untrusted.get(r)]
            parts.append(f"flip rates count {untrusted} untrusted clip{'' if untrusted == 1 else 's'} "
                         "(flip_trusted@k in the aggregates leaves them out): " + "; ".join(reasons))
        return "; and ".join(parts) if parts else None


def _median(values: Sequence[float]) -> Optional[float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(finite)) if finite else None


def _finite_or_none(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def _transfer_dict(result: TransferResult) -> Dict[str, Any]:
    """The acceptance matrix, JSON-safe: ``models``, ``classes``, ``acceptance`` and
    ``full_clip_agreement`` (``[model][class]`` rates, null for a class without clips) and
    :meth:`TransferResult.rows`."""
    agree = result.agree_counts
    assert agree is not None, "a store's transfers always hold the full-clip decisions"
    counts = result.counts.double()
    return {
        "models": list(result.model_names),
        "classes": list(result.class_names),
        "acceptance": [[_finite_or_none(v) for v in row] for row in result.rates.tolist()],
        "full_clip_agreement": [[_finite_or_none(v) for v in row] for row in (agree.double() / counts).tolist()],
        "rows": [{k: _finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()} for row in result.rows()],
    }


def _transfer_result(
    models: Sequence[str], names: Sequence[str], groups: Dict[str, List[str]], clips: Dict[str, Dict[str, Any]],
    transfers: Dict[Tuple[str, str], Dict[str, Any]],
) -> TransferResult:
    """The stored transfer rows of the grouped clips as a :class:`TransferResult` (its counting)."""
    ids, classes = [], []
    for index, name in enumerate(names):
        for clip_id in groups[name]:
            if all((clip_id, model) in transfers for model in models):  # clips with a certified signal
                ids.append(clip_id)
                classes.append(index)

    def field_of(key: str, dtype: torch.dtype) -> torch.Tensor:
        values = [[transfers[(clip_id, model)][key] for clip_id in ids] for model in models]
        return torch.tensor(values, dtype=dtype).reshape(len(models), len(ids))

    return TransferResult(
        model_names=tuple(models), class_names=tuple(names), classes=torch.tensor(classes, dtype=torch.long),
        decisions=torch.tensor([int(clips[c]["target"]) for c in ids], dtype=torch.long),
        accepted=field_of("accepted", torch.bool), decided=field_of("signal_class", torch.long),
        agrees=field_of("full_agrees", torch.bool), full_decided=field_of("full_class", torch.long),
    )


def _flip_rates(
    clip_ids: Sequence[str], flips: Dict[str, Dict[int, Dict[str, Any]]], ks: Sequence[int]
) -> Tuple[Dict[int, Optional[float]], Dict[int, Optional[float]]]:
    rates: Dict[int, Optional[float]] = {}
    snr: Dict[int, Optional[float]] = {}
    for k in ks:
        rows = [flips[c][k] for c in clip_ids if k in flips.get(c, {})]
        rates[k] = sum(bool(r["flipped"]) for r in rows) / len(rows) if rows else None
        snr[k] = _median([r["snr_db"] for r in rows if r["flipped"]])
    return rates, snr


def _summarise(
    name: str, clip_ids: Sequence[str], clips: Dict[str, Dict[str, Any]], bands: Dict[str, List[float]],
    flips: Dict[str, Dict[int, Dict[str, Any]]], grid: List[Dict[str, float]], ks: Sequence[int], top: int,
    low_hz: float, mode: str, answers: Dict[str, Dict[str, Any]],
) -> ClassAggregate:
    n_bands = len(grid)
    untrusted = {reason: 0 for reason in UNTRUSTED_REASONS}
    left_out = {reason: 0 for reason in LEFT_OUT_REASONS}
    trusted_ids, counted = [], []
    for clip_id in clip_ids:
        reason = untrusted_reason(clips[clip_id])
        if reason is None:
            trusted_ids.append(clip_id)
        else:
            untrusted[reason] += 1
        values = bands.get(clip_id, [0.0] * n_bands)
        left = _left_out_reason(clips[clip_id], values, mode)
        if left is None:
            counted.append(values)
        else:
            left_out[left] += 1
    # Only clips whose search found a cause: a clip with no cause (all zeros) would drag every
    # band towards zero and make the class look as if it relied on nothing in particular.
    means: List[Optional[float]] = (
        [sum(v[b] for v in counted) / len(counted) for b in range(n_bands)] if counted else [None] * n_bands
    )
    flip_rate, snr = _flip_rates(clip_ids, flips, ks)
    flip_rate_trusted, _ = _flip_rates(trusted_ids, flips, ks)
    labelled = [clips[c] for c in clip_ids if clips[c]["label"] is not None]
    agreement = (
        sum(c["label"] == c["decision_name"] for c in labelled) / len(labelled) if labelled else None
    )
    scored = [(b, m) for b, m in enumerate(means) if m is not None and m > 0]
    top_bands: List[Dict[str, Any]] = [
        {"band": b, **{k: grid[b][k] for k in ("hz_low", "hz_high", "hz_centre")}, "responsibility": m}
        for b, m in sorted(scored, key=lambda bm: (-bm[1], bm[0]))[:top]
    ]
    low_share = (
        sum(m for m, band in zip(means, grid) if m is not None and band["hz_centre"] < low_hz) if counted else None
    )
    cue = bool(top_bands) and top_bands[0]["hz_centre"] < low_hz
    certified = [answers[c] for c in clip_ids if c in answers and answers[c]["certified"]]
    return ClassAggregate(
        name, len(clip_ids), agreement, flip_rate, snr, means, top_bands, low_share, cue,
        trusted=len(trusted_ids), untrusted=untrusted, flip_rate_trusted=flip_rate_trusted,
        responsibility_clips=len(counted), left_out=left_out,
        answers=len(certified) if mode == "necessary" else None,
        median_answer_features=_median([a["size"] for a in certified]),
        median_answer_snr_db=_median([a["snr_db"] for a in certified if a.get("snr_db") is not None]),
    )


def aggregate(
    store: Union[str, ResultStore],
    by: str = "target",
    *,
    top: int = 3,
    low_frequency_hz: float = LOW_FREQUENCY_HZ,
) -> Aggregates:
    r"""Class-level aggregates of a results store.

    Every explained clip counts in ``clips`` and the flip rates; each class also says how many of
    them are trusted and why the others are not (:data:`UNTRUSTED_REASONS`), and
    ``flip_rate_trusted`` leaves the untrusted out. Band responsibility, top bands and the
    low-frequency figures average only the clips whose search found a cause: clips whose model was
    unstable, whose baseline alone decides or whose responsibility is all zero are left out and
    counted (:data:`LEFT_OUT_REASONS`); in ``mode="necessary"`` a clip whose baseline keeps the
    decision counts when its search found removals that change it. :meth:`Aggregates.notice` says
    it in one line.

    Args:
        store (str or ResultStore): The store (a path is opened read-only).
        by (str, optional): ``"target"`` groups clips by the explained class (the model's decision
                    unless a target was given), ``"label"`` by their label. Default: ``"target"``
        top (int, optional): How many top bands to list per class. Default: 3
        low_frequency_hz (float, optional): Bands centred below this are low-frequency cues.
                    Default: 100.0

    Returns:
        Aggregates: Per class and overall.

    Raises:
        ValueError: For an unknown ``by``, or ``by="label"`` on a store without labels.
    """
    if by not in ("target", "label"):
        raise ValueError(f"by must be 'target' or 'label', got {by!r}")
    opened = store if isinstance(store, ResultStore) else ResultStore(os.fspath(store), readonly=True)
    try:
        run = opened.run_record()
        if run is None:
            raise ValueError(f"{opened.path} holds no run yet")
        ks = [int(k) for k in run["settings"].get("ks", [])]
        grid = [{k: row[k] for k in ("band", "hz_low", "hz_high", "hz_centre")} for row in opened.rows("bands")]
        all_clips = opened.rows("clips", order_by="position")
        clips = {c["clip_id"]: c for c in all_clips if c["status"] == "explained"}
        failed = len(all_clips) - len(clips)
        bands: Dict[str, List[float]] = defaultdict(lambda: [0.0] * len(grid))
        for row in opened.rows("band_responsibility"):
            bands[row["clip_id"]][row["band"]] = row["responsibility"]
        flips: Dict[str, Dict[int, Dict[str, Any]]] = defaultdict(dict)
        for row in opened.rows("flips"):
            flips[row["clip_id"]][row["k"]] = row
        answers = {row["clip_id"]: row for row in opened.rows("sets") if row["kind"] == MANIPULATION}
        models = [target["name"] for target in run["settings"].get("transfer_to") or []]
        transfers = {(row["clip_id"], row["model"]): row for row in opened.rows("transfers")}
    finally:
        if opened is not store:
            opened.close()
    groups: Dict[str, List[str]] = defaultdict(list)
    order: Dict[str, Any] = {}
    for clip_id, clip in clips.items():
        if by == "target":
            key = clip["target_name"] if clip["target_name"] is not None else str(clip["target"])
            order.setdefault(key, (clip["target"], key))
        else:
            if clip["label"] is None:
                continue
            key = clip["label"]
            order.setdefault(key, (0, key))
        groups[key].append(clip_id)
    if by == "label" and not groups:
        raise ValueError("no clip in the store has a label: aggregate by='target' instead")
    mode = str(run["settings"].get("mode", "sufficient"))
    args = (clips, bands, flips, grid, ks, top, low_frequency_hz, mode, answers)
    names = sorted(groups, key=lambda n: order[n])
    classes = [_summarise(name, groups[name], *args) for name in names]
    overall_ids = [c for c in clips if by == "target" or clips[c]["label"] is not None]
    overall = _summarise(OVERALL, overall_ids, *args)
    transfer = _transfer_result(models, names, groups, clips, transfers) if models else None
    return Aggregates(by, ks, grid, low_frequency_hz, overall, classes, failed, transfer)


def write_aggregates(
    store: Union[str, ResultStore], json_path: str, csv_path: str, *, low_frequency_hz: float = LOW_FREQUENCY_HZ
) -> Dict[str, Optional[Aggregates]]:
    r"""Write the aggregates by target (and by label, when clips have labels) as JSON and CSV.

    ``json_path`` holds ``{"by_target": ..., "by_label": ... or null}`` (each as
    :meth:`Aggregates.to_dict`); ``csv_path`` one row per class and grouping (column ``grouping``)
    plus an ``(all)`` row per grouping. Both files are rewritten from the store on every call. A
    text cell of the CSV that a spreadsheet would run as a formula (a class name or label starting
    with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading ``'``; numbers are
    written as they are. The JSON holds the names unchanged.

    Args:
        store (str or ResultStore): The store.
        json_path (str): Where to write the JSON.
        csv_path (str): Where to write the CSV.
        low_frequency_hz (float, optional): See :func:`aggregate`. Default: 100.0

    Returns:
        dict: ``{"target": Aggregates, "label": Aggregates or None}``.
    """
    by_target = aggregate(store, "target", low_frequency_hz=low_frequency_hz)
    try:
        by_label: Optional[Aggregates] = aggregate(store, "label", low_frequency_hz=low_frequency_hz)
    except ValueError:
        by_label = None
    payload = {"by_target": by_target.to_dict(), "by_label": None if by_label is None else by_label.to_dict()}
    text = json.dumps(payload, indent=2, allow_nan=False, default=str)
    rows = by_target.csv_rows() + ([] if by_label is None else by_label.csv_rows())
    buffer = io.StringIO()
    write_rows(buffer, rows, lineterminator="\n")  # class names and labels neutralised (CSV injection)
    with open(json_path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    return {"target": by_target, "label": by_label}
