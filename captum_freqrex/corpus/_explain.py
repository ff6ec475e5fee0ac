"""Explain a few clips and turn the results into plain rows: the work a backend runs, anywhere.

:func:`explain_clips` is the one function that touches the model. The local backend calls it in
the driver; the Ray backend calls it in workers and ships its rows back, so both write exactly
the same rows. Rows are plain Python values (no tensors, no explanation objects), ready for
SQLite and cheap to send between processes. With transfer targets, it also feeds each clip's
certified sufficient signal (and the full clip) to those models, with
:func:`captum_freqrex.metrics.transferability`.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

# The generated baselines and their level are freqrex explain's.
from captum_freqrex._core.options import FreqReXOptions
from captum_freqrex._explanation import MANIPULATION
from captum_freqrex.audio import BASELINE_KINDS, NOISE_LEVEL_DB
from captum_freqrex.corpus._grid import BandGrid, band_grid

__all__ = ["ExplainOptions", "ClipRecord", "explain_clips", "BASELINE_KINDS", "NOISE_LEVEL_DB"]


def update_digest(digest: Any, value: Tensor, prefix: str = "") -> None:
    """Feed a tensor's dtype, shape and exact bytes to a hashlib digest (any dtype, 0-d included)."""
    data = value.detach().to("cpu").contiguous()
    digest.update(f"{prefix}{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())


def _tensor_hash(value: Tensor) -> str:
    digest = hashlib.blake2b(digest_size=8)
    update_digest(digest, value)
    return digest.hexdigest()


def _described(value: Any) -> Any:
    """An option value as a JSON-safe record that is equal exactly when the option is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)} {_tensor_hash(value)}"
    if isinstance(value, (list, tuple)):
        return [_described(v) for v in value]
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return repr(value)


@dataclass(frozen=True)
class ExplainOptions:
    r"""Everything that decides a clip's result besides the model and the clip.

    Attributes:
        sample_rate (int): The model's (and clips') rate in Hz.
        seed (int): FreqReX's seed; every clip uses the same one, so a clip's result does not
                    depend on its batch, order or worker.
        mode (str): ``"sufficient"`` or ``"necessary"`` (see :class:`~captum_freqrex.FreqReX`).
        search (str or object, optional): FreqReX's ``search=``.
        max_queries (int): FreqReX's query budget per clip for responsibility.
        n_samples (int): FreqReX's ``n_samples``.
        bands (int, optional): Explain this many log-spaced bands (:func:`~captum_freqrex.log_bands`)
                    instead of rfft bins.
        feature_mask (Tensor, optional): A feature mask ``(freq,)`` for clips of one length.
        baseline (str or Tensor): ``"silence"``, ``"noise"``, ``"pink"`` (seeded by ``seed``,
                    :data:`NOISE_LEVEL_DB` below each clip's RMS) or a ``(time,)`` waveform,
                    cropped or zero-padded to each clip.
        decision (optional): FreqReX's ``decision=``.
        output (optional): FreqReX's ``output=`` selector.
        ks (tuple of int): Sizes of the flip rates (top-k removals).
        max_extraction_queries (int): FreqReX's ``max_extraction_queries``.
        class_names (tuple of str, optional): Names of the model's classes.
        rows_per_call (int, optional): Most waveforms per model call (None: chosen from the
                    available memory); not in :meth:`record`, the results do not depend on it.
    """

    sample_rate: int
    seed: int = 0
    mode: str = "sufficient"
    search: Any = None
    max_queries: int = 1000
    n_samples: int = 8
    bands: Optional[int] = None
    feature_mask: Optional[Tensor] = None
    baseline: Any = "silence"
    decision: Any = None
    output: Any = None
    ks: Tuple[int, ...] = (1, 5)
    max_extraction_queries: int = 64
    class_names: Optional[Tuple[str, ...]] = None
    rows_per_call: Optional[int] = None

    def record(self) -> Dict[str, Any]:
        """The options as a JSON-safe dict (what a store compares before resuming)."""
        baseline = self.baseline
        if isinstance(baseline, Tensor):
            baseline = f"waveform {_tensor_hash(baseline)}"
        elif baseline in ("noise", "pink"):
            baseline = f"{baseline} at {NOISE_LEVEL_DB:g} dB"
        return {
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "mode": self.mode,
            "search": _described(self.search),
            "max_queries": self.max_queries,
            "n_samples": self.n_samples,
            "bands": self.bands,
            "feature_mask": _described(self.feature_mask),
            "baseline": baseline,
            "decision": _described(self.decision),
            "output": _described(self.output),
            "ks": list(self.ks),
            "max_extraction_queries": self.max_extraction_queries,
        }

    def grid(self) -> BandGrid:
        return band_grid(self.sample_rate)

    def freqrex_options(self) -> FreqReXOptions:
        """The options of every clip's :meth:`FreqReX.explain` call, as the one options object."""
        return FreqReXOptions(
            n_samples=self.n_samples, seed=self.seed, max_queries=self.max_queries, mode=self.mode,
            max_extraction_queries=self.max_extraction_queries, perturbations_per_eval=self.rows_per_call,
        )


@dataclass
class ClipRecord:
    r"""The rows one clip adds to a store (see :mod:`captum_freqrex.corpus._store` for the columns).

    Attributes:
        clip (dict): The ``clips`` row.
        sets (list of dict): The ``sets`` rows (found sets only).
        set_bins (list of dict): The ``set_bins`` rows (one per feature of each set).
        bands (list of float): Responsibility per band of the grid (the ``band_responsibility`` rows).
        flips (list of dict): The ``flips`` rows, one per k.
        transfers (list of dict): The ``transfers`` rows, one per transfer target (none when the
                    clip has no certified sufficient set, or the run no targets).
    """

    clip: Dict[str, Any]
    sets: List[Dict[str, Any]] = field(default_factory=list)
    set_bins: List[Dict[str, Any]] = field(default_factory=list)
    bands: List[float] = field(default_factory=list)
    flips: List[Dict[str, Any]] = field(default_factory=list)
    transfers: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def queries(self) -> int:
        return int(self.clip.get("queries") or 0) + int(self.clip.get("flip_queries") or 0)


def _finite(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


def _name(options: ExplainOptions, index: Optional[int]) -> Optional[str]:
    if index is None:
        return None
    names = options.class_names
    return names[index] if names and 0 <= index < len(names) else str(index)


def _baseline_for(options: ExplainOptions, wave: Tensor) -> Optional[Tensor]:
    from captum_freqrex.audio import fit_length, noise_like

    kind = options.baseline
    if isinstance(kind, Tensor):
        return fit_length(kind.to(wave.dtype), wave.shape[-1], options.sample_rate)[0]
    if kind == "silence":
        return None
    color = "white" if kind == "noise" else "pink"
    return noise_like(wave, color, NOISE_LEVEL_DB, torch.Generator().manual_seed(options.seed))


def _feature_mask(options: ExplainOptions, length: int) -> Optional[Tensor]:
    if options.feature_mask is not None:
        return options.feature_mask
    if options.bands is None:
        return None
    from captum_freqrex import log_bands

    return log_bands(length, options.bands, sample_rate=options.sample_rate)


class _Counting:
    """The model, counting the rows it is called on (the flip metric's queries)."""

    def __init__(self, model: Callable) -> None:
        self.model, self.rows = model, 0

    def __call__(self, x: Any, *args: Any) -> Any:
        self.rows += int(x.shape[0])
        return self.model(x, *args)


def _set_rows(expl: Any, hz: Tensor, ids: Tensor, clip_id: str) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    ranks = expl.feature_ranks()
    n = ranks.numel()
    bins = torch.arange(ids.numel())
    low = torch.full((n,), ids.numel(), dtype=torch.long).scatter_reduce(0, ids, bins, "amin")
    high = torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, ids, bins, "amax")
    sets, set_bins = [], []
    for name, chosen in expl.sets.items():
        if chosen is None:
            continue
        cert = chosen.certificate
        removed = cert.removed
        sets.append({
            "clip_id": clip_id,
            "kind": name,
            "size": int(cert.size),
            "n_bins": int(chosen.n_bins),
            "certified": bool(cert.certified),
            "note": cert.note,
            "energy_share": _finite(chosen.energy_share),
            "level_db": _finite(chosen.level_db),
            "kept_class": int(cert.kept.decided),
            "kept_confidence": float(cert.kept.confidence),
            "flips_to": None if removed is None else int(removed.decided),
            "removed_confidence": None if removed is None else float(removed.confidence),
            "snr_db": None,
        })
    found = expl.manipulation  # mode="necessary": the answer, only ever removed
    if found is not None:
        sets.append({
            "clip_id": clip_id, "kind": MANIPULATION, "size": int(found.size), "n_bins": int(found.n_bins),
            "certified": bool(found.certified), "note": found.note, "energy_share": _finite(found.energy_share),
            "level_db": _finite(found.level_db), "kept_class": None, "kept_confidence": None,
            "flips_to": int(found.removed.decided), "removed_confidence": float(found.removed.confidence),
            "snr_db": _finite(found.snr_db),
        })
    chosen_sets = [(name, chosen.mask) for name, chosen in expl.sets.items() if chosen is not None]
    for name, mask in chosen_sets + ([(MANIPULATION, found.mask)] if found is not None else []):
        for feature in mask.detach().cpu().bool().nonzero().squeeze(1).tolist():
            lo, hi = int(low[feature]), int(high[feature])
            set_bins.append({
                "clip_id": clip_id, "kind": name, "feature": feature, "rank": int(ranks[feature]),
                "bin_low": lo, "bin_high": hi, "hz_low": float(hz[lo]), "hz_high": float(hz[hi]),
            })
    return sets, set_bins


def _band_responsibility(expl: Any, hz: Tensor, ids: Tensor, grid: BandGrid) -> List[float]:
    """Each feature's responsibility spread evenly over its bins, summed per band of the grid."""
    values = expl.feature_responsibility.detach().cpu().double()
    counts = torch.bincount(ids, minlength=values.numel()).clamp(min=1).double()
    per_bin = values[ids] / counts[ids]
    totals = torch.zeros(len(grid), dtype=torch.float64).index_add_(0, grid.band_of(hz), per_bin)
    return [float(v) for v in totals]


def _transfer_rows(
    targets: Mapping[str, Callable], explanations: Sequence[Any], waves: Tensor, options: ExplainOptions,
    clips: Sequence[Any],
) -> Dict[int, List[Dict[str, Any]]]:
    """The ``transfers`` rows of each clip (by index) that has a certified sufficient set."""
    from captum_freqrex.metrics import transferability

    kept = [i for i, e in enumerate(explanations) if e.sufficient is not None and e.sufficient.certified]
    if not kept:
        return {}
    # The signal is Explanation.waveform("sufficient"); the full clip is the one the model was
    # given (not its resynthesis), so "agrees" is the target's decision on the clip itself.
    result = transferability(
        [explanations[i] for i in kept], None, targets, originals=waves[kept], class_names=options.class_names,
        decision=options.decision, output=options.output, max_examples_per_batch=options.rows_per_call,
    )
    assert result.agrees is not None and result.full_decided is not None, "full clips were given"
    rows: Dict[int, List[Dict[str, Any]]] = {}
    for j, index in enumerate(kept):
        rows[index] = [
            {
                "clip_id": clips[index].clip_id, "model": name,
                "accepted": bool(result.accepted[m, j]),
                "signal_class": int(result.decided[m, j]),
                "signal_class_name": _name(options, int(result.decided[m, j])),
                "full_agrees": bool(result.agrees[m, j]),
                "full_class": int(result.full_decided[m, j]),
                "full_class_name": _name(options, int(result.full_decided[m, j])),
            }
            for m, name in enumerate(result.model_names)
        ]
    return rows


def explain_clips(
    model: Callable, clips: Sequence[Any], options: ExplainOptions, targets: Optional[Mapping[str, Callable]] = None
) -> List[ClipRecord]:
    r"""Explain clips of one length in one :meth:`FreqReX.explain` call; flips at ``options.ks``;
    the certified sufficient signals fed to the ``targets``.

    Results per clip equal those of explaining it alone (FreqReX gives every example the same
    seed, and the flip metric's verdicts are per example). Where the batch fails (the model raises
    on one of its clips, say), each clip is explained alone, and a clip that fails alone too gets
    an ``"error"`` record naming the exception (retried by the next run), so one bad clip does
    not stop a data set.

    Args:
        model (Callable): The model.
        clips (sequence of Clip): Clips with waveforms, all of one length.
        options (ExplainOptions): The run's options.
        targets (Mapping of str to Callable, optional): Transfer targets by name: models of the
                    same task (same classes, rate and clip length). Default: None

    Returns:
        list of ClipRecord: One per clip, in order.
    """
    try:
        return _explain_batch(model, clips, options, targets)
    except Exception as error:  # noqa: BLE001 (the model's own exceptions: any type)
        if len(clips) == 1:
            return [failed_record(clips[0], error)]
    return [record for clip in clips for record in explain_clips(model, [clip], options, targets)]


def _explain_batch(
    model: Callable, clips: Sequence[Any], options: ExplainOptions, targets: Optional[Mapping[str, Callable]]
) -> List[ClipRecord]:
    # explain_clips without the fallback: any failure raises.
    from captum_freqrex import FreqReX

    waves = torch.stack([clip.waveform for clip in clips])
    length = waves.shape[-1]
    bases = [_baseline_for(options, wave) for wave in waves]
    baselines = None if bases[0] is None else torch.stack([b for b in bases if b is not None])
    feature_mask = _feature_mask(options, length)
    explainer = FreqReX(model, decision=options.decision, search=options.search, output=options.output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every warning is in the explanation, and so in the store
        with torch.inference_mode():
            explanations = explainer.explain(
                waves, baselines=baselines, feature_mask=feature_mask, options=options.freqrex_options()
            )
            n_features = int(explanations[0].feature_responsibility.numel())
            ks = [k for k in options.ks if k <= n_features]
            counting = _Counting(model)
            flip_start = time.perf_counter()
            flips = _flips(counting, waves, explanations, baselines, feature_mask, ks, options)
            transfers = _transfer_rows(targets, explanations, waves, options, clips) if targets else {}
            # The flips' and transfers' time, shared evenly by the clips of the batch.
            after_seconds = time.perf_counter() - flip_start
    grid = options.grid()
    hz = torch.fft.rfftfreq(length, d=1.0 / options.sample_rate).double()
    records = []
    for index, (clip, expl) in enumerate(zip(clips, explanations)):
        ids = expl.layout.ids[0].reshape(-1).long()
        sets, set_bins = _set_rows(expl, hz, ids, clip.clip_id)
        row = _clip_row(clip, expl, options, int(length), n_features)
        row["flip_queries"] = counting.rows // len(clips)
        row["seconds"] = float(expl.stats.total_seconds) + after_seconds / len(clips)
        flip_rows = [] if flips is None else _flip_rows(clip.clip_id, flips, index, ks, options)
        records.append(ClipRecord(row, sets, set_bins, _band_responsibility(expl, hz, ids, grid), flip_rows,
                                  transfers.get(index, [])))
    return records


def _flips(
    model: Callable, waves: Tensor, explanations: Sequence[Any], baselines: Optional[Tensor],
    feature_mask: Optional[Tensor], ks: List[int], options: ExplainOptions,
) -> Any:
    """The top-k of each clip's FreqReX ranking removed, for each k of ``ks`` (None when there is none)."""
    from captum_freqrex.metrics import perturbation_success_rate

    if not ks:
        return None
    responsibility = torch.stack([torch.as_tensor(e.responsibility) for e in explanations])
    return perturbation_success_rate(
        model, waves, responsibility, baselines=baselines, target=[e.target for e in explanations],
        feature_mask=feature_mask, k=ks, decision=options.decision, output=options.output,
        max_examples_per_batch=options.rows_per_call,
    )


def _clip_row(clip: Any, expl: Any, options: ExplainOptions, length: int, n_features: int) -> Dict[str, Any]:
    """The ``clips`` row of an explained clip, but its ``flip_queries`` and ``seconds``."""
    confidences = expl.class_confidences
    return {
        "clip_id": clip.clip_id,
        "position": clip.position,
        "source": clip.source,
        "label": clip.label,
        "fingerprint": clip.fingerprint,
        "num_samples": length,
        "n_features": n_features,
        "decision": int(expl.original.decided),
        "decision_name": _name(options, int(expl.original.decided)),
        "target": int(expl.target),
        "target_name": _name(options, int(expl.target)),
        "decision_confidence": float(expl.original.decided_confidence),
        "target_confidence": float(expl.original.confidence),
        "class_confidences": None if confidences is None else [float(c) for c in confidences],
        "baseline_class": None if expl.baseline is None else int(expl.baseline.decided),
        "baseline_decides": bool(expl.baseline_decides),
        "flip_class": expl.flip_class,
        "certified": bool(expl.certified),
        "target_is_decision": bool(expl.target_is_decision),
        "stable": bool(expl.model_stable),
        "queries": int(expl.stats.queries),
        "forward_calls": int(expl.stats.forward_calls),
        "flip_queries": None,
        "model_seconds": float(expl.stats.model_seconds),
        "seconds": None,
        "stopped_by": expl.stopped_by,
        "warnings": list(expl.warnings),
        "notes": list(clip.notes),
        "status": "explained",
        "error": None,
    }


def _flip_rows(clip_id: str, flips: Any, index: int, ks: List[int], options: ExplainOptions) -> List[Dict[str, Any]]:
    """The ``flips`` rows of clip ``index``: one per k."""
    rows = []
    for j, k in enumerate(ks):
        snr = float(flips.snr_db[index, j])
        rows.append({
            "clip_id": clip_id, "k": int(k), "flipped": bool(flips.flipped[index, j]),
            "snr_db": snr if not math.isnan(snr) else None,
            "new_class": int(flips.decided[index, j]),
            "new_class_name": _name(options, int(flips.decided[index, j])),
            "target_confidence": float(flips.confidence[index, j]),
        })
    return rows


def error_record(clip: Any, error: Optional[str] = None) -> ClipRecord:
    """The ``clips`` row of a clip that could not be read, or explained (status ``"error"``;
    ``error``: why, default the clip's own read error)."""
    row = {
        "clip_id": clip.clip_id, "position": clip.position, "source": clip.source, "label": clip.label,
        "fingerprint": None, "notes": list(clip.notes), "warnings": [], "status": "error",
        "error": clip.error if error is None else error,
    }
    return ClipRecord(row)


#: How the ``error`` of a clip the model failed on begins (:func:`failed_record`).
MODEL_FAILED = "explaining it failed"


def failed_record(clip: Any, error: BaseException) -> ClipRecord:
    """The ``"error"`` record of a clip whose explanation raised ``error`` (with its notes: what
    FreqReX adds to a model's exception, such as the option that bounds rows per call)."""
    notes = "".join(f"; {note}" for note in getattr(error, "__notes__", []))
    return error_record(clip, f"{MODEL_FAILED}: {type(error).__name__}: {error}{notes}")
