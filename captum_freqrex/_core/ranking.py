"""Rankings of frequency features: by score, ties broken by the input's spectral energy.

Responsibility is constant over a piece the search did not split further, and many attribution
methods give exact ties too (zero scores, band-level scores spread over bins). Inside a tie no
score can tell the features apart, so the louder feature (more energy ``|X - Xb|^2`` of the input
against the baseline) comes first: removing or keeping it changes the signal most. The rule is the
same for every method, so comparisons stay fair.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rank_features(scores: Tensor, energy: Tensor) -> Tensor:
    r"""Feature indices by descending score, ties by descending energy, then by index.

    Args:
        scores (Tensor): ``(..., n_features)`` real scores (e.g. responsibility).
        energy (Tensor): ``(..., n_features)`` (or broadcastable) spectral energy of each feature.

    Returns:
        Tensor: ``(..., n_features)`` long, the ranking (position 0 = the top feature).
    """
    energy = torch.broadcast_to(energy.to(scores.device), scores.shape)
    by_energy = torch.sort(energy, dim=-1, descending=True, stable=True).indices
    # A stable sort by score keeps the energy order inside every tie.
    by_score = torch.sort(scores.gather(-1, by_energy), dim=-1, descending=True, stable=True).indices
    return by_energy.gather(-1, by_score)
