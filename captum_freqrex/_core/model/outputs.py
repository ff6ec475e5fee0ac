"""The one check of what a model returns: the ``output=`` selector and the score checks.

:func:`select_output` finds the scores in what the model returns (a tensor, a Hugging Face
``ModelOutput``, a dict or a tuple), and :func:`checked_scores` checks their shape and values. The
one caller of the model that uses them is :class:`~captum_freqrex._core.model.oracle.Oracle`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Tuple, Union

import torch
from torch import Tensor


#: What ``output=`` accepts: None (unwrap ``.logits``, a dict's ``"logits"`` or a tuple's first
#: element), a key or attribute name, an index into a tuple, or a function of the model's output.
OutputSelector = Union[None, str, int, Callable[[Any], Any]]

_SELECTOR_HINT = (
    "pass output= to FreqReX or compare_methods, e.g. output=\"logits\" (a key or attribute), output=0 "
    "(a tuple's element) or output=lambda out: out[\"scores\"]; or wrap the model so that it returns the scores"
)


def check_output_selector(output: OutputSelector) -> OutputSelector:
    r"""Validate an ``output=`` selector (see :func:`select_output`) and return it.

    Raises:
        TypeError: ``output`` is not None, a str, an int or a callable.
    """
    if output is None or callable(output) or isinstance(output, str):
        return output
    if isinstance(output, int) and not isinstance(output, bool):
        return output
    raise TypeError(
        f"output must be None, a key or attribute name (str), a tuple index (int) or a function of the "
        f"model's output, got {output!r}"
    )


def _describe(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return f"{type(outputs).__name__} with keys {list(outputs.keys())}"
    if isinstance(outputs, (tuple, list)):
        kinds = ", ".join(type(item).__name__ for item in outputs[:4])
        return f"{type(outputs).__name__} of {len(outputs)} ({kinds}{', ...' if len(outputs) > 4 else ''})"
    return type(outputs).__name__


def select_output(outputs: Any, output: OutputSelector = None) -> Any:
    r"""The scores inside what a model returned: the resolver behind every ``output=`` option.

    With ``output=None`` a tensor is returned as is, an object with a tensor attribute ``logits``
    (a Hugging Face ``ModelOutput``, for one) gives its ``.logits``, a mapping its ``"logits"``
    entry, and a tuple its first element (unwrapped again the same way). With a selector:
    a str is a mapping key or an attribute name, an int an index into a tuple or list (or into a
    ``ModelOutput``'s ``to_tuple()``), and a callable is called on the whole output. The result
    is checked by :func:`check_model_outputs`; nothing is detached here, so gradient-based
    methods can use it too.

    Args:
        outputs (Any): What the model returned.
        output (None, str, int or Callable, optional): The selector. Default: None

    Returns:
        Any: The selected value (a tensor for a well-formed model).

    Raises:
        TypeError: A mapping without ``"logits"`` and no selector (the message names its keys),
                    or a selector that does not fit the output.
    """
    if output is None:
        if isinstance(outputs, Tensor):
            return outputs
        logits = getattr(outputs, "logits", None)
        if isinstance(logits, Tensor):
            return logits
        if isinstance(outputs, Mapping):
            if "logits" in outputs:
                return outputs["logits"]
            raise TypeError(
                f"the model returned a {_describe(outputs)} and no 'logits': say which entry holds the "
                f"scores; {_SELECTOR_HINT}"
            )
        if isinstance(outputs, tuple) and outputs:
            return select_output(outputs[0])
        return outputs
    if callable(output):
        return output(outputs)
    if isinstance(output, str):
        if isinstance(outputs, Mapping):
            if output in outputs:
                return outputs[output]
        elif hasattr(outputs, output):
            return getattr(outputs, output)
        raise TypeError(f"output={output!r} selects nothing: the model returned a {_describe(outputs)}")
    items = outputs.to_tuple() if hasattr(outputs, "to_tuple") else outputs
    if isinstance(items, (tuple, list)) and -len(items) <= output < len(items):
        return items[output]
    raise TypeError(f"output={output!r} selects nothing: the model returned a {_describe(outputs)}")


class NonFiniteScoresError(ValueError):
    r"""The model returned NaN or Inf scores; ``rows`` (``(N,)`` bool) marks the waveforms it did so on."""

    def __init__(self, message: str, rows: Tensor) -> None:
        super().__init__(message)
        self.rows = rows


def check_model_outputs(outputs: Any, rows: int, output: OutputSelector = None) -> Tensor:
    r"""Validate a model's outputs on ``rows`` waveforms and flatten them to ``(rows, K)``.

    The one set of output checks shared by FreqReX, the metrics and the comparison: the scores
    (picked by :func:`select_output` with ``output``) are a real floating-point tensor with one row
    per waveform and only finite scores.

    Args:
        outputs (Any): What the model returned.
        rows (int): Number of waveforms it was called on.
        output (None, str, int or Callable, optional): Where the scores are (see
                    :func:`select_output`). Default: None

    Returns:
        Tensor: ``(rows, K)`` detached scores.
    """
    return model_scores(outputs, rows, output)[0]


def model_scores(outputs: Any, rows: int, output: OutputSelector = None) -> Tuple[Tensor, Tuple[int, ...]]:
    r""":func:`check_model_outputs` and the per-waveform shape of the scores before flattening."""
    _, flat, shape = checked_scores(outputs, rows, output)
    return flat, shape


def checked_scores(
    outputs: Any, rows: int, output: OutputSelector = None
) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    r"""The checks of :func:`check_model_outputs`, returning the selected scores as the model gave
    them (with their graph, for gradient-based methods), flattened and detached ``(rows, K)``, and
    their per-waveform shape."""
    selected = select_output(outputs, output)
    if not isinstance(selected, Tensor):
        picked = "" if selected is outputs else f" (selected from a {_describe(outputs)})"
        raise TypeError(
            f"the model must return a tensor of scores, got {_describe(selected)}{picked}; return the "
            f"logits or probabilities, or {_SELECTOR_HINT}"
        )
    scores = selected
    if scores.is_complex() or scores.dtype == torch.bool or not scores.is_floating_point():
        raise TypeError(
            f"the model returned {scores.dtype} scores; FreqReX needs real floating-point scores "
            "(logits or probabilities) to rank classes and compare confidences: return "
            "scores.float() (for complex outputs, e.g. scores.abs())"
        )
    if scores.dim() == 0 or scores.shape[0] != rows:
        raise ValueError(
            f"the model returned shape {tuple(scores.shape)} for a batch of {rows} waveforms; it "
            "must return one row per waveform: (batch,), (batch, classes) or (batch, ...)"
        )
    flat = scores.detach().reshape(rows, -1)
    if flat.shape[1] == 0:
        raise ValueError("the model returned an empty output per waveform")
    finite = torch.isfinite(flat).all(dim=1)
    if not bool(finite.all()):
        raise NonFiniteScoresError(
            "the model returned NaN or Inf; FreqReX needs finite scores for every mutant", ~finite.cpu()
        )
    return scores, flat, tuple(scores.shape[1:])


