"""How a search's sets become model queries for one example, and the check of what a search returns.

:func:`search_context` builds the :class:`~captum_freqrex._core.search.base.SearchContext` of one
example: where mutants start (the baseline, to which ``"sufficient"`` sets are added; or the input,
from which ``"necessary"`` sets are removed), how refinement steps are synthesised (sums of part
waveforms) and how the model's outputs become pass / change verdicts with graded scores.
:func:`run_search` runs a search on it and checks its responsibility.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.search.base import RefinementOptions, ResponsibilitySearch, SearchContext, SearchResult
from captum_freqrex._core.search.base import SetVerdicts
from captum_freqrex._core.spectral.synthesis import StepQuery, StepSynthesizer


class KnownOutputs:
    r"""Model outputs on sets already queried, read back by a search instead of asked again.

    A stage that queried some sets (say, bands removed from the input) hands their outputs to the
    search that follows it, whose first sets may be the same (band screening's first level).

    Args:
        sets (Tensor): ``(N, n_features)`` set masks (the sets, not the keep-masks).
        outputs (Tensor): ``(N, K)`` model outputs on their mutants, in the search's mode.

    Attributes:
        hits (int): Sets read back so far (queried by the search, not by the model).
    """

    def __init__(self, sets: Tensor, outputs: Tensor) -> None:
        self.rows: Dict[bytes, Tensor] = {set_key(row): out for row, out in zip(sets, outputs)}
        self.hits = 0

    def outputs(self, sets: Tensor, query: Callable[[Tensor], Tensor]) -> Tensor:
        """Outputs ``(N, K)`` on ``sets`` ``(N, n_features)``: the known rows read back, the others from ``query``."""
        keys = [set_key(row) for row in sets]
        fresh = [i for i, key in enumerate(keys) if key not in self.rows]
        if len(fresh) == len(keys):
            return query(sets)
        new: Iterator[Tensor] = iter(query(sets[fresh]) if fresh else [])
        rows = [self.rows[key] if key in self.rows else next(new) for key in keys]
        self.hits += len(keys) - len(fresh)
        return torch.stack(rows)


def set_key(mask: Tensor) -> bytes:
    r"""A set's members, packed 8 features to a byte: how a set asked before is known again,
    whatever the order of its ids.

    Args:
        mask (Tensor): ``(n_features,)`` keep-mask (non-zero: a member).

    Returns:
        bytes: ``ceil(n_features / 8)`` bytes.
    """
    return np.packbits(mask.detach().bool().cpu().numpy()).tobytes()


def search_context(
    queries: ExampleQueries,
    target: int,
    baseline_waves: Tuple[Tensor, ...],
    root_passes: bool,
    mode: str,
    options: RefinementOptions,
    seed: int,
    known: Optional[KnownOutputs] = None,
    empty_passes: Optional[bool] = None,
    empty_score: Optional[float] = None,
) -> SearchContext:
    r"""The search context of one example.

    Args:
        queries (ExampleQueries): The example and the model caller.
        target (int): The explained class (flat index into the model's output).
        baseline_waves (tuple of Tensor): The example's baseline waveforms.
        root_passes (bool): Whether the set of all features passes (see ``SearchContext``).
        mode (str): ``"sufficient"`` (sets kept alone pass when the decision stays) or
                    ``"necessary"`` (sets removed pass when the decision changes; a tie does not).
        options (RefinementOptions): The search knobs.
        seed (int): Seed of the context's generator (the same for every example).
        known (KnownOutputs, optional): Model outputs on sets already queried in this ``mode``:
                    :meth:`SearchContext.evaluate_sets` reads them back instead of querying the
                    model again (the context still counts them; ``known.hits`` says how many).
                    Default: None
        empty_passes (bool, optional): Whether the empty set passes, where the caller already
                    asked the model (see ``SearchContext``). Default: None
        empty_score (float, optional): The empty set's graded score, where the caller already
                    asked the model (see ``SearchContext``). Default: None

    Returns:
        SearchContext: What ``search.run`` receives.
    """
    space, oracle, example = queries.space, queries.oracle, queries.example
    removing = mode == "necessary"
    # Mutants start from the baseline and add what they keep ("sufficient"), or start from
    # the input and subtract what they remove ("necessary").
    start = queries.inputs if removing else baseline_waves
    synthesizer = StepSynthesizer(space, example, start, -1.0 if removing else 1.0)

    def verdicts(outputs: Tensor) -> SetVerdicts:
        rows = oracle.verdicts(outputs, target)
        graded = rows.graded().cpu()
        return SetVerdicts((rows.changes if removing else rows.passes).cpu(), -graded if removing else graded)

    def evaluate(steps: Sequence[StepQuery]) -> Tensor:
        batches = synthesizer.batches(steps, oracle.max_rows, queries.rows)
        return verdicts(oracle.scores_of((rows, example) for rows in batches)).passes

    def outputs_of(sets: Tensor) -> Tensor:
        return queries.keep_scores(1.0 - sets if removing else sets)

    def evaluate_masks(sets: Tensor) -> SetVerdicts:
        sets = sets.to(space.device, space.dtype)
        return verdicts(outputs_of(sets) if known is None else known.outputs(sets, outputs_of))

    return SearchContext(
        evaluate, evaluate_masks, space.n_features, root_passes, options,
        torch.Generator().manual_seed(seed), space.device, space.feature_energy(example),
        mode, oracle.max_rows, empty_passes=empty_passes, empty_score=empty_score,
        energy_order=space.loudest_first(example),
    )


def run_search(search: ResponsibilitySearch, context: SearchContext) -> SearchResult:
    r"""Run ``search`` on ``context`` and check what it returns.

    Args:
        search (ResponsibilitySearch): Any object with ``run(context) -> SearchResult``.
        context (SearchContext): The example's context (see :func:`search_context`).

    Returns:
        SearchResult: With ``responsibility`` as ``(n_features,)`` float64 on the CPU.

    Raises:
        ValueError: When the responsibility has the wrong size, or is not finite and non-negative.
    """
    result = search.run(context)
    values = result.responsibility.detach().to("cpu", torch.float64).reshape(-1)
    if values.numel() != context.n_features or not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ValueError(
            f"the search {search!r} returned responsibility of shape {tuple(result.responsibility.shape)}; "
            f"it must be {context.n_features} finite non-negative values"
        )
    result.responsibility = values
    return result
