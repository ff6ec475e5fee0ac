"""The call options of FreqReX, validated once into one frozen object.

:meth:`FreqReX.attribute` and :meth:`FreqReX.explain` take their options as Captum-style keyword
arguments and build one :class:`FreqReXOptions` from them before any work; every stage then reads
that object (the search its :meth:`~FreqReXOptions.refinement` knobs, the certification its
budgets). The data-set runner and the command line build the same object, so a setting means the
same thing wherever it is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.search.base import RefinementOptions
from captum_freqrex._utils.validation import as_int

#: What the refinement searches for: features whose *keeping* (against the baseline) keeps the
#: decision, or features whose *removal* (from the input) changes it.
MODES = ("sufficient", "necessary")

#: Largest seed a torch.Generator takes (its seed is a signed 64-bit integer here).
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class FreqReXOptions:
    r"""Every option of one FreqReX call (see :meth:`FreqReX.attribute` and :meth:`FreqReX.explain`
    for their meaning), checked when built: a bad value raises before the model is called.

    ``attribute`` reads the search options (``n_samples`` to ``mode``); ``explain`` reads all of
    them. Build a changed copy with :meth:`replace`.

    Raises:
        ValueError or TypeError: naming the option, for a value out of range or of the wrong type.
    """

    n_samples: int = RefinementOptions.n_searches  # the search knobs' defaults are the protocol's
    perturbations_per_eval: Optional[int] = None
    seed: Optional[int] = 0
    max_depth: int = RefinementOptions.max_depth
    min_part_size: int = RefinementOptions.min_part_size
    n_pieces: int = RefinementOptions.n_pieces
    confidence_filter: float = 0.0
    max_queries: Optional[int] = RefinementOptions.max_queries
    convergence_top_k: Optional[int] = RefinementOptions.convergence_top_k
    per_channel: bool = False
    decision: DecisionLike = None
    mode: str = "sufficient"
    complete_tolerance: float = 0.05
    max_extraction_queries: int = 64
    rank_rtol: float = DEFAULT_RTOL
    shrink: bool = True
    max_shrink_queries: int = 64
    max_joint_queries: int = 320
    n_explanations: int = 1

    def __post_init__(self) -> None:
        # The order of the checks is the order in which FreqReX has always reported them.
        if not 0.0 <= self.complete_tolerance < 1.0:
            raise ValueError(f"complete_tolerance must be in [0, 1), got {self.complete_tolerance}")
        if self.max_extraction_queries < 16:
            raise ValueError(f"max_extraction_queries must be >= 16, got {self.max_extraction_queries}")
        self._set("max_shrink_queries", as_int(self.max_shrink_queries, "max_shrink_queries", minimum=0))
        self._set("max_joint_queries", as_int(self.max_joint_queries, "max_joint_queries", minimum=0))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {self.mode!r}")
        if self.perturbations_per_eval is not None:
            self._set("perturbations_per_eval", as_int(self.perturbations_per_eval, "perturbations_per_eval", minimum=1))
        if self.seed is not None:
            self._set("seed", as_int(self.seed, "seed", minimum=0, maximum=MAX_SEED))
        confidence = self.confidence_filter
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise TypeError(f"confidence_filter must be a number in [0, 1), got {confidence!r}")
        if not 0.0 <= confidence < 1.0:
            raise ValueError(f"confidence_filter must be in [0, 1), got {confidence}")
        self.refinement()  # validates the search knobs
        self._check_explanations()

    def _check_explanations(self) -> None:
        # Disjoint sufficient sets are searched for by keeping features, which mode="necessary" does not.
        try:
            self._set("n_explanations", as_int(self.n_explanations, "n_explanations", minimum=1))
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"{error} (n_explanations is how many pairwise-disjoint sufficient sets explain returns: an int >= 1)"
            ) from None
        if self.n_explanations > 1 and self.mode != "sufficient":
            raise ValueError(
                f"n_explanations={self.n_explanations} needs mode='sufficient' (disjoint sufficient sets are "
                f"searched for by keeping features), got mode={self.mode!r}: use mode='sufficient', or "
                "n_explanations=1"
            )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the normalised value, once, while building

    def refinement(self) -> RefinementOptions:
        """The knobs every search receives (``context.options``), validated.

        Returns:
            RefinementOptions: A fresh, mutable copy for one search.
        """
        options = RefinementOptions(
            self.n_samples, self.max_depth, self.min_part_size, self.n_pieces, self.max_queries,
            self.convergence_top_k,
        )
        options.validate()
        return options

    def replace(self, **changes: Any) -> "FreqReXOptions":
        """A copy with ``changes`` applied (and checked).

        Args:
            **changes: Options to change, by name.

        Returns:
            FreqReXOptions: The new options.
        """
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        """The options by name, as keyword arguments of :meth:`FreqReX.explain`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
