"""Input checks shared by FreqReX, the forward wrapper and the metrics.

Every check raises a ``ValueError``/``TypeError`` that names the problem and how to fix it.
"""

from __future__ import annotations

import operator
from numbers import Number
from typing import Any, Optional, Sequence, SupportsFloat, Tuple, Union, cast

import torch
from torch import Tensor

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]

#: Shortest waveform accepted; shorter clips have too few frequency bins to explain.
MIN_SAMPLES = 8


def as_int(value: Any, name: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    r"""``value`` as an int, refusing what ``int()`` would silently truncate or reinterpret.

    Accepts Python and NumPy integers and one-element integer tensors; refuses bools, floats
    (even ``2.0``) and strings with a ``TypeError``, and values outside ``[minimum, maximum]`` with a
    ``ValueError``. Both messages name the argument.
    """
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "" if minimum is None else f">= {minimum}"
        high = "" if maximum is None else f"<= {maximum}"
        raise ValueError(f"{name} must be {' and '.join(b for b in (low, high) if b)}, got {number}")
    return number


def as_bool(value: Any, name: str) -> bool:
    r"""``value`` if it is True or False; a ``TypeError`` naming the argument otherwise (a truthy
    ``1`` or ``"no"`` is refused rather than read as a flag)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def as_tuple(value: Any) -> Tuple[Any, ...]:
    """Wrap a single value in a tuple; pass tuples through (Captum's input convention)."""
    return value if isinstance(value, tuple) else (value,)


def format_waveforms(inputs: TensorOrTuple, name: str = "inputs") -> Tuple[Tuple[Tensor, ...], bool]:
    r"""Validate waveforms shaped ``(batch, time)`` or ``(batch, channels, time)``.

    Returns:
        The waveforms as a tuple, detached from any autograd graph (mutants are built in place and
        no explanation is differentiable), and whether the caller passed a tuple.
    """
    is_tuple = isinstance(inputs, tuple)
    waves = as_tuple(inputs)
    if len(waves) == 0:
        raise ValueError(f"{name} is an empty tuple; pass at least one waveform tensor")
    for i, wave in enumerate(waves):
        where = f"{name}[{i}]" if is_tuple else name
        if not isinstance(wave, Tensor):
            raise TypeError(f"{where} must be a torch.Tensor of waveforms, got {type(wave).__name__}")
        if wave.dim() not in (2, 3):
            raise ValueError(
                f"{where} must be shaped (batch, time) or (batch, channels, time), got shape "
                f"{tuple(wave.shape)}; add a batch dimension with x.unsqueeze(0) for one clip"
            )
        if not wave.is_floating_point():
            raise TypeError(f"{where} must be a floating-point tensor, got {wave.dtype}; use x.float()")
        if wave.dtype in (torch.float16, torch.bfloat16):
            # torch's FFTs take half precision only on CUDA and only for power-of-two lengths.
            raise TypeError(
                f"{where} is {wave.dtype}: the frequency transforms need float32 or float64; pass "
                "x.float(), and cast inside the forward function if the model runs in half "
                "precision (e.g. lambda w: model(w.half()))"
            )
        if wave.is_meta:
            raise ValueError(
                f"{where} is on the 'meta' device, which holds shapes but no samples; pass real "
                "waveforms (e.g. on 'cpu' or 'cuda')"
            )
        if wave.shape[0] == 0:
            raise ValueError(f"{where} has an empty batch")
        if wave.numel() == 0:
            raise ValueError(
                f"{where} has an empty dimension, shape {tuple(wave.shape)}; waveforms need at least "
                "one channel and one sample: (batch, time) or (batch, channels, time)"
            )
        if wave.shape[-1] < MIN_SAMPLES:
            raise ValueError(
                f"{where} is too short: {wave.shape[-1]} samples; FreqReX needs at least "
                f"{MIN_SAMPLES} samples per clip"
            )
        if not torch.isfinite(wave).all():
            raise ValueError(f"{where} contains NaN or Inf; clean the audio (e.g. torch.nan_to_num)")
    if len({w.shape[0] for w in waves}) > 1:
        raise ValueError(f"all tensors in {name} must share the batch size, got {[w.shape[0] for w in waves]}")
    return tuple(w.detach() for w in waves), is_tuple


def format_baselines(baselines: Any, waves: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    r"""Turn Captum-style baselines into one waveform tensor per input, broadcastable to it.

    Accepted per input: ``None`` (zeros: masked frequencies are removed), a number (a constant
    waveform), or a tensor broadcastable to the input (``(time,)``, ``(1, ...)`` or ``(batch, ...)``).
    Tensors are detached from any autograd graph, as the inputs are.
    """
    per_input = as_tuple(baselines) if isinstance(baselines, tuple) else (baselines,) * len(waves)
    if len(per_input) != len(waves):
        raise ValueError(f"baselines has {len(per_input)} entries but inputs has {len(waves)}")
    out = []
    for i, (base, wave) in enumerate(zip(per_input, waves)):
        if base is None:
            out.append(torch.zeros((1,) + wave.shape[1:], dtype=wave.dtype, device=wave.device))
            continue
        if isinstance(base, Number):
            # numbers.Number declares no __float__; float() raises for a non-real number as before.
            value = float(cast(SupportsFloat, base))
            base = torch.full((1,) + wave.shape[1:], value, dtype=wave.dtype, device=wave.device)
        if not isinstance(base, Tensor):
            raise TypeError(f"baselines[{i}] must be None, a number or a tensor, got {type(base).__name__}")
        base = base.detach().to(device=wave.device, dtype=wave.dtype)
        try:
            expanded = torch.broadcast_shapes(base.shape, wave.shape)
        except RuntimeError:
            expanded = None
        if expanded != wave.shape or base.dim() > wave.dim():
            raise ValueError(
                f"baselines[{i}] of shape {tuple(base.shape)} does not broadcast to the inputs "
                f"{tuple(wave.shape)}; pass a waveform of shape (time,), (1, ...) or (batch, ...)"
            )
        if not torch.isfinite(base).all():
            raise ValueError(f"baselines[{i}] contains NaN or Inf")
        while base.dim() < wave.dim():
            base = base.unsqueeze(0)
        out.append(base)
    return tuple(out)
