"""Transferability: does the sufficient signal found on one model make other models decide the same?

An explanation's sufficient set, kept alone, certifiably keeps the source model's decision. Fed to
another model of the same task, it either makes that model decide the same class too (the signal
transfers) or not. :func:`transferability` feeds every signal to every target model and counts,
per class, the clips whose signal each target accepts, beside how many of the full clips the target
already decides that way, so "the signal transfers" can be told apart from "the models agree anyway".
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._explanation import Explanation
from captum_freqrex._core.model.oracle import Oracle, rows_per_call
from captum_freqrex._core.model.outputs import OutputSelector, check_output_selector
from captum_freqrex._utils.validation import format_waveforms
from captum_freqrex.metrics._batching import check_max_examples_per_batch

__all__ = ["TransferResult", "transferability"]

ClassLike = Union[int, str]


@dataclass(frozen=True)
class TransferResult:
    r"""Per target model and class: how often the source's sufficient signals are accepted.

    ``M`` target models, ``N`` clips, ``K`` classes.

    Attributes:
        model_names (tuple of str): The target models, in the order of the ``models`` mapping.
        class_names (tuple of str): Name of each class index.
        classes (Tensor): ``(N,)`` long, the class each clip is counted under (its ``labels``
                    entry, or its source decision when no labels were given).
        decisions (Tensor): ``(N,)`` long, the source decision each signal certifies.
        accepted (Tensor): ``(M, N)`` bool, the target model keeps the source decision on the
                    signal (:meth:`Decision.passes`: a tie within the tie tolerance is no
                    acceptance).
        decided (Tensor): ``(M, N)`` long, the class each target model decides on each signal.
        agrees (Tensor, optional): ``(M, N)`` bool, the target model keeps the source decision on
                    the full clip; None when no full clips were given.
        full_decided (Tensor, optional): ``(M, N)`` long, the class each target model decides on
                    each full clip; None when no full clips were given.
    """

    model_names: Tuple[str, ...]
    class_names: Tuple[str, ...]
    classes: Tensor
    decisions: Tensor
    accepted: Tensor
    decided: Tensor
    agrees: Optional[Tensor]
    full_decided: Optional[Tensor] = None

    def to_tensor(self) -> Tensor:
        r"""The per-clip value, a tensor as :mod:`captum.metrics` returns: ``accepted`` (bool, per
        target model and clip; ``rates`` sums it up per class).

        Returns:
            Tensor: ``(M, N)``, the same tensor as ``.accepted`` (not a copy).
        """
        return self.accepted

    def _per_class(self, rows: Tensor) -> Tensor:
        """Counts ``(M, K)`` of true entries of ``rows`` ``(M, N)`` per class."""
        onehot = torch.nn.functional.one_hot(self.classes.cpu(), len(self.class_names)).long()
        return rows.cpu().long() @ onehot

    @property
    def counts(self) -> Tensor:
        """``(K,)`` long: clips per class."""
        return torch.bincount(self.classes.cpu(), minlength=len(self.class_names))

    @property
    def accepted_counts(self) -> Tensor:
        """``(M, K)`` long: clips per class whose signal each target model accepts."""
        return self._per_class(self.accepted)

    @property
    def rates(self) -> Tensor:
        """``(M, K)`` float64, the acceptance matrix: accepted clips over clips per class (NaN for a
        class with no clips)."""
        return self.accepted_counts.double() / self.counts.double()

    @property
    def overall(self) -> Tensor:
        """``(M,)`` float64: accepted share of all clips, per target model."""
        return self.accepted.double().mean(dim=1).cpu()

    @property
    def agree_counts(self) -> Optional[Tensor]:
        """``(M, K)`` long: clips per class whose full clip each target decides as the source did
        (None without full clips)."""
        return None if self.agrees is None else self._per_class(self.agrees)

    @property
    def accepted_where_agree_counts(self) -> Optional[Tensor]:
        """``(M, K)`` long: clips accepted among those whose full clip the target already decides
        as the source did (None without full clips)."""
        return None if self.agrees is None else self._per_class(self.accepted & self.agrees)

    def rows(self) -> List[Dict[str, Any]]:
        r"""One record per target model and class (and ``"all"``), for CSV or a data frame.

        Returns:
            list of dict: ``model``, ``class``, ``clips``, ``accepted``, ``rate`` and, with full
            clips, ``full_clip_agrees`` and ``accepted_where_full_agrees``.
        """
        counts, accepted = self.counts, self.accepted_counts
        agree, both = self.agree_counts, self.accepted_where_agree_counts
        out = []
        for m, model in enumerate(self.model_names):
            for k, name in [*enumerate(self.class_names), (None, "all")]:
                n = int(counts.sum() if k is None else counts[k])
                a = int(accepted[m].sum() if k is None else accepted[m, k])
                row: Dict[str, Any] = {"model": model, "class": name, "clips": n, "accepted": a,
                                       "rate": a / n if n else math.nan}
                if agree is not None and both is not None:
                    row["full_clip_agrees"] = int(agree[m].sum() if k is None else agree[m, k])
                    row["accepted_where_full_agrees"] = int(both[m].sum() if k is None else both[m, k])
                out.append(row)
        return out

    def to_markdown(self, digits: int = 2) -> str:
        r"""The acceptance matrix as a Markdown table: a row per target model, a column per class.

        Each cell reads ``rate (accepted/clips)``; with full clips, a second row per model gives
        how many full clips the target decides as the source did, and a third the acceptance among
        those clips only.

        Args:
            digits (int, optional): Decimals of the rates. Default: 2

        Returns:
            str: The table.
        """
        counts = self.counts
        header = ["target model", *[f"{c} (n={int(n)})" for c, n in zip(self.class_names, counts.tolist())],
                  f"all (n={int(counts.sum())})"]
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]

        def cells(hits: Tensor, totals: Tensor) -> List[str]:
            pairs = [*zip(hits.tolist(), totals.tolist()), (int(hits.sum()), int(totals.sum()))]
            return [f"{h / n:.{digits}f} ({h}/{n})" if n else "-" for h, n in pairs]

        agree, both = self.agree_counts, self.accepted_where_agree_counts
        for m, model in enumerate(self.model_names):
            lines.append("| " + " | ".join([f"{model}: signal", *cells(self.accepted_counts[m], counts)]) + " |")
            if agree is not None and both is not None:
                lines.append("| " + " | ".join([f"{model}: full clip", *cells(agree[m], counts)]) + " |")
                lines.append("| " + " | ".join([f"{model}: signal, where full clip agrees", *cells(both[m], agree[m])]) + " |")
        return "\n".join(lines)


def _stack(values: Union[Tensor, Sequence[Tensor]], name: str) -> Tensor:
    """One ``(N, T)`` or ``(N, C, T)`` tensor from a batch tensor or a sequence of per-clip tensors."""
    if isinstance(values, Tensor):
        waves, _ = format_waveforms(values, name)
        return waves[0]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise TypeError(f"{name} must be a (N, T) or (N, C, T) tensor or a non-empty sequence of per-clip tensors")
    for i, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{name}[{i}] is a {type(value).__name__}; pass one tensor per clip ((T,) or (C, T)); "
                "models with several inputs are not supported"
            )
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        raise ValueError(f"{name} must all have one shape to be fed as a batch, got shapes {sorted(shapes)}")
    waves, _ = format_waveforms(torch.stack([v.detach() for v in values]), name)
    return waves[0]


def _class_indices(
    values: Union[Tensor, Sequence[ClassLike]], n: int, class_names: Optional[Tuple[str, ...]], name: str
) -> Tensor:
    """``(n,)`` long class indices from ints, an integer tensor or class names."""
    if isinstance(values, Tensor):
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise TypeError(f"{name} must hold class indices (an integer tensor) or class names, got {values.dtype}")
        if values.dim() > 1:
            raise ValueError(f"{name} must be one class per clip, shape (N,), got shape {tuple(values.shape)}")
        items: List[Any] = values.reshape(-1).tolist()
    elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of class indices or names, one per clip, got {type(values).__name__}")
    else:
        items = list(values)
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries for {n} signals; pass one per clip")
    indices = []
    for value in items:
        if isinstance(value, str):
            if class_names is None:
                raise ValueError(f"{name} holds class name {value!r}; pass class_names= to name the classes")
            if value not in class_names:
                raise ValueError(f"unknown class {value!r} in {name}; class_names are {list(class_names)}")
            indices.append(class_names.index(value))
            continue
        try:
            if isinstance(value, bool):
                raise TypeError
            index = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} entries must be class indices (ints) or class names, got {value!r}") from None
        if index < 0 or (class_names is not None and index >= len(class_names)):
            limit = f"[0, {len(class_names)})" if class_names is not None else ">= 0"
            raise ValueError(f"unknown class {index} in {name}: class indices must be in {limit}")
        indices.append(index)
    return torch.tensor(indices, dtype=torch.long)


def _from_explanations(
    explanations: Sequence[Explanation], which: str
) -> Tuple[Tensor, Tensor, Tensor]:
    """Signals, certified decisions and resynthesised full clips of explanations."""
    signals: List[Tensor] = []
    originals: List[Tensor] = []
    decisions: List[int] = []
    for i, explanation in enumerate(explanations):
        if which not in explanation.sets:
            raise ValueError(f"which must be one of {tuple(explanation.sets)}, got {which!r}")
        chosen = explanation.sets[which]
        if chosen is None or not chosen.certified:
            status = "has no" if chosen is None else "has an uncertified"
            raise ValueError(
                f"explanation {i} {status} {which} set, so its signal certifies no decision; keep the "
                f"certified ones: [e for e in explanations if e.{which} is not None and e.{which}.certified]"
            )
        signal, original = explanation.waveform(which), explanation.original_waveform()
        if isinstance(signal, tuple) or isinstance(original, tuple):
            raise TypeError("explanations of tuple inputs (several waveforms per clip) are not supported")
        signals.append(signal)
        decisions.append(int(explanation.target))
        originals.append(original)
    return _stack(signals, "signals"), torch.tensor(decisions, dtype=torch.long), _stack(originals, "originals")


def transferability(
    signals: Union[Tensor, Sequence[Tensor], Sequence[Explanation]],
    decisions: Optional[Union[Tensor, Sequence[ClassLike]]],
    models: Mapping[str, Callable],
    originals: Optional[Union[Tensor, Sequence[Tensor]]] = None,
    class_names: Optional[Sequence[str]] = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    labels: Optional[Union[Tensor, Sequence[ClassLike]]] = None,
    decision: DecisionLike = None,
    output: OutputSelector = None,
    which: str = "sufficient",
) -> TransferResult:
    r"""Acceptance of one model's sufficient signals by other models of the same task.

    Each signal (a sufficient set kept alone, as a waveform: ``explanation.waveform("sufficient")``)
    certifies a decision of the source model. Every target model is called through its own
    :class:`~captum_freqrex._core.model.oracle.Oracle` (as FreqReX and every metric call a model: the
    same output checks, batch bound and query counts) on every signal, in batches of at most
    ``max_examples_per_batch`` rows, and *accepts* it when the oracle's verdict is that it keeps
    that decision (:meth:`Decision.passes` with the source decision as the target, so a tie within
    the tie tolerance is never an acceptance). With the full clips, each target is queried on them
    too, to count the clips it already decides as the source did. Each model gets copies of the
    waveforms. The decision's ``"auto"`` choices (logits or probabilities) are fixed per target
    model, by its oracle, from its outputs on the full clips (on the signals when no full clips
    are given). No gradients are used.

    The source model itself may be among the targets: on certified signals it accepts every one
    (a sanity check of the certificates).

    Args:
        signals (Tensor, sequence of Tensor or sequence of Explanation): The sufficient signals,
                    ``(N, T)`` or ``(N, C, T)``, or one ``(T,)`` / ``(C, T)`` tensor per clip; or
                    FreqReX explanations, whose ``which`` set (certified, else an error) gives the
                    signal, whose ``target`` gives the decision and whose resynthesised input
                    (:meth:`Explanation.original_waveform`) gives the full clip.
        decisions (Tensor or sequence of int or str): The source decision each signal certifies,
                    one class index (or name, with ``class_names``) per clip. None with
                    explanations (taken from them).
        models (Mapping of str to Callable): Target models by name; each maps ``(n, T)`` (or
                    ``(n, C, T)``) waveforms to scores ``(n, K)`` over the same classes, in the
                    same order.
        originals (Tensor or sequence of Tensor, optional): The full clips, shaped like the
                    signals. Default: None (no full-clip counts; with explanations, their
                    resynthesised inputs)
        class_names (sequence of str, optional): Name of each class; every target model must
                    have this many classes. Default: None (``"0"``, ``"1"``, ...)
        max_examples_per_batch (int, optional): Most waveforms per model call. Default: None (a
                    memory-bounded size, at most 128)
        labels (Tensor or sequence of int or str, optional): The class to count each clip under,
                    e.g. its true label. Default: None (its source decision)
        decision (str, Decision or Callable, optional): When a target keeps a decision, as for
                    :class:`FreqReX`. Default: None (argmax, or a 0.5 threshold for one output)
        output (str, int or Callable, optional): Where the scores are in what the models return,
                    as for :class:`FreqReX`. Default: None
        which (str, optional): The set of explanations to feed: ``"sufficient"``,
                    ``"sufficient_necessary"`` or ``"complete"``. Default: ``"sufficient"``

    Returns:
        TransferResult: Per clip ``accepted``, ``decided``, ``agrees`` and ``full_decided`` ``(M, N)``; the
        acceptance matrix ``rates`` ``(M, K)``; ``counts``, ``to_markdown()`` and ``rows()``.

    Raises:
        ValueError: Mismatched lengths or shapes, an unknown class, a target model with another
                    number of classes, no target models, or an explanation without a certified set.
        TypeError: A model that is not callable, or decisions that are not class indices or names.

    Example::

        >>> expl = FreqReX(model_a).explain(clips)
        >>> kept = [e for e in expl if e.sufficient is not None and e.sufficient.certified]
        >>> result = transferability(kept, None, {"A": model_a, "B": model_b}, class_names=names)
        >>> result.rates          # (2, K): A accepts all; B's per-class acceptance
        >>> print(result.to_markdown())
    """
    check_max_examples_per_batch(max_examples_per_batch)
    output = check_output_selector(output)
    names = None if class_names is None else tuple(str(c) for c in class_names)
    if names is not None and (len(names) == 0 or len(set(names)) != len(names)):
        raise ValueError(f"class_names must be non-empty and distinct, got {list(names)}")
    waves, source, full = _inputs(signals, decisions, originals, names, which)
    n = waves.shape[0]
    classes = source if labels is None else _class_indices(labels, n, names, "labels")
    if not isinstance(models, Mapping) or len(models) == 0:
        raise ValueError("models must be a non-empty mapping of name -> model, e.g. {'B': model_b}")
    for model_name, model in models.items():
        if not callable(model):
            raise TypeError(f"models[{model_name!r}] must be callable, got {type(model).__name__}")
    max_rows = rows_per_call([waves], max_examples_per_batch)
    accepted, decided, agrees, full_decided = [], [], [], []
    n_classes = None
    for model_name, model in models.items():
        # One oracle per target: its own output checks, width, counts and decision.
        oracle = Oracle(model, output, max_rows=max_rows)
        on_signals, on_full, k = _target_scores(oracle, decision, waves, full)
        if names is not None and k != len(names):
            raise ValueError(
                f"models[{model_name!r}] has {k} classes but class_names names {len(names)}; every target "
                "model must decide over the same classes"
            )
        if n_classes is not None and k != n_classes:
            raise ValueError(f"models[{model_name!r}] has {k} classes, the others {n_classes}; pass models of one task")
        n_classes = k
        too_high = int(torch.maximum(source.max(), classes.max()))
        if too_high >= k:
            raise ValueError(f"unknown class {too_high}: models[{model_name!r}] has {k} classes")
        # A signal is accepted when it keeps the source decision (a tie within the tie tolerance
        # neither keeps nor changes it, so it is no acceptance).
        on_signal = oracle.verdicts(on_signals, source.to(on_signals.device))
        on_clip = None if on_full is None else oracle.verdicts(on_full, source.to(on_full.device))
        accepted.append(on_signal.passes.cpu())
        decided.append(on_signal.decided.cpu())
        if on_clip is not None:
            agrees.append(on_clip.passes.cpu())
            full_decided.append(on_clip.decided.cpu())
    assert n_classes is not None
    return TransferResult(
        model_names=tuple(str(m) for m in models),
        class_names=names if names is not None else tuple(str(i) for i in range(n_classes)),
        classes=classes,
        decisions=source,
        accepted=torch.stack(accepted),
        decided=torch.stack(decided),
        agrees=torch.stack(agrees) if agrees else None,
        full_decided=torch.stack(full_decided) if full_decided else None,
    )


def _inputs(
    signals: Any, decisions: Any, originals: Any, names: Optional[Tuple[str, ...]], which: str,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """The signals ``(N, ...)``, their source decisions ``(N,)`` and the full clips (or None)."""
    full: Optional[Tensor]
    if isinstance(signals, Sequence) and len(signals) > 0 and all(isinstance(s, Explanation) for s in signals):
        if decisions is not None:
            raise ValueError("decisions come from the explanations (their target); pass decisions=None")
        waves, source, full = _from_explanations(signals, which)
        if originals is not None:
            full = _stack(originals, "originals")
    else:
        if decisions is None:
            raise ValueError("decisions is None: pass the source decision of each signal (or explanations)")
        waves = _stack(signals, "signals")
        source = _class_indices(decisions, waves.shape[0], names, "decisions")
        full = None if originals is None else _stack(originals, "originals")
    if full is not None and full.shape != waves.shape:
        raise ValueError(f"originals must be shaped like the signals, {tuple(waves.shape)}; got {tuple(full.shape)}")
    return waves, source, full


def _target_scores(
    oracle: Oracle, decision: DecisionLike, waves: Tensor, full: Optional[Tensor],
) -> Tuple[Tensor, Optional[Tensor], int]:
    """One target model's scores on the signals and on the full clips (None without), with its
    decision fixed from them, and its number of classes."""
    n = waves.shape[0]

    def scores(batch: Tensor) -> Tensor:
        # Copies: a model that edits its input in place must not edit the caller's tensors.
        return oracle.scores_of(([batch[start:stop].clone()], None) for start, stop in oracle.batches(n))

    on_signals = scores(waves)
    on_full = None if full is None else scores(full)
    rule = oracle.decide(decision, on_signals if on_full is None else on_full)
    return on_signals, on_full, rule.num_classes(on_signals)
