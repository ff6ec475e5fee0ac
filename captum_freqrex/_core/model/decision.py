"""Pass predicates: when does a mutant keep the model's decision?

A :class:`Decision` turns raw model outputs into a class per row, a confidence for a given target,
and a pass/fail verdict; :meth:`Decision.read` gives all of them for rows of outputs at once, as
:class:`RowVerdicts`. :class:`ArgmaxDecision` serves multi-class models, :class:`ThresholdDecision`
single-output (sigmoid) models, and :class:`FunctionDecision` wraps a user's own rule.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, List, Optional, TypeVar, Union

import torch
from torch import Tensor

from captum_freqrex._core.records import ProbeResult

__all__ = ["Decision", "RowVerdicts", "ArgmaxDecision", "ThresholdDecision", "FunctionDecision", "resolve_decision"]

V = TypeVar("V", bound="RowVerdicts")


def _looks_like_probabilities(scores: Tensor) -> bool:
    return bool(((scores >= 0) & (scores <= 1)).all())


def _sums_to_one(scores: Tensor) -> bool:
    return bool(torch.allclose(scores.sum(1), scores.new_ones(()), atol=1e-3))


#: Default tie tolerance (in confidence, i.e. probability, units): a class must beat the target
#: by more than this to count as a change of decision. Float noise of a resynthesis (1e-8 in a
#: waveform, up to 1e-6 in a model's scores across batch compositions) stays far below it.
TIE_TOLERANCE = 1e-5


def _check_scores(scores: str) -> None:
    if scores not in ("auto", "logits", "probabilities"):
        raise ValueError(f"scores must be 'auto', 'logits' or 'probabilities', got {scores!r}")


def _check_tolerance(tie_tolerance: float) -> None:
    if not 0.0 <= tie_tolerance < 0.5:
        raise ValueError(f"tie_tolerance must be in [0, 0.5), got {tie_tolerance}")


def _not_probabilities(what: str, fix: str) -> ValueError:
    return ValueError(
        f"the model's outputs on the original input looked like probabilities ({what}), so the "
        f"decision reads them as probabilities, but a mutant's outputs are not: the model returns "
        f"logits; pass decision={fix}"
    )


@dataclass
class RowVerdicts:
    r"""The model's verdicts on rows of mutants, one entry per row (``(N,)`` tensors).

    Attributes:
        decided (Tensor): long, the class the model decides on each row.
        confidence (Tensor): float64, confidence in the row's target, in [0, 1].
        decided_confidence (Tensor): float64, confidence in the decided class.
        passes (Tensor): bool, the row keeps the target decision (:meth:`Decision.passes`; the
                    oracle also asks a confidence of at least its ``confidence_filter``).
        changes (Tensor): bool, the row clearly departs from it (:meth:`Decision.changes`): a row
                    within the decision's tie tolerance neither passes nor changes.
        margin (Tensor): float64, the target's confidence minus the strongest other class's
                    (NaN for decisions without margins, e.g. a user's pass function).
    """

    decided: Tensor
    confidence: Tensor
    decided_confidence: Tensor
    passes: Tensor
    changes: Tensor
    margin: Tensor

    def cat(self: V, other: V) -> V:
        """Rows of ``self`` followed by rows of ``other`` (the aggregation of batched verdicts)."""
        return type(self)(**{k: torch.cat([v, getattr(other, k)]) for k, v in vars(self).items()})

    def view(self: V, *shape: int) -> V:
        """Every field reshaped, e.g. ``(B * L,) -> (B, L)``."""
        return type(self)(**{k: v.reshape(shape) for k, v in vars(self).items()})

    def graded(self) -> Tensor:
        r"""Graded evidence of keeping the decision, ``(N,)`` float64: the margin, or the confidence
        where the decision has no margin."""
        return torch.where(torch.isfinite(self.margin), self.margin, self.confidence)

    def probes(self) -> List[ProbeResult]:
        """One :class:`ProbeResult` per row (what the extraction and the certificates hold)."""
        return [
            ProbeResult(bool(p), int(d), float(c), float(dc), float(m), bool(ch))
            for p, d, c, dc, m, ch in zip(
                self.passes.tolist(), self.decided.tolist(), self.confidence.tolist(),
                self.decided_confidence.tolist(), self.margin.tolist(), self.changes.tolist(),
            )
        ]


class Decision(ABC):
    r"""How a model's output becomes a decision, a confidence, and whether a mutant keeps it.

    Outputs reach a decision flattened to ``(N, K)`` (``K = 1`` for single-output models).
    """

    @abstractmethod
    def classes(self, outputs: Tensor) -> Tensor:
        r"""The decided class of each row, ``(N, K) -> (N,)`` long."""

    @abstractmethod
    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        r"""Confidence in ``target`` (``(N,)`` long) of each row, ``(N, K) -> (N,)`` in [0, 1]."""

    def passes(self, outputs: Tensor, target: Tensor) -> Tensor:
        r"""Whether each row keeps the decision ``target``, ``(N, K) -> (N,)`` bool."""
        return self.classes(outputs) == target

    def changes(self, outputs: Tensor, target: Tensor) -> Tensor:
        r"""Whether each row clearly departs from the decision ``target``, ``(N, K) -> (N,)`` bool.

        The complement of :meth:`passes`, except for ties: a row within the decision's tie
        tolerance neither keeps the decision (it is no evidence of sufficiency) nor changes it
        (no evidence of necessity), so no claim ever rests on float noise.
        """
        return ~self.passes(outputs, target)

    def read(self, outputs: Tensor, target: Tensor) -> RowVerdicts:
        r"""Every verdict on rows ``(N, K)`` for their targets ``(N,)`` long at once.

        The same values as :meth:`classes`, :meth:`confidence`, :meth:`passes`, :meth:`changes`
        and ``margin`` (where the decision has one) called one by one; the built-in decisions read
        the scores once for all of them (each verdict of a model call read them again: about 5%
        of a 3 s clip's explanation).

        Args:
            outputs (Tensor): ``(N, K)`` scores.
            target (Tensor): ``(N,)`` long, the target of each row.

        Returns:
            RowVerdicts: The verdicts, one entry per row.
        """
        decided = self.classes(outputs).long()
        confidence = self.confidence(outputs, target).double()
        margin_of = getattr(self, "margin", None)
        margin = margin_of(outputs, target).double() if margin_of is not None else torch.full_like(confidence, math.nan)
        return RowVerdicts(
            decided, confidence, self.confidence(outputs, decided).double(),
            self.passes(outputs, target).bool(), self.changes(outputs, target).bool(), margin,
        )

    def num_classes(self, outputs: Tensor) -> int:
        """Number of valid targets for these outputs."""
        return outputs.shape[1]

    def resolved(self, outputs: Tensor) -> "Decision":
        r"""This decision with every ``"auto"`` choice fixed from ``outputs``, the model's outputs on
        the unmasked inputs, so that every later batch of mutants is read the same way.

        Args:
            outputs (Tensor): ``(N, K)`` flattened outputs on the original inputs.

        Returns:
            Decision: A decision with no per-batch guessing (``self`` when there is none).
        """
        return self


class ArgmaxDecision(Decision):
    r"""The decision is the class with the highest score (multi-class models).

    A mutant keeps the decision ``target`` when the target beats every other class by more than
    ``tie_tolerance`` in confidence, and changes it when another class beats the target by more
    than that. An exact (or float-noise) tie does neither: it is "decision not changed" for
    necessity and "not kept" for sufficiency, so no verdict depends on the rounding of one
    resynthesis.

    Args:
        scores (str, optional): ``"logits"`` (confidence = softmax), ``"probabilities"`` (used as they
                    are) or ``"auto"``: probabilities when every row of the outputs on the original
                    inputs is non-negative and sums to 1, logits otherwise; fixed once per call
                    (see :meth:`resolved`). Default: ``"auto"``
        tie_tolerance (float, optional): Confidence margin within which two classes tie.
                    Default: 1e-5
    """

    def __init__(self, scores: str = "auto", tie_tolerance: float = TIE_TOLERANCE) -> None:
        _check_scores(scores)
        _check_tolerance(tie_tolerance)
        self.scores = scores
        self.tie_tolerance = tie_tolerance

    def classes(self, outputs: Tensor) -> Tensor:
        return outputs.argmax(dim=1)

    def resolved(self, outputs: Tensor) -> "ArgmaxDecision":
        if self.scores != "auto":
            return self
        as_probs = _looks_like_probabilities(outputs) and _sums_to_one(outputs)
        return ArgmaxDecision("probabilities" if as_probs else "logits", self.tie_tolerance)

    def _probabilities(self, outputs: Tensor) -> Tensor:
        if self.scores == "auto":
            return self.resolved(outputs)._probabilities(outputs)
        if self.scores == "logits":
            return outputs.float().softmax(dim=1)
        if not (_looks_like_probabilities(outputs) and _sums_to_one(outputs)):
            raise _not_probabilities("non-negative rows summing to 1", "ArgmaxDecision(scores='logits')")
        return outputs

    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        return _gathered(self._probabilities(outputs), target)

    def margin(self, outputs: Tensor, target: Tensor) -> Tensor:
        r"""Confidence in ``target`` minus the highest confidence of any other class, ``(N,)``."""
        return _margin_of(self._probabilities(outputs), target)

    def passes(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self.margin(outputs, target) > self.tie_tolerance

    def changes(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self.margin(outputs, target) < -self.tie_tolerance

    def read(self, outputs: Tensor, target: Tensor) -> RowVerdicts:
        probs = self._probabilities(outputs)
        decided = self.classes(outputs).long()
        margin = _margin_of(probs, target)
        return RowVerdicts(
            decided, _gathered(probs, target).double(), _gathered(probs, decided).double(),
            margin > self.tie_tolerance, margin < -self.tie_tolerance, margin,
        )

    def __repr__(self) -> str:
        return f"ArgmaxDecision(scores={self.scores!r}, tie_tolerance={self.tie_tolerance})"


def _gathered(probs: Tensor, target: Tensor) -> Tensor:
    # Each row's probability of its target.
    return probs.gather(1, target.view(-1, 1)).squeeze(1)


def _margin_of(probs: Tensor, target: Tensor) -> Tensor:
    # The target's probability minus the highest of any other class, in float64.
    probs = probs.double()
    own = _gathered(probs, target)
    if probs.shape[1] == 1:
        return own
    others = probs.scatter(1, target.view(-1, 1), float("-inf")).max(dim=1).values
    return own - others


class ThresholdDecision(Decision):
    r"""Single-output models: class 1 when the score reaches ``threshold``, class 0 otherwise.

    A mutant keeps the decision when its probability is on the target's side of the threshold by
    more than ``tie_tolerance``, and changes it when it is on the other side by more than that; in
    between is a tie, which does neither (see :class:`ArgmaxDecision`).

    Args:
        threshold (float, optional): Probability at or above which the decision is class 1.
                    Default: 0.5
        scores (str, optional): ``"logits"`` (a sigmoid is applied), ``"probabilities"``, or
                    ``"auto"``: probabilities when the scores on the original inputs lie in [0, 1],
                    logits otherwise; fixed once per call (see :meth:`resolved`), never per batch
                    of mutants. A logit model whose original score happens to lie in [0, 1] is read
                    as probabilities, and the first mutant scored outside [0, 1] raises an error
                    that says so: pass ``scores="logits"`` for such models. Default: ``"auto"``
        tie_tolerance (float, optional): Probability margin around the threshold within which
                    the decision is tied. Default: 1e-5
    """

    def __init__(self, threshold: float = 0.5, scores: str = "auto", tie_tolerance: float = TIE_TOLERANCE) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
        _check_scores(scores)
        _check_tolerance(tie_tolerance)
        self.threshold = threshold
        self.scores = scores
        self.tie_tolerance = tie_tolerance

    @staticmethod
    def _score(outputs: Tensor) -> Tensor:
        if outputs.shape[1] != 1:
            raise ValueError(
                f"ThresholdDecision needs one score per example, got outputs of width {outputs.shape[1]}; "
                "use ArgmaxDecision for multi-class models"
            )
        return outputs[:, 0].float()

    def resolved(self, outputs: Tensor) -> "ThresholdDecision":
        if self.scores != "auto":
            return self
        as_probs = _looks_like_probabilities(self._score(outputs))
        return ThresholdDecision(self.threshold, "probabilities" if as_probs else "logits", self.tie_tolerance)

    def _probability(self, outputs: Tensor) -> Tensor:
        if self.scores == "auto":
            return self.resolved(outputs)._probability(outputs)
        score = self._score(outputs)
        if self.scores == "logits":
            return score.sigmoid()
        if not _looks_like_probabilities(score):
            raise _not_probabilities("scores in [0, 1]", "ThresholdDecision(scores='logits')")
        return score

    def classes(self, outputs: Tensor) -> Tensor:
        return (self._probability(outputs) >= self.threshold).long()

    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        return _confidence_at(self._probability(outputs), target)

    def margin(self, outputs: Tensor, target: Tensor) -> Tensor:
        r"""How far the probability is on the side of ``target``, ``(N,)``: ``p - threshold`` for
        class 1, ``threshold - p`` for class 0."""
        return self._margin_at(self._probability(outputs), target)

    def _margin_at(self, p: Tensor, target: Tensor) -> Tensor:
        # The margin of probabilities ``p`` of class 1, in float64.
        side = p.double() - self.threshold
        return torch.where(target == 1, side, -side)

    def passes(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self.margin(outputs, target) > self.tie_tolerance

    def changes(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self.margin(outputs, target) < -self.tie_tolerance

    def read(self, outputs: Tensor, target: Tensor) -> RowVerdicts:
        p = self._probability(outputs)
        decided = (p >= self.threshold).long()
        margin = self._margin_at(p, target)
        return RowVerdicts(
            decided, _confidence_at(p, target).double(), _confidence_at(p, decided).double(),
            margin > self.tie_tolerance, margin < -self.tie_tolerance, margin,
        )

    def num_classes(self, outputs: Tensor) -> int:
        return 2

    def __repr__(self) -> str:
        return (
            f"ThresholdDecision(threshold={self.threshold}, scores={self.scores!r}, "
            f"tie_tolerance={self.tie_tolerance})"
        )


def _confidence_at(p: Tensor, target: Tensor) -> Tensor:
    # Confidence in ``target`` (0 or 1) of probabilities ``p`` of class 1.
    return torch.where(target == 1, p, 1.0 - p)


class FunctionDecision(Decision):
    r"""A user's pass rule, with classes and confidences taken from a fallback decision.

    Args:
        passes (Callable): ``passes(outputs, target) -> (N,) bool`` with outputs ``(N, K)`` and
                    target ``(N,)`` long. It must return booleans (or integers 0/1); floats are
                    refused rather than cast, since ``0.3`` would silently count as a pass.
        fallback (Decision, optional): Gives classes (e.g. the class a removal flips to) and
                    confidences. Default: argmax for ``K > 1``, a 0.5 threshold for ``K = 1``.
    """

    def __init__(self, passes: Callable[[Tensor, Tensor], Tensor], fallback: Optional[Decision] = None) -> None:
        self._passes = passes
        self.fallback = fallback

    def _fallback(self, outputs: Tensor) -> Decision:
        return self.fallback or (ThresholdDecision() if outputs.shape[1] == 1 else ArgmaxDecision())

    def resolved(self, outputs: Tensor) -> "FunctionDecision":
        return FunctionDecision(self._passes, self._fallback(outputs).resolved(outputs))

    def classes(self, outputs: Tensor) -> Tensor:
        return self._fallback(outputs).classes(outputs)

    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self._fallback(outputs).confidence(outputs, target)

    def passes(self, outputs: Tensor, target: Tensor) -> Tensor:
        verdict = torch.as_tensor(self._passes(outputs, target), device=outputs.device)
        if verdict.shape != (outputs.shape[0],):
            raise ValueError(
                f"the pass function must return one bool per row, shape ({outputs.shape[0]},); "
                f"got shape {tuple(verdict.shape)}"
            )
        if verdict.dtype != torch.bool:
            integral = not verdict.is_floating_point() and not verdict.is_complex()
            if not integral or not bool(((verdict == 0) | (verdict == 1)).all()):
                raise TypeError(
                    f"the pass function returned {verdict.dtype} values; it must return booleans, "
                    "one per row (e.g. outputs.argmax(1) == target, or scores > 0.7), not scores "
                    "that would be cast to bool"
                )
        return verdict.bool()

    def num_classes(self, outputs: Tensor) -> int:
        return self._fallback(outputs).num_classes(outputs)


DecisionLike = Union[None, str, Decision, Callable[[Tensor, Tensor], Tensor]]


def resolve_decision(decision: DecisionLike, outputs: Tensor) -> Decision:
    r"""Build the decision for ``decision`` given the flattened outputs ``(N, K)`` on the inputs.

    ``None`` picks :class:`ArgmaxDecision` for ``K > 1`` and :class:`ThresholdDecision` for ``K = 1``;
    ``"argmax"`` and ``"threshold"`` name those; a callable becomes a :class:`FunctionDecision`.
    Every ``"auto"`` choice (logits or probabilities) is fixed here, from these outputs, once per
    call (:meth:`Decision.resolved`).
    """
    return _build_decision(decision, outputs).resolved(outputs)


def _build_decision(decision: DecisionLike, outputs: Tensor) -> Decision:
    if isinstance(decision, Decision):
        return decision
    if decision is None:
        return ThresholdDecision() if outputs.shape[1] == 1 else ArgmaxDecision()
    if decision == "argmax":
        return ArgmaxDecision()
    if decision == "threshold":
        return ThresholdDecision()
    if callable(decision):
        return FunctionDecision(decision)
    raise ValueError(
        f"decision must be None, 'argmax', 'threshold', a Decision or a callable, got {decision!r}"
    )
