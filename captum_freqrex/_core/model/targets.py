"""Captum's ``target`` conventions, shared by FreqReX and the metrics: one flat output index per example."""

from __future__ import annotations

import math
import operator
from typing import Any, List, Tuple, Union

import torch
from torch import Tensor

TargetLike = Union[None, int, Tuple[int, ...], Tensor, List[Any]]


def targets_per_example(target: TargetLike, batch_size: int) -> List[Any]:
    r"""Split a Captum ``target`` into one target per example.

    Args:
        target: None (the model's own decision), an int or a tuple of output indices (the same for
                    every example), a list with one of those per example, or a tensor: a scalar or
                    ``(batch_size,)``.
        batch_size (int): Number of examples.

    Returns:
        list: ``batch_size`` entries, each None, an int or a tuple.
    """
    if target is None or isinstance(target, tuple):
        return [target] * batch_size
    _check_has_values(target)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(
                f"target tensor must hold integer class indices, got {target.dtype}; "
                "use target.long() only if the values are whole class indices"
            )
        if target.dim() == 0:
            return [int(target)] * batch_size
        if target.dim() == 1 and target.numel() == batch_size:
            return [int(t) for t in target.tolist()]
        raise ValueError(
            f"target tensor must be a scalar or have one entry per example ({batch_size}), "
            f"got shape {tuple(target.shape)}"
        )
    if isinstance(target, list):
        if len(target) != batch_size:
            raise ValueError(f"target list must have one entry per example ({batch_size}), got {len(target)}")
        return [t if t is None or isinstance(t, tuple) else _class_index(t) for t in target]
    return [_class_index(target)] * batch_size


def _check_has_values(target: Any) -> None:
    # A meta tensor has a shape but no values: reading a class index from it fails deep in torch.
    items = target if isinstance(target, list) else [target]
    if any(isinstance(t, Tensor) and t.device.type == "meta" for t in items):
        raise ValueError(
            "target is a tensor on the meta device, which holds no values: pass the class indices as a "
            "tensor on a real device (e.g. target.to('cpu') after filling it) or as ints"
        )


def _class_index(target: Any) -> int:
    # Floats (1.7) would be truncated by int() and bools read as 0/1: refuse both.
    if isinstance(target, Tensor) and target.numel() == 1:
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"target must be an integer class index, got a {target.dtype} tensor")
        return int(target)
    if isinstance(target, bool) or not hasattr(target, "__index__"):
        raise TypeError(
            f"target must be None, an int class index, a tuple, a list or a tensor of class indices, "
            f"got {type(target).__name__} {target!r}"
        )
    return operator.index(target)


def flat_target_index(target: Any, output_shape: Tuple[int, ...], n_classes: int) -> int:
    r"""The index into the flattened model output of one example's (non-None) target.

    Args:
        target (int, tuple or one-element Tensor): A class index, or a tuple indexing an output of
                    shape ``output_shape``.
        output_shape (tuple of int): The model's output shape per example.
        n_classes (int): Number of classes of the decision (valid int targets are ``[0, n_classes)``).

    Returns:
        int: The flat index.
    """
    if isinstance(target, Tensor) and target.numel() == 1:
        target = int(target)
    if isinstance(target, tuple):
        target = tuple(_class_index(t) for t in target)
        if len(target) != len(output_shape) or any(not 0 <= t < n for t, n in zip(target, output_shape)):
            raise ValueError(
                f"target {target} does not index the model's output of shape "
                f"(batch, {', '.join(map(str, output_shape))})"
            )
        return int(sum(t * math.prod(output_shape[i + 1 :]) for i, t in enumerate(target)))
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_classes:
        raise ValueError(
            f"target {target!r} is out of range for a decision over {n_classes} classes; "
            f"use an int in [0, {n_classes})"
        )
    return target
