"""Rankings of frequency features: by score tier, inside a tier by the input's spectral energy.

Responsibility is constant over a piece the search did not split further, and many attribution
methods give exact ties too (zero scores, band-level scores spread over bins). FreqReX's
responsibility also gives *near* ties: it is a mean over searches of (mass / piece size), so bins
that are equally causal but ended in pieces of different sizes (say 88 and 89 bins) differ by a
percent or a few. No score can tell such features apart, so the louder feature (more energy
``|X - Xb|^2`` of the input against the baseline) comes first: removing or keeping it changes the
signal most, and a set made of loud bins is the one a listener recognises (issue #16: for a model
that normalises its input, any lone bin near the pitch decides, and a set of near-empty bins is
valid but misleading).

The rule only reorders features whose scores are (near) equal. It cannot promote a feature that
scored clearly less, for instance a spectral peak that no search happened to end on (see the
"Sets at the harmonics" section of the comparison page).

**The rule.** Scores are grouped into *tiers* of relative width ``rtol`` on a logarithmic grid
anchored at the largest ``|score|`` of the row: with ``M = max |s|``, a positive score ``s`` falls
in tier ``k = floor(log(M / s) / log(1 + rtol))``, so tier 0 is ``(M / (1 + rtol), M]``, tier 1 the
next factor ``1 + rtol`` down, and so on. Negative scores get the mirror-image tiers below every
positive one, and exact zeros a tier of their own between them. Features are ordered by tier
(highest first), inside a tier by descending energy, then by descending score, then by index.

* Two scores in one tier differ by less than a factor ``1 + rtol``; scores that differ by more
  never share a tier, so they keep their order. Scores that differ by less can still fall on either
  side of a tier boundary (any partition without chaining does that; chaining instead would merge
  a smooth slope of scores, as IntegratedGradients gives, into one tier).
* Exact ties always share a tier, so they are broken by energy as before; ``rtol=0`` gives exactly
  the exact-ties-only ranking (descending score, ties by energy, then by index).
* Anchoring at the row's maximum makes the tiers independent of the scores' scale (multiplying
  every score by a positive constant leaves the ranking unchanged, up to rounding at a tier
  boundary) and every row of a batch independent of the others.

The rule is the same for every method (the metrics rank every method's attributions with it), so
comparisons stay fair. One caveat: a ranking whose order *is* its meaning at a finer resolution than
``rtol`` (a random baseline of uniform draws, say) gets partly reordered by energy; rank such
scores with ``rtol=0``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

#: Default relative width of a score tier (see the module docstring). Chosen from FreqReX's
#: responsibility on the zoo models: bins of equal mass in pieces of ``L`` and ``L + 1`` features
#: differ by a factor ``1 + 1/L`` (0.1-10 % for the pieces seen there), while a bin that one more of
#: the default 8 searches credited differs by at least ``8/7`` (14 %). A width of 10 % merges the
#: first for pieces of 10 features or more and can never merge the second.
DEFAULT_RTOL = 0.1

# Integer tier keys: positive tiers in (2 * _SPAN, 3 * _SPAN], zeros at 2 * _SPAN, negative tiers
# in [0, _SPAN]. Tier numbers are bounded by log(float64 range) / log1p(rtol) < _SPAN for rtol > 1e-12.
_SPAN = 2**52


def score_tiers(scores: Tensor, rtol: float = DEFAULT_RTOL) -> Tensor:
    r"""Integer tier keys of scores: higher key = better tier, equal key = same tier.

    Args:
        scores (Tensor): ``(..., n_features)`` real scores.
        rtol (float, optional): Relative width of a tier; ``0`` makes each distinct score its own
                    tier (and returns the scores as float64). Default: ``DEFAULT_RTOL`` (0.1)

    Returns:
        Tensor: ``(..., n_features)`` int64 (float64 when ``rtol == 0``), non-decreasing in the
        score along the last dimension.
    """
    if not (rtol >= 0.0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol}")
    scores = scores.double()
    if rtol == 0.0 or scores.shape[-1] == 0:
        return scores
    if rtol < 1e-12:
        raise ValueError(f"rtol must be 0 or >= 1e-12, got {rtol}")
    magnitude = scores.abs()
    finite = torch.isfinite(magnitude)
    top = torch.where(finite, magnitude, torch.zeros_like(magnitude)).amax(dim=-1, keepdim=True)
    # log(M / |s|) >= 0 for finite non-zero scores; zeros and infinities are placed below.
    ratio = torch.log(top / magnitude)
    tier = torch.floor(ratio / math.log1p(rtol)).nan_to_num(0.0, posinf=_SPAN - 1, neginf=0.0)
    tier = tier.clamp(0, _SPAN - 1).long()
    tier = torch.where(finite, tier, torch.zeros_like(tier))
    positive = torch.where(magnitude.isinf(), torch.full_like(tier, 3 * _SPAN + 1), 3 * _SPAN - tier)
    negative = torch.where(magnitude.isinf(), torch.full_like(tier, -1), tier)
    zero = torch.full_like(tier, 2 * _SPAN)
    return torch.where(scores > 0, positive, torch.where(scores < 0, negative, zero))


def rank_features(
    scores: Tensor, energy: Tensor, *, rtol: float = DEFAULT_RTOL, energy_order: Optional[Tensor] = None
) -> Tensor:
    r"""Feature indices by descending score tier; inside a tier by descending energy, then by
    descending score, then by ascending index.

    Scores within a factor ``1 + rtol`` of each other can share a tier (see the module docstring for
    the grid); exact ties always do. Vectorised over the batch: three stable sorts, no loop.

    Args:
        scores (Tensor): ``(..., n_features)`` real scores (e.g. responsibility or attributions).
        energy (Tensor): ``(..., n_features)`` (or broadcastable) spectral energy of each feature.
        rtol (float, optional): Relative width of a score tier. ``0`` breaks only exact ties by
                    energy. Default: ``DEFAULT_RTOL`` (0.1)
        energy_order (Tensor, optional): For one row of scores, the features by descending
                    ``energy``, ties by ascending index (a stable sort, as
                    :meth:`FeatureSpace.loudest_first` keeps it): the features scored exactly 0
                    are then ranked by it, and only the others are sorted (the same ranking; a
                    search that credits a few features leaves most at 0). Default: None

    Returns:
        Tensor: ``(..., n_features)`` long, the ranking (position 0 = the top feature).

    Examples::

        >>> scores = torch.tensor([0.100, 0.099, 0.050])
        >>> energy = torch.tensor([1.0, 9.0, 100.0])
        >>> rank_features(scores, energy)           # 0.100 and 0.099 share a tier: louder first
        tensor([1, 0, 2])
        >>> rank_features(scores, energy, rtol=0)   # exact ties only
        tensor([0, 1, 2])
    """
    energy = torch.broadcast_to(energy.to(scores.device), scores.shape)
    tiers = score_tiers(scores, rtol)
    if energy_order is not None and scores.dim() == 1:
        ranked = _rank_around_zeros(scores, energy, tiers, energy_order.to(scores.device))
        if ranked is not None:
            return ranked
    return _lexicographic(scores, energy, tiers)


def _lexicographic(scores: Tensor, energy: Tensor, tiers: Tensor) -> Tensor:
    # Stable sorts from the last key to the first (a lexicographic sort); index order to start.
    order = torch.sort(scores.double(), dim=-1, descending=True, stable=True).indices
    for key in (energy, tiers):
        step = torch.sort(key.gather(-1, order), dim=-1, descending=True, stable=True).indices
        order = order.gather(-1, step)
    return order


def _rank_around_zeros(scores: Tensor, energy: Tensor, tiers: Tensor, energy_order: Tensor) -> Optional[Tensor]:
    # The ranking of one row as the features above the zeros' tier, the zeros in energy order, the
    # features below; None where too few scores are 0 for this to save the sorts. The zeros' tier
    # holds exact zeros only (every other score is in a tier above or below it), and inside it the
    # lexicographic order is by energy, then by index: the energy order, restricted to them.
    zero_key = tiers.new_zeros(()) if tiers.is_floating_point() else tiers.new_full((), 2 * _SPAN)
    at_zero = tiers == zero_key
    scored = (~at_zero).nonzero().squeeze(1)
    if scored.numel() > scores.numel() // 4:
        return None
    ordered = scored[_lexicographic(scores[scored], energy[scored], tiers[scored])]
    above = tiers[ordered] > zero_key
    return torch.cat([ordered[above], energy_order[at_zero[energy_order]], ordered[~above]])
