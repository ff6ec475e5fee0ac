"""Pass predicates: when does a mutant keep the model's decision?

A :class:`Decision` turns raw model outputs into a class per row, a confidence for a given target,
and a pass/fail verdict. :class:`ArgmaxDecision` serves multi-class models, :class:`ThresholdDecision`
single-output (sigmoid) models, and :class:`FunctionDecision` wraps a user's own rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional, Union

import torch
from torch import Tensor

__all__ = ["Decision", "ArgmaxDecision", "ThresholdDecision", "FunctionDecision", "resolve_decision"]


def _looks_like_probabilities(scores: Tensor) -> bool:
    return bool(((scores >= 0) & (scores <= 1)).all())


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

    def num_classes(self, outputs: Tensor) -> int:
        """Number of valid targets for these outputs."""
        return outputs.shape[1]


class ArgmaxDecision(Decision):
    r"""The decision is the class with the highest score (multi-class models).

    Args:
        scores (str, optional): ``"logits"`` (confidence = softmax), ``"probabilities"`` (used as they
                    are) or ``"auto"``: probabilities when every row is non-negative and sums to 1,
                    logits otherwise. Default: ``"auto"``
    """

    def __init__(self, scores: str = "auto") -> None:
        if scores not in ("auto", "logits", "probabilities"):
            raise ValueError(f"scores must be 'auto', 'logits' or 'probabilities', got {scores!r}")
        self.scores = scores

    def classes(self, outputs: Tensor) -> Tensor:
        return outputs.argmax(dim=1)

    def _probabilities(self, outputs: Tensor) -> Tensor:
        as_probs = self.scores == "probabilities" or (
            self.scores == "auto"
            and _looks_like_probabilities(outputs)
            and bool(torch.allclose(outputs.sum(1), outputs.new_ones(()), atol=1e-3))
        )
        return outputs if as_probs else outputs.float().softmax(dim=1)

    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self._probabilities(outputs).gather(1, target.view(-1, 1)).squeeze(1)

    def __repr__(self) -> str:
        return f"ArgmaxDecision(scores={self.scores!r})"


class ThresholdDecision(Decision):
    r"""Single-output models: class 1 when the score reaches ``threshold``, class 0 otherwise.

    Args:
        threshold (float, optional): Probability at or above which the decision is class 1.
                    Default: 0.5
        scores (str, optional): ``"logits"`` (a sigmoid is applied), ``"probabilities"``, or ``"auto"``:
                    probabilities when every score lies in [0, 1]. Default: ``"auto"``
    """

    def __init__(self, threshold: float = 0.5, scores: str = "auto") -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
        if scores not in ("auto", "logits", "probabilities"):
            raise ValueError(f"scores must be 'auto', 'logits' or 'probabilities', got {scores!r}")
        self.threshold = threshold
        self.scores = scores

    def _probability(self, outputs: Tensor) -> Tensor:
        if outputs.shape[1] != 1:
            raise ValueError(
                f"ThresholdDecision needs one score per example, got outputs of width {outputs.shape[1]}; "
                "use ArgmaxDecision for multi-class models"
            )
        score = outputs[:, 0].float()
        as_probs = self.scores == "probabilities" or (
            self.scores == "auto" and _looks_like_probabilities(score)
        )
        return score if as_probs else score.sigmoid()

    def classes(self, outputs: Tensor) -> Tensor:
        return (self._probability(outputs) >= self.threshold).long()

    def confidence(self, outputs: Tensor, target: Tensor) -> Tensor:
        p = self._probability(outputs)
        return torch.where(target == 1, p, 1.0 - p)

    def num_classes(self, outputs: Tensor) -> int:
        return 2

    def __repr__(self) -> str:
        return f"ThresholdDecision(threshold={self.threshold}, scores={self.scores!r})"


class FunctionDecision(Decision):
    r"""A user's pass rule, with classes and confidences taken from a fallback decision.

    Args:
        passes (Callable): ``passes(outputs, target) -> (N,) bool`` with outputs ``(N, K)`` and
                    target ``(N,)`` long.
        fallback (Decision, optional): Gives classes (e.g. the class a removal flips to) and
                    confidences. Default: argmax for ``K > 1``, a 0.5 threshold for ``K = 1``.
    """

    def __init__(self, passes: Callable[[Tensor, Tensor], Tensor], fallback: Optional[Decision] = None) -> None:
        self._passes = passes
        self.fallback = fallback

    def _fallback(self, outputs: Tensor) -> Decision:
        return self.fallback or (ThresholdDecision() if outputs.shape[1] == 1 else ArgmaxDecision())

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
        return verdict.bool()

    def num_classes(self, outputs: Tensor) -> int:
        return self._fallback(outputs).num_classes(outputs)


DecisionLike = Union[None, str, Decision, Callable[[Tensor, Tensor], Tensor]]


def resolve_decision(decision: DecisionLike, outputs: Tensor) -> Decision:
    r"""Build the decision for ``decision`` given the flattened outputs ``(N, K)`` on the inputs.

    ``None`` picks :class:`ArgmaxDecision` for ``K > 1`` and :class:`ThresholdDecision` for ``K = 1``;
    ``"argmax"`` and ``"threshold"`` name those; a callable becomes a :class:`FunctionDecision`.
    """
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
