"""The SNR of a change in dB, from the energies of the signal and of the change: one formula for
the metrics (:func:`captum_freqrex.metrics.snr_db`, the flips of
:func:`~captum_freqrex.metrics.perturbation_success_rate`) and the core (``Explanation.manipulation``)."""

from __future__ import annotations

import torch
from torch import Tensor


def snr_from_energies(signal: Tensor, noise: Tensor) -> Tensor:
    r"""``10 * log10(signal / noise)`` in dB; ``+inf`` where the noise is zero.

    Args:
        signal (Tensor): Energy of the signal (broadcastable with ``noise``).
        noise (Tensor): Energy of the change.

    Returns:
        Tensor: float64 SNR in dB.
    """
    signal, noise = torch.broadcast_tensors(signal.double(), noise.double())
    ratio = torch.where(noise > 0, signal / noise.clamp(min=torch.finfo(torch.float64).tiny), torch.inf)
    return 10.0 * torch.log10(ratio)
