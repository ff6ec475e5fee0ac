"""Readable records of an :class:`~captum_freqrex.Explanation`: its JSON summary and its CSV.

Also the plain records that :class:`~captum_freqrex.FreqReX` writes into every explanation: the
options of the call (:func:`settings_record`), the confidence in every class
(:func:`class_confidences`) and the package versions (:func:`package_versions`).

Plain functions on an explanation's public data and its :class:`FeatureLayout`; they import
nothing of audio I/O, plotting or the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import SpectralDomain, StftDomain
from captum_freqrex._explanation.informative import summary_flags

if TYPE_CHECKING:
    from captum_freqrex._explanation.explanation import CausalSet, Explanation, FeatureLayout
    from captum_freqrex._explanation.manipulation import Manipulation

SET_NAMES = ("sufficient", "sufficient_necessary", "complete")

#: The name of :attr:`Explanation.quiet_sufficient` in summaries, files and :meth:`Explanation.waveform`.
QUIET_SUFFICIENT = "quiet_sufficient"

#: The name of :attr:`Explanation.manipulation` in summaries, files and :meth:`Explanation.waveform`.
MANIPULATION = "manipulation"

#: Name and version of the layout of :meth:`Explanation.summary` (and so of ``summary.json``).
#: The version grows when a field changes meaning or disappears; new fields may appear without it.
SUMMARY_SCHEMA = "captum_freqrex.summary"
SUMMARY_SCHEMA_VERSION = 1

#: Most frequencies (and bands, and cells) :meth:`Explanation.summary` lists per set by default;
#: a larger set lists its most responsible ones (the CSV of :meth:`Explanation.to_csv` has all).
MAX_LISTED = 1000


def _rounded(value: float) -> Optional[float]:
    """JSON-safe: NaN and infinities become None."""
    return round(value, 6) if math.isfinite(value) else None


def _hz(value: Union[float, Tensor]) -> float:
    return round(float(value), 3)


def package_versions() -> Dict[str, Optional[str]]:
    """Versions of captum_freqrex, torch and captum, as recorded in summaries and saved files."""
    import captum

    from captum_freqrex._version import __version__

    versions = {
        "captum_freqrex": __version__,
        "torch": torch.__version__,
        "captum": getattr(captum, "__version__", None),
    }
    return {name: None if v is None else str(v) for name, v in versions.items()}  # plain str, not TorchVersion


def _plain(value: Any) -> Any:
    """A JSON-safe record of an option value: tensors by shape, other objects by ``repr``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return _plain(value.item())
        return f"tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def settings_record(**options: Any) -> Dict[str, Any]:
    r"""The options of an :meth:`FreqReX.explain` call as a JSON-safe dict.

    Numbers, strings, bools and None are kept as they are, one-element tensors become numbers,
    larger tensors (a ``feature_mask``, ``baselines``) are recorded by their shape, and other
    objects (the domain, the decision) by their ``repr``.

    Args:
        **options: The option values by name.

    Returns:
        dict: One JSON-safe value per option, in the order given.
    """
    return {name: _plain(value) for name, value in options.items()}


def class_confidences(decision: Any, outputs: Tensor) -> Optional[Tensor]:
    r"""The decision's confidence in every class for one raw model output.

    Args:
        decision (Decision): A resolved decision (softmax of logits, probabilities, a threshold).
        outputs (Tensor): ``(K,)`` raw output of the model on one input.

    Returns:
        Tensor or None: ``(n_classes,)`` float64 confidences (probabilities for argmax and
        threshold decisions), on the CPU; None when the decision cannot say (e.g. a user's
        pass function without a fallback).
    """
    if decision is None:
        return None
    try:
        row = outputs.detach().reshape(1, -1)
        n_classes = int(decision.num_classes(row))
        rows = row.expand(n_classes, -1)
        classes = torch.arange(n_classes, device=row.device)
        return decision.confidence(rows, classes).detach().double().cpu()
    except Exception:  # a user's decision may not support every class
        return None


def domain_record(domain: SpectralDomain, length: int) -> Dict[str, Any]:
    r"""The domain as it appears in summaries and saved files.

    Args:
        domain (SpectralDomain): The transform.
        length (int): Length of the explained waveform in samples.

    Returns:
        dict: ``name``, ``repr``, ``grid_ndim`` and, for the STFT, ``n_fft``, ``hop_length`` and
        ``center``.
    """
    record: Dict[str, Any] = {
        "name": getattr(domain, "name", type(domain).__name__),
        "repr": repr(domain),
        "grid_ndim": len(domain.grid_shape(length)),
    }
    if isinstance(domain, StftDomain):
        record.update(n_fft=domain.n_fft, hop_length=domain.hop_length, center=domain.center)
    return record


def set_record(chosen: "CausalSet") -> Dict[str, Any]:
    """A set's certificate and loudness as a JSON-safe dict (see :meth:`Explanation.summary`)."""
    cert = chosen.certificate
    out: Dict[str, Any] = {
        "features": cert.size,
        "bins": chosen.n_bins,
        "certified": cert.certified,
        "minimal_size_resolved": cert.exact,
        "kept_class": cert.kept.decided,
        "kept_confidence": round(cert.kept.confidence, 6),
        "feature_share": _rounded(chosen.feature_share),
        "energy_share": _rounded(chosen.energy_share),
        "level_db": _rounded(chosen.level_db),
        "flags": chosen.flags,
        "note": cert.note,
    }
    if cert.removed is not None:
        out["removed_class"] = cert.removed.decided
        out["removed_confidence"] = round(cert.removed.confidence, 6)
    report = getattr(cert, "shrink", None)
    out["shrink"] = None if report is None else {**asdict(report), "one_minimal": report.one_minimal}
    return out


def manipulation_record(found: "Manipulation") -> Dict[str, Any]:
    """The necessary-mode answer's verdict and loudness as a JSON-safe dict (see :meth:`Explanation.summary`)."""
    return {
        "features": found.size,
        "bins": found.n_bins,
        "certified": found.certified,
        "removed_class": found.removed.decided,
        "removed_confidence": round(found.removed.confidence, 6),  # in the target, as a set's
        "snr_db": _rounded(found.snr_db),
        "feature_share": _rounded(found.feature_share),
        "energy_share": _rounded(found.energy_share),
        "level_db": _rounded(found.level_db),
        "flags": found.flags,
        "note": found.note,
    }


# ----------------------------------------------------------------------------- where a set's frequencies are


def _rows_of(ids: Tensor, freq_axis: int) -> Tensor:
    """The frequency row index of every bin of a grid, shaped like ``ids``."""
    shape = [1] * ids.dim()
    shape[freq_axis] = ids.shape[freq_axis]
    return torch.arange(ids.shape[freq_axis]).view(shape).expand_as(ids)


def _top(positions: Tensor, ranks: Tensor, limit: Optional[int]) -> Tensor:
    """Indices into ``positions`` of the ``limit`` best-ranked, in their original order."""
    if limit is None or positions.numel() <= limit:
        return torch.arange(positions.numel())
    return ranks.topk(limit, largest=False, sorted=False).indices.sort().values


def _frequency_rows(bin_ranks: Tensor, freq_axis: int, worst: int, hz: Optional[Tensor], max_listed: Optional[int]) -> Dict[str, Any]:
    """The distinct frequency rows a set touches (the most responsible ``max_listed`` listed)."""
    row_ranks = bin_ranks.movedim(freq_axis, 0).reshape(bin_ranks.shape[freq_axis], -1).amin(1)
    rows = (row_ranks < worst).nonzero().squeeze(1)
    listed = rows[_top(rows, row_ranks[rows], max_listed)]
    return {
        "n_frequencies": int(rows.numel()),
        "frequency_bins": listed.tolist(),
        "frequencies_hz": None if hz is None else [_hz(hz[r]) for r in listed.tolist()],
        "frequency_span_hz": (
            None if hz is None or rows.numel() == 0 else [_hz(hz[rows[0]]), _hz(hz[rows[-1]])]
        ),
        "frequencies_truncated": bool(listed.numel() < rows.numel()),
    }


def _bands(
    ids: Tensor, freq_axis: int, mask: Tensor, ranks: Tensor, hz: Optional[Tensor], max_listed: Optional[int]
) -> Dict[str, Any]:
    """Features spanning several frequency rows, listed by their lowest and highest row."""
    row_of = _rows_of(ids, freq_axis).reshape(-1)
    flat = ids.reshape(-1)
    n = ranks.numel()
    lo = torch.full((n,), ids.shape[freq_axis], dtype=torch.long).scatter_reduce(0, flat, row_of, "amin")
    hi = torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, flat, row_of, "amax")
    present = hi >= 0
    if not bool((hi[present] > lo[present]).any()):
        return {"bands": None, "bands_hz": None}
    features = (present & mask).nonzero().squeeze(1)
    features = features[_top(features, ranks[features], max_listed)]
    features = features[lo[features].argsort(stable=True)]
    return {
        "bands": [[int(lo[f]), int(hi[f])] for f in features.tolist()],
        "bands_hz": None if hz is None else [[_hz(hz[lo[f]]), _hz(hz[hi[f]])] for f in features.tolist()],
    }


def _cells(
    bin_ranks: Tensor, axes: List[int], worst: int, hz: Optional[Tensor], seconds: Optional[Tensor], max_listed: Optional[int]
) -> Dict[str, Any]:
    """Time-frequency positions of an STFT grid's set (over channels), best ranked first."""
    cell_ranks = bin_ranks.movedim(tuple(axes), (0, 1))
    cell_ranks = cell_ranks.reshape(cell_ranks.shape[0], cell_ranks.shape[1], -1).amin(2)
    cells = (cell_ranks < worst).nonzero()
    order = cell_ranks[cells[:, 0], cells[:, 1]].argsort(stable=True)
    cells = cells[order][: max_listed if max_listed is not None else None]
    return {
        "cells": cells.tolist(),
        "cells_hz_s": (
            None
            if hz is None or seconds is None
            else [[_hz(hz[f]), round(float(seconds[t]), 4)] for f, t in cells.tolist()]
        ),
    }


def set_frequencies(
    layout: "FeatureLayout",
    mask: Tensor,
    sample_rate: Optional[float],
    max_listed: Optional[int],
    ranks: Tensor,
    is_tuple: bool,
) -> Dict[str, Any]:
    r"""Where a set's frequencies are: rows, bands and (STFT) cells, in bins and in Hz.

    Args:
        layout (FeatureLayout): Where each feature's bins sit.
        mask (Tensor): ``(n_features,)`` bool, the features in the set.
        sample_rate (float, optional): Sample rate in Hz for the ``*_hz`` fields (None: no Hz).
        max_listed (int, optional): Most rows, bands and cells listed (the most responsible).
        ranks (Tensor): ``(n_features,)`` each feature's place in the ranking, 1 = most responsible.
        is_tuple (bool): The explanation is of tuple inputs: the fields go in a list ``inputs``.

    Returns:
        dict: The location fields of a set in :meth:`Explanation.summary`.
    """
    mask = mask.detach().cpu().bool()
    worst = ranks.numel() + 1
    entries = []
    for index, ids in enumerate(layout.ids):
        _, freq_axis, frame_axis = layout.axes(index)
        bin_ranks = torch.where(mask[ids], ranks[ids], torch.full_like(ids, worst))
        hz = layout.bin_hz(index, sample_rate)
        entry = _frequency_rows(bin_ranks, freq_axis, worst, hz, max_listed)
        entry.update(_bands(ids, freq_axis, mask, ranks, hz, max_listed))
        if frame_axis is not None:
            seconds = layout.frame_seconds(index, sample_rate)
            entry.update(_cells(bin_ranks, [freq_axis, frame_axis], worst, hz, seconds, max_listed))
        else:
            entry.update(cells=None, cells_hz_s=None)
        entries.append(entry)
    return entries[0] if not is_tuple else {"inputs": entries}


# ----------------------------------------------------------------------------- the summary and the CSV


def summary_record(
    explanation: "Explanation", sample_rate: Optional[float], max_listed: Optional[int], is_tuple: bool
) -> Dict[str, Any]:
    r"""The dict of :meth:`Explanation.summary` (its docstring lists the fields).

    Args:
        explanation (Explanation): The explanation.
        sample_rate (float, optional): Sample rate in Hz for the ``*_hz`` fields (None: bins only).
        max_listed (int, optional): Most frequencies, bands and cells listed per set.
        is_tuple (bool): The explanation is of tuple inputs.

    Returns:
        dict: The summary, ready for ``json.dump``.
    """
    ranks = explanation.feature_ranks()

    def entry(chosen: Optional["CausalSet"]) -> Optional[Dict[str, Any]]:
        if chosen is None:
            return None
        return {**set_record(chosen), **set_frequencies(explanation.layout, chosen.mask, sample_rate, max_listed, ranks, is_tuple)}

    sets = {name: entry(chosen) for name, chosen in explanation.sets.items()}
    alternatives = [entry(chosen) for chosen in explanation.alternatives]
    report = explanation.alternatives_report
    confidences = explanation.class_confidences
    original = explanation.original
    return {
        "schema": SUMMARY_SCHEMA,
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "versions": package_versions(),
        "target": explanation.target,
        "original_class": original.decided,
        "original_confidence": round(original.decided_confidence, 6),
        "target_confidence": round(original.confidence, 6),
        "target_is_decision": explanation.target_is_decision,
        "baseline_decides": explanation.baseline_decides,
        "model_stable": explanation.model_stable,
        "class_confidences": None if confidences is None else [round(float(c), 6) for c in confidences],
        "warnings": list(explanation.warnings),
        "sample_rate": sample_rate,
        "domain": dict(explanation.layout.domain_record),
        "n_features": int(explanation.feature_responsibility.numel()),
        "flip_class": explanation.flip_class,
        "certified": explanation.certified,
        "flags": summary_flags(sets),
        "sets": sets,
        "alternatives": alternatives,
        "alternatives_report": None if report is None else report.as_dict(),
        QUIET_SUFFICIENT: entry(explanation.quiet_sufficient),
        MANIPULATION: None if explanation.manipulation is None else {
            **manipulation_record(explanation.manipulation),
            **set_frequencies(explanation.layout, explanation.manipulation.mask, sample_rate, max_listed, ranks, is_tuple),
        },
        "seed": explanation.settings.get("seed"),
        "settings": dict(explanation.settings),
        "responsibility_queries": explanation.responsibility_queries,
        "extraction_queries": explanation.extraction_queries,
        "stopped_by": explanation.stopped_by,
        **explanation.stats.as_dict(),
    }


def _csv_header(layout: "FeatureLayout", is_tuple: bool, set_columns: Sequence[str]) -> List[str]:
    per_channel = any(layout.axes(i)[0] is not None for i in range(len(layout.ids)))
    stft = any(layout.axes(i)[2] is not None for i in range(len(layout.ids)))
    header = (["input"] if is_tuple else []) + (["channel"] if per_channel else []) + ["bin", "hz"]
    return header + (["frame", "time_s"] if stft else []) + ["feature", "responsibility", "rank", *set_columns]


#: Bins per chunk of :func:`csv_lines`: the text of a chunk is built at once, so a long clip's
#: millions of rows never are (a 10-minute clip's 4.8 million rows took 2.5 GiB as one list).
CSV_CHUNK_BINS = 65536


def _csv_location_columns(
    layout: "FeatureLayout", index: int, header: List[str], sample_rate: Optional[float], chunk: slice
) -> Tuple[List[List[str]], Tensor]:
    """Per bin of one input's ``chunk`` of its frequency-major order: the location columns, and its feature id."""
    channel_axis, freq_axis, frame_axis = layout.axes(index)
    # Frequency-major order: rows of the same bin (channels, frames) stay together.
    order = [freq_axis] + [a for a in (channel_axis, frame_axis) if a is not None]
    grid = layout.ids[index].permute(order)
    flat = grid.reshape(-1)[chunk]
    positions = torch.arange(grid.numel())[chunk]
    coords = torch.stack(torch.unravel_index(positions, grid.shape), -1).tolist()
    named = dict(zip(order, range(len(order))))
    hz = layout.bin_hz(index, sample_rate)
    columns: List[List[str]] = []
    if "input" in header:
        columns.append([str(index)] * len(coords))
    if "channel" in header:
        columns.append([str(c[named[channel_axis]]) if channel_axis is not None else "" for c in coords])
    rows = [c[named[freq_axis]] for c in coords]
    columns.append([str(r) for r in rows])
    columns.append(["" if hz is None else f"{float(hz[r]):.4f}" for r in rows])
    if "frame" in header:
        seconds = layout.frame_seconds(index, sample_rate)
        frames = [c[named[frame_axis]] if frame_axis is not None else None for c in coords]
        columns.append(["" if f is None else str(f) for f in frames])
        columns.append(["" if f is None or seconds is None else f"{float(seconds[f]):.4f}" for f in frames])
    return columns, flat


def csv_lines(explanation: "Explanation", sample_rate: Optional[float], is_tuple: bool) -> Iterator[str]:
    r"""The lines of :meth:`Explanation.to_csv` (its docstring lists the columns), header first,
    made :data:`CSV_CHUNK_BINS` bins at a time.

    Args:
        explanation (Explanation): The explanation.
        sample_rate (float, optional): Sample rate in Hz for ``hz`` and ``time_s``.
        is_tuple (bool): The explanation is of tuple inputs (an ``input`` column).

    Returns:
        iterator of str: One comma-separated line per bin, without line ends.
    """
    layout = explanation.layout
    ranks = explanation.feature_ranks()
    values = explanation.feature_responsibility.detach().cpu().double()
    # The three sets always (empty where not found), then the alternatives and the quiet set found.
    sets: Dict[str, Optional[CausalSet]] = {**explanation.sets, **explanation.named_sets}
    masks = {n: (None if s is None else s.mask.detach().cpu().bool()) for n, s in sets.items()}
    header = _csv_header(layout, is_tuple, list(masks))
    yield ",".join(header)
    for index in range(len(layout.ids)):
        for start in range(0, layout.ids[index].numel(), CSV_CHUNK_BINS):
            chunk = slice(start, start + CSV_CHUNK_BINS)
            columns, flat = _csv_location_columns(layout, index, header, sample_rate, chunk)
            features = flat.tolist()
            columns.append([str(f) for f in features])
            columns.append([f"{v:.6g}" for v in values[flat].tolist()])
            columns.append([str(r) for r in ranks[flat].tolist()])
            for mask in masks.values():
                columns.append([""] * len(features) if mask is None else [str(int(m)) for m in mask[flat].tolist()])
            yield from (",".join(row) for row in zip(*columns))
