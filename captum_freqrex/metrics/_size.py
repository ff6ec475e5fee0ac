"""How big an explanation is (features, bins, spectral energy) and how loud a change is (SNR)."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._utils.validation import TensorOrTuple, as_tuple
from captum_freqrex._utils.snr import snr_from_energies
from captum_freqrex.metrics._common import MetricRun


class SizeResult(NamedTuple):
    r"""Per-example results of :func:`explanation_size`, each a ``(B,)`` tensor.

    Attributes:
        features (Tensor): long, number of features in the set.
        bin_share (Tensor): float64, share of all frequency bins (grid cells) the set covers, in
                    [0, 1].
        energy_share (Tensor): float64, share of the spectral energy ``|X - Xb|^2`` (of the
                    domain's coefficients) in the set, in [0, 1]; NaN where the input equals
                    the baseline.
    """

    features: Tensor
    bin_share: Tensor
    energy_share: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``features``
        (long, the number of features in the set).

        Returns:
            Tensor: ``(B,)``, the same tensor as ``.features`` (not a copy).
        """
        return self.features


def explanation_size(
    inputs: TensorOrTuple,
    feature_set: TensorOrTuple,
    baselines: Any = None,
    feature_mask: Any = None,
    *,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
) -> SizeResult:
    r"""Size of a set of frequency features: feature count, share of bins, share of energy.

    Needs no model. The energy of a bin is ``|X - Xb|^2`` of the domain's coefficients (rfft by
    default; the one-sided spectrum, not weighted by Parseval's factor 2), where ``Xb`` is the
    baseline's spectrum, so it measures what removing the set takes away.

    Args:
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        feature_set (Tensor or tuple of Tensor): The set, bool (or 0/1) shaped like the
                    attributions, ``(B, *feature_grid)`` (or ``(*feature_grid)``). With a
                    ``feature_mask``, a feature belongs to the set when any of its bins does, and
                    its bins count whole.
        baselines (scalar, Tensor or tuple, optional): Baseline waveform, as in
                    :meth:`FreqReX.attribute`. Default: None (zeros)
        feature_mask (Tensor or tuple of Tensor, optional): Integer ids grouping bins into
                    features. Default: one feature per bin
        domain (SpectralDomain, optional): The feature transform. Default: rfft
        per_channel (bool, optional): Per-channel features for ``(B, C, T)`` inputs. Default: False

    Returns:
        SizeResult: ``(B,)`` tensors ``features``, ``bin_share`` and ``energy_share``.
    """
    run = MetricRun(
        None, inputs, baselines, None, None, feature_mask, None, domain, per_channel, None, query_model=False
    )
    members = run.feature_set(feature_set)  # (B, n_features)
    sizes = run.space.feature_sizes().double()
    energy = torch.stack([run.space.feature_energy(b) for b in range(run.batch_size)])  # (B, n_features)
    return SizeResult(
        members.sum(1),
        (members.double() * sizes).sum(1) / sizes.sum(),
        (members.double() * energy).sum(1) / energy.sum(1),
    )


def snr_db(original: TensorOrTuple, perturbed: TensorOrTuple) -> Tensor:
    r"""Signal-to-noise ratio of a change, per example, in dB.

    ``10 * log10(sum(original^2) / sum((perturbed - original)^2))`` over every sample (and
    channel, and input of a tuple) of an example. ``+inf`` when nothing changed.

    Args:
        original (Tensor or tuple of Tensor): Waveforms ``(B, ...)``, batch first: the signal.
        perturbed (Tensor or tuple of Tensor): Waveforms of the same shapes.

    Returns:
        Tensor: ``(B,)`` float64 SNR in dB.

    Example::

        >>> x = torch.ones(1, 100)
        >>> snr_db(x, 0.9 * x)  # noise amplitude 0.1: 20 dB
        tensor([20.], dtype=torch.float64)
    """
    originals, perturbeds = as_tuple(original), as_tuple(perturbed)
    if len(originals) != len(perturbeds):
        raise ValueError(f"original has {len(originals)} tensors but perturbed has {len(perturbeds)}")
    signal: Any = 0.0
    noise: Any = 0.0
    for i, (x, y) in enumerate(zip(originals, perturbeds)):
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError("original and perturbed must be tensors (or tuples of tensors)")
        if x.shape != y.shape or x.dim() == 0:
            raise ValueError(
                f"original[{i}] {tuple(x.shape)} and perturbed[{i}] {tuple(y.shape)} must share one "
                "shape, batch first"
            )
        signal = signal + x.double().square().reshape(x.shape[0], -1).sum(1)
        noise = noise + (y.double() - x.double()).square().reshape(x.shape[0], -1).sum(1)
    return snr_from_energies(signal, noise)
