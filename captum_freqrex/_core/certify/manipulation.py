"""The necessary-mode answer as a set: the fewest features found whose removal changes the decision.

A ``mode="necessary"`` search credits the members of the smallest removal it saw flip the decision
with ``1 / its size`` (band screening: a single flipping bin 1, or 2 for the quietest of several;
:mod:`~captum_freqrex._core.search.band_screening`), so that removal heads the ranking. This module
turns the ranking back into that set, asks the model whether its removal changes the decision,
and re-queries it exactly as ``Explanation.waveform("manipulation", removed=True)`` rebuilds it,
with its loudness as an SNR in dB (the design's "manipulation": the fewest frequencies whose
change flips the decision, and how loud the change is).

Steps, each a model query:

1. The smallest removal the search saw change the decision, where it says which
   (band screening's ``details["answer"]``); otherwise the ranking's prefix of the size the
   responsibility names, ``round(1 / top value)``, which is that removal unless two removals of
   that size tie in value and the ranking mixes them (one query either way).
2. Where that did not change the decision, the shortest prefix of the credited features
   (responsibility above 0) whose removal changes the decision: the prefix extraction's grid
   (geometric, then a many-way bisection), :data:`GRID` sizes per model call, within
   :data:`QUERIES`.
3. The removal found, re-queried on its own (the certificate), then, where it holds more than one
   feature and the search did not shrink it already or know it minimal (band screening shrinks
   its loud-run removals, and knows a pair minimal whose two features it removed alone without a
   flip: ``details["answer_shrunk"]``), shrunk while its removal alone still changes the
   decision as in step 4, and re-queried: a flipping band or wide part holds features whose
   removal the decision does not need (on held-out percussion clip 108, a band of 166 bins).
4. Where the sufficient-and-necessary set (certified by re-query already) is smaller, or no
   prefix flips, that set is the answer instead: its removal changes the decision too. It holds
   a second claim (kept alone, it keeps the decision) that a removal need not, so it is shrunk
   while its removal alone still changes the decision, the quietest features first (the batched
   deletions of :func:`~captum_freqrex._core.search.shrink.shrink_set`, at most
   :data:`SHRINK_QUERIES`), and re-queried: on held-out speech clip 64, 12,950 bins at 0.0 dB
   became 707 at 17.8 dB.

A tie (the target level with another class) is no change, as everywhere. No answer where nothing
is credited (an all-zero responsibility: the search found no removal that flips) or no credited
prefix flips within the queries.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.prefix import probe_sizes, prefix_masks
from captum_freqrex._core.certify.trust import loudness
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.search.shrink import Ids, shrink_set
from captum_freqrex._core.spectral.space import ids_to_mask
from captum_freqrex._utils.snr import snr_from_energies
from captum_freqrex._explanation import CausalSet
from captum_freqrex._explanation.manipulation import Manipulation

#: Most queries of the prefix search of step 2 (step 1's one query and the re-query come on top).
QUERIES = 16

#: Prefix sizes per model call in step 2.
GRID = 4

#: Most queries of the shrink of an answer (steps 3 and 4), as
#: band screening's shrink of a loud-run removal
#: (:data:`~captum_freqrex._core.search.band_screening.LOUD_RUN_SHRINK_QUERIES`).
SHRINK_QUERIES = 80


class FoundManipulation(NamedTuple):
    r"""What :func:`find_manipulation` returns for one example.

    Attributes:
        manipulation (Manipulation, optional): The set, certified by re-query (None: none found).
        queries (int): Model queries spent, the re-query included.
    """

    manipulation: Optional[Manipulation]
    queries: int


def _smallest_flipping_prefix(
    queries: ExampleQueries, ranking: Tensor, target: int, guess: int, credited: int, budget: int,
) -> Tuple[Optional[int], int]:
    # Steps 1 and 2: the prefix size whose removal changes the decision (None: none found) and the
    # queries spent. The grid starts above the guess: below it, nothing was credited as a removal
    # of its own.
    flips: Dict[int, bool] = {}
    sizes, spent = [guess], 0
    while sizes:
        keeps = 1.0 - prefix_masks(ranking, sizes).to(queries.space.dtype)
        results = queries.probes(queries.keep_scores(keeps), target)
        spent += len(sizes)
        flips.update((k, bool(result.changed)) for k, result in zip(sizes, results))
        hi = min((k for k, flipped in flips.items() if flipped), default=None)
        if hi == guess:
            break
        lo = max(k for k, flipped in flips.items() if not flipped and (hi is None or k < hi))
        room = budget - (spent - 1)  # step 1's query is not the search's
        sizes = [k for k in probe_sizes(lo, credited + 1 if hi is None else hi, GRID) if k not in flips][:room]
    return min((k for k, flipped in flips.items() if flipped), default=None), spent


def find_manipulation(
    queries: ExampleQueries, ranking: Tensor, values: Tensor, target: int, stable: bool = True, sized: bool = True,
    budget: int = QUERIES, known: Optional[CausalSet] = None, answer: Optional[Sequence[int]] = None,
    shrink_budget: int = SHRINK_QUERIES, answer_shrunk: bool = False,
) -> FoundManipulation:
    r"""The necessary-mode answer of one example as a certified set (see the module docstring).

    Args:
        queries (ExampleQueries): The example and the model caller.
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first.
        values (Tensor): ``(n_features,)`` the necessary-mode responsibility.
        target (int): The explained decision.
        stable (bool, optional): Whether the model's output held between calls (False: the set is
                    returned, not certified). Default: True
        sized (bool, optional): Whether ``values`` name the size of the smallest flipping removal
                    as ``1 / top value`` (a built-in necessary-mode search's); False (given
                    attributions) starts the prefix search at one feature. Default: True
        budget (int, optional): Most queries of the prefix search (step 2). Default: :data:`QUERIES`
        known (CausalSet, optional): A set whose removal was certified to change the decision
                    already (the sufficient-and-necessary set): the answer where it is smaller
                    than the prefix found, or where none is. Default: None
        answer (sequence of int, optional): The smallest removal the search saw change the decision,
                    as feature ids (band screening's ``details["answer"]``): asked first, in place
                    of the ranking's prefix of the size the values name. Default: None
        shrink_budget (int, optional): Most queries of the shrink of the answer (steps 3 and 4).
                    Default: :data:`SHRINK_QUERIES`
        answer_shrunk (bool, optional): Whether the search shrank ``answer`` already or knows
                    that none of its features can go (band screening's
                    ``details["answer_shrunk"]``): it is not shrunk again. Default: False

    Returns:
        FoundManipulation: The set (None where nothing credited flips and nothing is known) and
        the queries spent.
    """
    space = queries.space
    searched, spent = _searched_removal(queries, ranking, values, target, sized, budget, answer, answer_shrunk)
    size = None if searched is None else int(searched[0].sum())
    removed_known = None if known is None else known.certificate.removed
    if known is not None and removed_known is not None and removed_known.changed and (size is None or known.size < size):
        note = (f"the sufficient-and-necessary set, whose removal changed the decision on re-query: smaller than "
                f"the search's own removal ({size} features)" if size is not None else
                "the sufficient-and-necessary set, whose removal changed the decision on re-query (no prefix of the "
                "search's ranking did)")
        mask, removed, note, shrink_spent = _shrunk(queries, known.mask.bool(), removed_known, target, note, shrink_budget)
        return FoundManipulation(_manipulation(queries, mask, removed, stable, note), spent + shrink_spent)
    if searched is None:
        return FoundManipulation(None, spent)
    mask, note, shrunk = searched
    removed = queries.probes(queries.set_scores([1.0 - mask.to(space.dtype)]), target)[0]
    spent += 1
    if removed.changed and not shrunk:
        mask, removed, note, shrink_spent = _shrunk(queries, mask, removed, target, note, shrink_budget)
        spent += shrink_spent
    return FoundManipulation(_manipulation(queries, mask, removed, stable, note), spent)


def _shrunk(
    queries: ExampleQueries, mask: Tensor, removed: ProbeResult, target: int, note: str, budget: int,
) -> Tuple[Tensor, ProbeResult, str, int]:
    # Steps 3 and 4: the set shrunk while its removal still changes the decision (the quietest features
    # go first), re-queried; the set as it was where nothing went or the re-query did not hold.
    space = queries.space
    members = mask.cpu().nonzero().squeeze(1)
    if budget <= 0 or members.numel() <= 1:
        return mask, removed, note, 0
    energy = space.feature_energy(queries.example).cpu()
    loudest_first = members[torch.sort(-energy[members], stable=True).indices]
    spent = 0

    def flips(sets: Sequence[Ids]) -> List[bool]:
        nonlocal spent
        spent += len(sets)
        keeps = 1.0 - ids_to_mask(sets, space.n_features, space.device, space.dtype)
        return [bool(result.changed) for result in queries.probes(queries.keep_scores(keeps), target)]

    shrunk, _ = shrink_set(flips, loudest_first.tolist(), budget, torch.Generator().manual_seed(0), check=0)
    if len(shrunk) == members.numel():
        return mask, removed, note, spent
    smaller = ids_to_mask([shrunk], space.n_features, space.device, torch.bool)[0]
    again = queries.probes(queries.set_scores([1.0 - smaller.to(space.dtype)]), target)[0]
    if not again.changed:
        return mask, removed, note, spent + 1
    note += f", shrunk from {members.numel()} to {len(shrunk)} features while its removal still changed it"
    return smaller, again, note, spent + 1


def _searched_removal(
    queries: ExampleQueries, ranking: Tensor, values: Tensor, target: int, sized: bool, budget: int,
    answer: Optional[Sequence[int]], answer_shrunk: bool,
) -> Tuple[Optional[Tuple[Tensor, str, bool]], int]:
    # Steps 1 and 2: the removal found (its bool mask, how it was found and whether the search
    # shrank it already; None: none) and the queries spent.
    space, spent = queries.space, 0
    if answer:
        mask = ids_to_mask([list(answer)], space.n_features, space.device, torch.bool)[0]
        spent = 1
        if queries.probes(queries.keep_scores((~mask).to(space.dtype).unsqueeze(0)), target)[0].changed:
            return (mask, "the smallest removal the necessary-mode search saw change the decision", answer_shrunk), spent
    values = values.detach().cpu().double()
    credited = int((values > 0).sum())
    top = float(values.max()) if values.numel() else 0.0
    if not credited or not math.isfinite(top):
        return None, spent
    guess = min(credited, max(1, round(1.0 / top))) if sized else 1
    size, asked = _smallest_flipping_prefix(queries, ranking, target, guess, credited, budget)
    spent += asked
    if size is None:
        return None, spent
    if size == guess and sized:
        note = f"the smallest removal the necessary-mode search saw change the decision (the ranking's top {size})"
    else:
        note = "the shortest probed prefix of the necessary-mode ranking whose removal changes the decision"
    return (prefix_masks(ranking, [size])[0].bool(), note, False), spent


def _manipulation(queries: ExampleQueries, mask: Tensor, removed: ProbeResult, stable: bool, found: str) -> Manipulation:
    # The answer with its certificate, loudness and note (``found``: where it came from).
    space = queries.space
    mask = mask.cpu()
    bins = space.feature_sizes().cpu()
    energy_share, level_db = loudness(mask, space.feature_energy(queries.example).cpu(), bins)
    changed = bool(removed.changed)
    if changed:
        note = f"{found}; removed, it changed the decision to class {removed.decided} on re-query"
    else:
        note = f"{found}; not certified: its removal did not change the decision on re-query"
    if changed and not stable:
        note += "; not certified: the model's output on the unmasked input changed between calls"
    return Manipulation(
        mask=mask, n_bins=int(bins[mask].sum()), removed=removed, certified=changed and stable,
        snr_db=_snr_db(queries, mask), energy_share=energy_share, level_db=level_db, note=note,
    )


def _snr_db(queries: ExampleQueries, mask: Tensor) -> float:
    # 10 log10(signal / change) over the waveforms, as perturbation_success_rate's SNR: the input's
    # energy over that of the manipulated waveform minus the input.
    space, example = queries.space, queries.example
    keep = (1.0 - mask.to(space.device, space.dtype)).view(1, -1)
    changed = [w[0] for w in space.mutants(example, keep)]
    signal = sum(x.double().square().sum() for x in queries.inputs)
    noise = sum((m.double() - x.double()).square().sum() for m, x in zip(changed, queries.inputs))
    return float(snr_from_energies(torch.as_tensor(signal), torch.as_tensor(noise)))

