"""What every model query shares: its cost, its batch size, and the checks of its output.

:class:`QueryStats` (queries, forward calls, model vs total seconds), the memory-bounded batch size
(:func:`auto_batch_size`) and the peak-memory estimate of long clips, the ``output=`` selector
(:func:`select_output`) and the output checks (:func:`check_model_outputs`), and :class:`RowBuffer`,
reused model-input rows. The one caller of the model that uses them all is
:class:`~captum_freqrex._core.model.oracle.Oracle`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Sequence, Tuple, Union

import torch
from torch import Tensor


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


def _available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3


def auto_batch_size(waveform_numel: int, device: torch.device, element_bytes: int = 4) -> int:
    r"""Mutants per model call that fit comfortably in memory.

    Budgets an eighth of the available memory (at most 2 GiB) and assumes a mutant costs about 16
    times its waveform (spectrum copies, the waveform and the model's activations). Between 1 and 128.

    Args:
        waveform_numel (int): Samples in one mutant (channels x time, over all inputs).
        device (torch.device): Where the mutants live.
        element_bytes (int, optional): Bytes per sample. Default: 4

    Returns:
        int: The batch size.
    """
    budget = min(_available_memory_bytes(device) // 8, 2 * 1024**3)
    per_mutant = max(waveform_numel * element_bytes * 16, 1)
    return int(max(1, min(128, budget // per_mutant)))


#: Peak memory of one explanation, in waveforms of the explained clip: spectra of the input and
#: the baseline, part waveforms of a wave of refinement steps, few-bin anchors and transform
#: workspace, plus two per model-input row (the row and the model's first activations). Fitted to
#: peaks measured with the tone benchmark model (10-minute clip: 1.41 GiB with 3 rows per call)
#: and rounded up: it over-estimates by about a quarter rather than under-estimate.
WAVEFORMS_PER_EXPLANATION = 36
#: The Python process, torch and the model before any explanation.
BASE_MEMORY_BYTES = 256 * 1024**2


def estimate_memory(waveforms: Sequence[Tensor], max_rows: int) -> int:
    r"""Estimated peak memory of explaining one example, checked against the available memory.

    Long clips fail deep inside the FFT library when memory runs out; this fails first, with the
    estimate and what to do.

    Args:
        waveforms (sequence of Tensor): The explained inputs ``(B, ...)``.
        max_rows (int): Mutants per model call.

    Returns:
        int: The estimate in bytes.

    Raises:
        MemoryError: When the estimate exceeds the memory available on the inputs' device.
    """
    samples = sum(math.prod(w.shape[1:]) for w in waveforms)
    element = waveforms[0].element_size()
    estimate = samples * element * (WAVEFORMS_PER_EXPLANATION + 2 * max_rows) + BASE_MEMORY_BYTES
    available = _available_memory_bytes(waveforms[0].device)
    if estimate > available:
        gib = 1024**3
        fit = max(int((available - BASE_MEMORY_BYTES) / (element * (WAVEFORMS_PER_EXPLANATION + 2))), 0)
        raise MemoryError(
            f"explaining {samples:,} samples per example needs about {estimate / gib:.1f} GiB "
            f"(estimate, {max_rows} mutant(s) per model call) but {available / gib:.1f} GiB are "
            f"available on {waveforms[0].device}: explain shorter segments (at most about "
            f"{fit:,} samples fit), pass perturbations_per_eval=1, or free memory"
        )
    return estimate


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
    if not torch.isfinite(flat).all():
        raise ValueError("the model returned NaN or Inf; FreqReX needs finite scores for every mutant")
    return scores, flat, tuple(scores.shape[1:])


class RowBuffer:
    r"""Reusable model-input rows: one buffer per input, grown when a call needs more rows.

    Allocating every batch of mutants afresh costs page faults comparable to synthesising them on
    long clips (allocations of 32 MiB and more come straight from the operating system). Outputs
    of a model called on these rows must be copied before the rows are written again: a model
    may return a view of its input.

    Args:
        examples (sequence of Tensor): Per input, one example ``(*example_shape)``: the shape,
                    dtype and device of a row.
    """

    def __init__(self, examples: Sequence[Tensor]) -> None:
        self.examples = tuple(examples)
        self._buffers: List[Tensor] = []

    @property
    def capacity(self) -> int:
        """Rows allocated so far (the most any call has taken)."""
        return self._buffers[0].shape[0] if self._buffers else 0

    def take(self, n_rows: int) -> List[Tensor]:
        """Per input, ``(n_rows, *example_shape)`` uninitialised rows (views of the buffers)."""
        if not self._buffers or self._buffers[0].shape[0] < n_rows:
            self._buffers = [e.new_empty((n_rows,) + tuple(e.shape)) for e in self.examples]
        return [b[:n_rows] for b in self._buffers]
