"""What every method of a comparison shares: the clips, their targets and the features scored over."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.model.outputs import OutputSelector
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._core.spectral.bands import linear_bands, log_bands
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._utils.validation import format_baselines, format_waveforms
from captum_freqrex.metrics._common import MetricRun


@dataclass
class Setup:
    """What every method of a comparison shares: the model, the clips and their targets, and the
    features the rankings are scored over (and the bands the per-feature-cost methods attribute over)."""

    model: Callable
    clips: Tensor
    baselines: Any
    targets: Tensor  # (B,) flat target indices
    captum_targets: List[Any]  # per clip: what Captum's ``target`` gets
    signs: List[float]  # per clip: -1 where a single-output model's decision is class 0
    eval_mask: Any
    eval_features: str
    n_eval: int
    band_mask: Any
    band_features: str
    n_band: int
    domain: Optional[SpectralDomain]
    per_channel: bool
    decision: DecisionLike
    output: OutputSelector = None


def stack_clips(clips: Any) -> Tensor:
    """The clips as one batch ``(B, T)`` or ``(B, C, T)``: a tensor as it is, a sequence of clips stacked."""
    if isinstance(clips, Tensor):
        return clips.unsqueeze(0) if clips.dim() == 1 else clips
    waves = [getattr(c, "waveform", c) for c in clips]
    if not waves or not all(isinstance(w, Tensor) for w in waves):
        raise TypeError("clips must be a tensor (B, T) or (B, C, T), or a non-empty sequence of (T,) tensors")
    if len({tuple(w.shape) for w in waves}) > 1:
        raise ValueError(
            f"clips differ in shape ({sorted({tuple(w.shape) for w in waves})}); crop or pad them to one "
            "length (e.g. captum_freqrex.next_fast_len of the longest)"
        )
    return torch.stack(waves)


class ZooInputs(NamedTuple):
    """An example model and its sample clips, ready for :func:`compare_methods`."""

    model: Callable
    clips: Tensor  # (B, T) or (B, C, T), cropped or zero-padded to the model's num_samples
    sample_rate: int
    labels: List[str]


def load_zoo_inputs(name: str = "instruments", n_clips: int = 4) -> ZooInputs:
    r"""The zoo model ``name`` and its first ``n_clips`` sample clips, fitted to its input length.

    Raises:
        ImportError: When :mod:`captum_freqrex.zoo` is not installed.
    """
    try:
        from captum_freqrex import zoo
    except ImportError as error:
        raise ImportError(
            f"captum_freqrex.zoo is not available ({error}); pass model= and clips= to compare_methods"
        ) from error
    loaded = zoo.load(name)
    clips = list(zoo.sample_clips(name))[:n_clips]
    if not clips:
        raise ValueError(f"the zoo has no sample clips for {name!r}")
    length = loaded.num_samples
    waves = []
    for clip in clips:
        wave = clip.waveform[..., :length]
        waves.append(torch.nn.functional.pad(wave, (0, length - wave.shape[-1])))
    return ZooInputs(loaded.model, torch.stack(waves), loaded.sample_rate, [str(c.label) for c in clips])


def clip_baselines(baselines: Any, clips: Tensor, i: int) -> Any:
    """The baselines of clip ``i`` alone: per-clip baseline tensors ``(B, ...)`` are sliced."""
    if isinstance(baselines, Tensor) and baselines.dim() == clips.dim() and baselines.shape[0] == clips.shape[0] > 1:
        return baselines[i : i + 1]
    return baselines


def feature_ids(
    clips: Tensor, baselines: Any, mask: Any, domain: Optional[SpectralDomain], per_channel: bool
) -> Tuple[Tensor, int]:
    """Feature ids 0..n-1 per bin, shaped ``(1, *feature_grid)`` for Captum, and n."""
    waves, _ = format_waveforms(clips[:1])
    bases = format_baselines(clip_baselines(baselines, clips, 0), waves)
    space = FeatureSpace(waves, bases, mask, domain, per_channel)
    return space.ids()[0].unsqueeze(0), space.n_features


def _default_band_mask(
    num_samples: int, sample_rate: Optional[float], n_bands: int, domain: Optional[SpectralDomain]
) -> Tuple[Tensor, str]:
    if sample_rate:
        return log_bands(num_samples, n_bands, sample_rate=sample_rate, domain=domain), "log bands"
    return linear_bands(num_samples, n_bands, domain=domain), "linear bands"


def _captum_target(flat: int, output_shape: Tuple[int, ...]) -> Any:
    if len(output_shape) <= 1:
        return flat
    index = []
    for size in reversed(output_shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def prepare(
    model: Callable,
    clips: Tensor,
    baselines: Any,
    target: TargetLike,
    feature_mask: Any,
    band_mask: Any,
    n_bands: int,
    max_perturbation_features: int,
    sample_rate: Optional[float],
    domain: Optional[SpectralDomain],
    per_channel: bool,
    decision: DecisionLike,
    max_batch: Optional[int],
    output: OutputSelector = None,
) -> Setup:
    """The comparison's :class:`Setup`: targets and decision fixed once from the outputs on the clips,
    and the bands where the evaluation features exceed ``max_perturbation_features``."""
    run = MetricRun(
        model, clips, baselines, target, None, feature_mask, max_batch, domain, per_channel, decision,
        output=output,
    )
    n_eval = run.space.n_features
    eval_features = f"{n_eval} bins" if feature_mask is None else f"{n_eval} features (feature_mask)"
    band, band_features, n_band = None, "", 0
    if n_eval > max_perturbation_features:
        if band_mask is None:
            band_mask, kind = _default_band_mask(clips.shape[-1], sample_rate, n_bands, domain)
        else:
            kind = "bands (band_mask)"
        n_band = feature_ids(clips, baselines, band_mask, domain, per_channel)[1]
        band, band_features = band_mask, f"{n_band} {kind}"
    output_shape = run.output_shape or (1,)
    single_output = math.prod(output_shape) == 1
    targets = run.targets.cpu()
    captum_targets = [None if single_output else _captum_target(int(t), output_shape) for t in targets]
    signs = [(-1.0 if single_output and int(t) == 0 else 1.0) for t in targets]
    # run.decision is the decision fixed from the outputs on the clips (logits or probabilities
    # decided once): FreqReX and every metric read every batch of mutants the same way.
    return Setup(
        model, clips, baselines, run.targets, captum_targets, signs, feature_mask, eval_features, n_eval,
        band, band_features, n_band, domain, per_channel, run.decision, output,
    )


def check_ks(ks: Any) -> List[int]:
    """``ks`` as a list of ints >= 0 (an int is one k); floats are refused, not truncated."""
    if isinstance(ks, Tensor):
        ks = ks.tolist()
    values = list(ks) if isinstance(ks, (list, tuple, range)) else [ks]
    out = []
    for k in values:
        try:
            if isinstance(k, bool):
                raise TypeError
            out.append(operator.index(k))
        except TypeError:
            raise TypeError(
                f"ks must hold ints (numbers of top features removed), got {k!r}; floats are refused "
                "rather than truncated"
            ) from None
        if out[-1] < 0:
            raise ValueError(f"ks must hold ints >= 0, got {k}")
    return out
