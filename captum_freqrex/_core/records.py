"""Plain result types shared by the stages: query costs, probes of the model, certificates, shrink reports.

A leaf: it imports nothing of the package, so every stage can return these records.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class QueryStats:
    r"""Cost of an explanation.

    Attributes:
        queries (int): Model queries, i.e. rows (waveforms) passed to the model.
        forward_calls (int): Calls of the model; each carries a batch of queries.
        model_seconds (float): Wall time spent inside the model.
        total_seconds (float): Wall time of the whole computation.
    """

    queries: int = 0
    forward_calls: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def overhead_seconds(self) -> float:
        """Wall time spent outside the model (spectra, masks, search)."""
        return max(self.total_seconds - self.model_seconds, 0.0)

    def __add__(self, other: "QueryStats") -> "QueryStats":
        return QueryStats(
            self.queries + other.queries,
            self.forward_calls + other.forward_calls,
            self.model_seconds + other.model_seconds,
            self.total_seconds + other.total_seconds,
        )

    def as_dict(self) -> dict:
        return {
            "queries": self.queries,
            "forward_calls": self.forward_calls,
            "model_seconds": round(self.model_seconds, 4),
            "overhead_seconds": round(self.overhead_seconds, 4),
            "total_seconds": round(self.total_seconds, 4),
        }


@dataclass
class ProbeResult:
    r"""Model verdict on one mutant.

    Attributes:
        passes (bool): Whether the mutant keeps the explained decision (the target).
        decided (int): The class the model decides on the mutant.
        confidence (float): Confidence in the target, in [0, 1].
        decided_confidence (float): Confidence in the decided class, in [0, 1] (equals
                    ``confidence`` when the decided class is the target). NaN when not computed.
        margin (float): How far the target is ahead of the strongest other class, in confidence
                    (negative: behind); within the decision's ``tie_tolerance`` of 0 is a tie,
                    which counts as "decision not changed". NaN for decisions without margins
                    (a user's pass function).
        changed (bool): Whether the mutant clearly departs from the target decision. Equals
                    ``not passes`` except for ties, which neither keep nor change it.
    """

    passes: bool
    decided: int
    confidence: float
    decided_confidence: float = float("nan")
    margin: float = float("nan")
    changed: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.changed is None:
            self.changed = not self.passes

    @property
    def tied(self) -> bool:
        """Neither kept nor changed: the target ties with another class within the tolerance."""
        return not self.passes and not self.changed

    @property
    def graded(self) -> float:
        """Graded evidence of keeping the decision: the margin, or the confidence where the
        decision has no margin (as :meth:`RowVerdicts.graded`)."""
        return self.margin if math.isfinite(self.margin) else self.confidence


@dataclass
class SetCertificate:
    r"""The certified facts about one returned set (re-queried after the search).

    Attributes:
        size (int): Number of features in the set (a prefix of the ranking).
        kept (ProbeResult): The model on the set alone (everything else at the baseline).
        removed (ProbeResult, optional): The model on the original with the set at the baseline.
        certified (bool): Whether the set's claim held on the re-query.
        exact (bool): Whether the search resolved the smallest size (False when the budget ran out
                    and a larger certified prefix was returned).
        note (str): Why the set is not certified, or what is special about it (a tie counted as
                    "not changed", the empty set); empty when there is nothing to say.
        shrink (ShrinkReport, optional): For a sufficient set shrunk by ``explain(shrink=True)``:
                    its size before and after, the queries spent, and how far from 1-minimal it is
                    (see :mod:`captum_freqrex._core.search.shrink`). None when the set was not shrunk
                    (``exact`` then still speaks of the prefix).
    """

    size: int
    kept: ProbeResult
    removed: Optional[ProbeResult]
    certified: bool
    exact: bool
    note: str = ""
    shrink: Optional[ShrinkReport] = None


#: ``start`` of a complete set that is its core unchanged: the sufficient-and-necessary set was every
#: feature already, so nothing could be added or shrunk (see :class:`ShrinkReport`).
CORE_START = "joint-core"


@dataclass
class ShrinkReport:
    r"""How a sufficient set was shrunk, and how far from 1-minimal the result is.

    Attributes:
        prefix_size (int): Size of the sufficient prefix of the ranking (the set without shrinking).
        start_size (int): Size of the set the shrink started from: the prefix, or a smaller set
                    that the responsibility search itself found passing (``start == "search"``).
        start (str): ``"prefix"`` or ``"search"``; for a searched set ``"joint"`` (from the
                    joint search's candidates), ``"joint-prefix"`` (from the ranking's prefix),
                    ``"joint-loud-runs"`` (from a removal of runs of the loudest features) or,
                    for a sufficient set shrunk from the sufficient-and-necessary set that replaced
                    a quiet one, ``"joint-clip-level"``; for a complete set that is its core unchanged
                    (a sufficient-and-necessary set of every feature), ``"joint-core"``.
        size (int): Size of the returned set.
        queries (int): Model queries spent (the check included).
        checked (int): Features of the returned set whose removal alone was queried.
        removable (int): Of those, how many removals still kept the decision (0: none of the checked
                    features can go alone).
        exhaustive (bool): Every feature of the returned set was checked.
    """

    prefix_size: int
    start_size: int
    start: str
    size: int
    queries: int
    checked: int
    removable: int
    exhaustive: bool

    @property
    def one_minimal(self) -> Optional[bool]:
        """True: proven 1-minimal; False: some single removal keeps the decision; None: not known."""
        if self.removable > 0:
            return False
        return True if self.exhaustive else None

    def as_dict(self) -> dict:
        return {
            "prefix_size": self.prefix_size, "start_size": self.start_size, "start": self.start,
            "size": self.size, "queries": self.queries, "checked": self.checked,
            "removable": self.removable, "exhaustive": self.exhaustive, "one_minimal": self.one_minimal,
        }


@dataclass
class AlternativesReport:
    r"""How the further disjoint sufficient sets of ``explain(..., n_explanations=k)`` were searched.

    Attributes:
        requested (int): ``n_explanations``: the most sets asked for, the first sufficient set
                    included.
        queries (list of int): Model queries spent on each further set returned, in order (its
                    root check, search, extraction, shrink and certification).
        stopped (str): Why fewer than ``requested`` sets were returned, in plain words (e.g. no
                    disjoint sufficient set is left); empty when every requested set was found.
        stop_queries (int): Queries spent by the attempt that found no further set (0 when none).
    """

    requested: int
    queries: List[int] = field(default_factory=list)
    stopped: str = ""
    stop_queries: int = 0

    def as_dict(self) -> dict:
        return {
            "requested": self.requested, "queries": list(self.queries), "stopped": self.stopped,
            "stop_queries": self.stop_queries,
        }
