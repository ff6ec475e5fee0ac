"""The one caller of the model, as Captum's ``_run_forward`` is Captum's.

Every model call of the package goes through an :class:`Oracle`: FreqReX's anchors, search,
extraction, shrink and certification (:mod:`captum_freqrex._core.freqrex`), every model-based
metric (:mod:`captum_freqrex.metrics`), and the Captum methods that
:func:`~captum_freqrex.compare.compare_methods` and ``benchmarks/perf.py`` time, which get the
oracle as their model (inside :class:`~captum_freqrex._core.forward_wrapper.FrequencyForward`).
One call of the model:

1. gets ``additional_forward_args`` sliced to the examples of its rows;
2. runs without gradients (:meth:`Oracle.scores`), or with them when a gradient method calls the
   oracle as a plain function (:meth:`Oracle.__call__`);
3. is counted (rows and calls) and timed (synchronising CUDA) in one :class:`QueryStats`, and
   reported to the active progress line;
4. has its scores picked by ``output=`` and checked (:func:`check_model_outputs`: a real
   floating-point tensor, one row per waveform, finite), and their width checked against the
   first call's;
5. leaves a module in training mode as it found it: its buffers (batch-norm running statistics,
   which each call in training mode updates) are put back after the call
   (:func:`~captum_freqrex._core.model.buffers.buffers_kept`).

Rows beyond one call are cut into calls of at most ``max_rows`` (:meth:`Oracle.batches`: the
``perturbations_per_eval`` or ``max_examples_per_batch`` of the caller, or the memory-bounded size
of :func:`rows_per_call`). With a decision fixed (:meth:`Oracle.decide`), :meth:`Oracle.verdicts`
reads score rows as :class:`RowVerdicts`: the class decided, the confidences, whether each row
keeps or changes the decision (a tie does neither) and its margin.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.model.buffers import buffers_kept, in_training
from captum_freqrex._core.model.decision import Decision, DecisionLike, RowVerdicts, resolve_decision
from captum_freqrex._core.model.layout import layout_note
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.model.outputs import NonFiniteScoresError, OutputSelector, checked_scores
from captum_freqrex._core.model.memory import auto_batch_size
from captum_freqrex._core.spectral.rows import RowBuffer
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.model.outputs import check_output_selector
from captum_freqrex._utils.progress import report_queries
from captum_freqrex._utils.validation import as_tuple

__all__ = ["Oracle", "RowVerdicts", "raised_by_model", "row_slices", "rows_per_call"]

#: Which examples the rows of a call belong to: None (the extra arguments go as they are), one
#: example for every row (an int), or one per row (a ``(N,)`` long tensor).
Examples = Union[None, int, Tensor]


def row_slices(n_rows: int, max_rows: int) -> Iterator[Tuple[int, int]]:
    r"""``[start, stop)`` slices of ``n_rows`` rows, at most ``max_rows`` each: one per model call."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    for start in range(0, n_rows, max_rows):
        yield start, min(start + max_rows, n_rows)


def rows_per_call(waveforms: Sequence[Tensor], requested: Optional[int] = None) -> int:
    r"""Rows per model call: ``requested`` when given, else the memory-bounded
    :func:`~captum_freqrex._core.model.memory.auto_batch_size` of these waveforms ``(B, ...)``."""
    if requested is not None:
        return requested
    samples = sum(math.prod(w.shape[1:]) for w in waveforms)
    return auto_batch_size(samples, waveforms[0].device, waveforms[0].element_size())


def check_forward_func(forward_func: object) -> Callable[..., Any]:
    r"""``forward_func`` itself when it is callable; otherwise a ``TypeError`` naming the fix. An
    object that holds its model in ``.model`` (what ``zoo.load`` returns, a ``ZooModel``) is told
    to pass that model."""
    if callable(forward_func):
        return forward_func
    name = type(forward_func).__name__
    if callable(getattr(forward_func, "model", None)):
        raise TypeError(
            f"forward_func must be callable, got a {name}, which holds its model in .model: pass that model "
            f"(loaded = zoo.load(...); FreqReX(loaded.model))"
        )
    raise TypeError(f"forward_func must be callable (waveforms to scores), got {name}")


def declared_sample_rate(forward_func: object) -> Optional[float]:
    r"""The model's own ``sample_rate`` attribute (Hz) where it has a positive finite number there
    (the zoo's models do), else None: what an explanation's frequencies in Hz default to."""
    rate = getattr(forward_func, "sample_rate", None)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        return None
    return float(rate)


def class_name_counts(n_outputs: int) -> Tuple[int, ...]:
    r"""How many class names a model of ``n_outputs`` scores per example may have: one per output,
    or one or two for a single (thresholded) output."""
    return (1, 2) if n_outputs == 1 else (n_outputs,)


def declared_class_names(forward_func: object, n_outputs: int) -> Optional[Tuple[str, ...]]:
    r"""The model's own ``class_names`` attribute where it names every output (a sequence of
    strings, as many as :func:`class_name_counts` allows; the zoo's models have one), else None:
    what an explanation names its classes by."""
    names = getattr(forward_func, "class_names", None)
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        return None
    if not all(isinstance(name, str) for name in names) or len(names) not in class_name_counts(n_outputs):
        return None
    return tuple(names)


#: Set on an exception the model itself raised inside a call of the oracle (see :func:`raised_by_model`).
_MODEL_FAILURE = "_freqrex_raised_by_model"


def mark_raised_by_model(error: BaseException, note: Optional[str] = None) -> None:
    r"""Mark ``error`` as the model's own (see :func:`raised_by_model`) and add ``note`` to it."""
    try:
        setattr(error, _MODEL_FAILURE, True)
    except (AttributeError, TypeError):  # an exception type without instance attributes
        return
    _add_note(error, note)


def _add_note(error: BaseException, note: Optional[str]) -> None:
    # BaseException.add_note is Python 3.11's; on 3.10 the note is kept in ``__notes__`` all the same.
    if note is None:
        return
    add = getattr(error, "add_note", None)
    try:
        if add is not None:
            add(note)
        else:
            error.__notes__ = [*getattr(error, "__notes__", []), note]
    except (AttributeError, TypeError):  # an exception type without instance attributes
        pass


def raised_by_model(error: BaseException) -> bool:
    r"""Whether ``error`` was raised by the model itself during one of FreqReX's calls (a failure
    of the model on its input, the user's to fix), not by the library."""
    return bool(getattr(error, _MODEL_FAILURE, False))


def _non_finite_message(bad: Tensor, waveforms: Tensor) -> str:
    r"""Which waveforms a model returned NaN or Inf on and what to do: where every one of them is
    silent (all zeros, like the silent baseline that removed frequencies are replaced by), the
    model most likely divides by the input's level."""
    where = f"on {int(bad.sum())} of the {bad.numel()} waveforms of one call"
    silent = waveforms.detach()[bad.to(waveforms.device)].reshape(int(bad.sum()), -1)
    if silent.numel() and not bool(silent.any()):
        return (
            f"the model returned NaN or Inf {where}, each of them silent (all zeros), such as the "
            "silent baseline that removed frequencies are replaced by: a model that divides by the "
            "input's level (peak or RMS normalisation) divides by zero there; guard the division "
            "(e.g. x / (x.abs().amax(-1, keepdim=True) + 1e-8)) or explain against a baseline that is "
            "not silence (explain(..., baselines=...), e.g. low noise; --baseline noise)"
        )
    return (
        f"the model returned NaN or Inf {where}; FreqReX needs finite scores for every mutant (the "
        "input with some frequencies replaced by the baseline's): check the model on such inputs"
    )


def _first_rows(args: Tuple[Any, ...], rows: int) -> Tuple[Any, ...]:
    # The call's arguments for its first waveform alone: every tensor with a row per waveform cut
    # to its first row, the others as they are (an uncounted call, made only to say what to do).
    return tuple(a[:1] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == rows else a for a in args)


def _first_weight(forward_func: Callable) -> Optional[Tensor]:
    # The first floating-point parameter (or buffer) of a module model, or of the module behind a
    # bound method such as ``model.forward``; None for other callables.
    module = forward_func if isinstance(forward_func, torch.nn.Module) else getattr(forward_func, "__self__", None)
    if not isinstance(module, torch.nn.Module):
        return None
    tensors = [*module.parameters(), *module.buffers()]
    return next((t for t in tensors if t.is_floating_point()), None)


def _input_mismatch(forward_func: Callable, waveforms: Tensor) -> Optional[str]:
    r"""Why a model may have failed on the waveforms FreqReX gave it, where their dtype or device
    is not its weights' (None otherwise): the waveforms are the input's, as the user passed it,
    and a float64 clip (``soundfile.read``'s default) fails inside a float32 model with an error
    about matrix dtypes that does not name the input."""
    weight = _first_weight(forward_func)
    if weight is None:
        return None
    if waveforms.dtype != weight.dtype:
        return (
            f"FreqReX calls the model on waveforms of the input's dtype, {waveforms.dtype}, and the model's "
            f"weights are {weight.dtype}: pass the audio as {weight.dtype} (e.g. x.to({weight.dtype}); "
            f"soundfile.read(path, dtype='float32') reads it so)"
        )
    if waveforms.device != weight.device and weight.device.type != "meta":  # meta: weights never loaded
        return (
            f"FreqReX calls the model on waveforms on the input's device, {waveforms.device}, and the model's "
            f"weights are on {weight.device}: move the audio there (x.to('{weight.device}'))"
        )
    return None


class Oracle:
    r"""Calls the model: batched, counted, timed, checked, and read by one decision.

    Args:
        forward_func (Callable): The model: ``forward_func(*waveforms, *additional_forward_args)``.
        output (None, str, int or Callable, optional): Where the scores are in the model's output
                    (see :func:`~captum_freqrex._core.model.outputs.select_output`). Default: None
        additional_forward_args (Any, optional): Extra arguments; tensors whose first dimension is
                    ``batch_size`` are sliced to the examples of each call's rows. Default: None
        batch_size (int, optional): Examples in the explained batch (what the extra arguments are
                    sliced by); None passes them as they are. Default: None
        max_rows (int, optional): Most rows per model call. Default: 1
        budget (int, optional): Query budget of one example, shown by the progress line.
        confidence_filter (float, optional): A row only passes with at least this confidence in
                    its target. Default: 0.0
        rows (RowBuffer, optional): Reused model-input rows for :meth:`keep_scores`. Default: None
                    (fresh tensors per call)

    Attributes:
        stats (QueryStats): Rows queried, model calls, model seconds (and ``total_seconds``, which
                    :meth:`measure` adds to).
        output_shape (tuple of int): Shape of one waveform's scores, fixed by the first call
                    (None before it).
        decision (Decision): The decision fixed by :meth:`decide` (None before).
    """

    def __init__(
        self,
        forward_func: Callable,
        output: OutputSelector = None,
        additional_forward_args: Any = None,
        batch_size: Optional[int] = None,
        max_rows: int = 1,
        *,
        budget: Optional[int] = None,
        confidence_filter: float = 0.0,
        rows: Optional[RowBuffer] = None,
    ) -> None:
        check_forward_func(forward_func)
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.forward_func = forward_func
        # The module whose buffers each call puts back (None: not a module in training mode), found
        # once: an oracle serves one explanation, metric or clip, in which the mode does not change.
        self.training_module = forward_func if in_training(forward_func) else None
        self.output = check_output_selector(output)
        self.additional_forward_args = additional_forward_args
        self.batch_size = batch_size
        self.max_rows = max_rows
        self.budget = budget
        self.confidence_filter = confidence_filter
        self.rows = rows
        self._check_extra_args()
        self.stats = QueryStats()
        self.output_shape: Optional[Tuple[int, ...]] = None
        self.decision: Optional[Decision] = None

    # ------------------------------------------------------------------ calls

    def _check_extra_args(self) -> None:
        # Tensors with one row per example are sliced per example; others pass as they are. One
        # row more or fewer than the batch is almost surely a per-example argument gone wrong,
        # which would otherwise reach the model unsliced (or be sliced against the wrong rows).
        if self.additional_forward_args is None or self.batch_size is None or self.batch_size < 2:
            return
        for index, arg in enumerate(as_tuple(self.additional_forward_args)):
            if isinstance(arg, Tensor) and arg.dim() > 0 and abs(arg.shape[0] - self.batch_size) == 1:
                raise ValueError(
                    f"additional_forward_args[{index}] has {arg.shape[0]} rows for a batch of {self.batch_size} "
                    f"examples: a per-example argument needs exactly {self.batch_size} rows (one per example, "
                    "sliced with it); a constant tensor of that length belongs to the model itself (e.g. "
                    "functools.partial(model, weights=constant))"
                )

    def _extra_args(self, examples: Examples, rows: int) -> Tuple[Any, ...]:
        if self.additional_forward_args is None:
            return ()
        args = as_tuple(self.additional_forward_args)
        if examples is None or self.batch_size is None:
            return args

        def pick(arg: Any) -> Any:
            if not (isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == self.batch_size):
                return arg
            if isinstance(examples, int):  # one example: a view, repeated per row
                return arg[examples : examples + 1].expand((rows,) + arg.shape[1:])
            assert isinstance(examples, Tensor)
            return arg[examples.to(arg.device)]

        return tuple(pick(arg) for arg in args)

    def _runs_on_one_row(self, args: Tuple[Any, ...], kwargs: Dict[str, Any], rows: int) -> bool:
        # After the model failed on a batch: does it run on the batch's first row alone, with one
        # row of scores? (One uncounted call, made only to say what to do.)
        return self._gives_one_row(_first_rows(args, rows), kwargs)

    def _gives_one_row(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> bool:
        # One uncounted call on one waveform: does the model run and score it as one row?
        try:
            with torch.no_grad(), buffers_kept(self.training_module):
                checked_scores(self.forward_func(*args, **kwargs), 1, self.output)
        except Exception:
            return False
        return True

    def _layout_note(self, args: Tuple[Any, ...], kwargs: Dict[str, Any], first: Tensor) -> Optional[str]:
        # After the model failed on the waveforms (or scored them without one row each): does it
        # take another layout? (One uncounted call on one waveform so shaped; see layout_note.)
        position = next(i for i, a in enumerate(args) if a is first)
        sliced = list(_first_rows(args, first.shape[0]))

        def scores_one_row(one: Tensor) -> bool:
            return self._gives_one_row((*sliced[:position], one, *sliced[position + 1 :]), kwargs)

        return layout_note(first, scores_one_row)

    def _forward(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
        first = next((a for a in args if isinstance(a, Tensor)), None)
        if first is None:
            raise TypeError("the model must be called on waveform tensors, got no tensor argument")
        rows = first.shape[0]
        start = time.perf_counter()
        try:
            with buffers_kept(self.training_module):  # a module in training mode keeps its batch-norm statistics
                outputs = self.forward_func(*args, **kwargs)
        except Exception as error:
            note = _input_mismatch(self.forward_func, first)
            if note is None and rows > 1 and self._runs_on_one_row(args, kwargs, rows):
                note = (
                    f"the model failed on a batch of {rows} waveforms and runs on one of them alone: a model "
                    "that takes one waveform at a time needs perturbations_per_eval=1 (explain, attribute; "
                    "max_examples_per_batch=1 in the metrics; --rows-per-call 1 on the command line)"
                )
            if note is None:
                note = self._layout_note(args, kwargs, first)
            mark_raised_by_model(error, note)
            raise
        if first.device.type == "cuda":
            torch.cuda.synchronize(first.device)  # the clock must measure the queued work
        self.stats.model_seconds += time.perf_counter() - start
        self.stats.queries += rows
        self.stats.forward_calls += 1
        try:
            selected, flat, shape = checked_scores(outputs, rows, self.output)
        except NonFiniteScoresError as error:
            raise NonFiniteScoresError(_non_finite_message(error.rows, first), error.rows) from None
        except ValueError as error:  # no row of scores per waveform: a model that wants another layout?
            _add_note(error, self._layout_note(args, kwargs, first))
            raise
        if self.output_shape is None:
            self.output_shape = shape
        elif flat.shape[1] != math.prod(self.output_shape):
            raise ValueError(
                f"the model returned {flat.shape[1]} scores for a mutant but "
                f"{math.prod(self.output_shape)} for the original input; outputs must have a fixed width"
            )
        report_queries(self.stats.queries, self.budget)
        return selected, flat

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        r"""The model as a plain function (for Captum's methods): counted, timed and checked like
        every query, and returning the selected scores as the model gave them, with their graph."""
        return self._forward(args, kwargs)[0]

    def scores(self, waveforms: Sequence[Tensor], examples: Examples = None) -> Tensor:
        r"""Scores ``(N, K)`` (checked, flattened, detached, a copy) of waveforms ``(N, ...)``, in
        one model call without gradients.

        Args:
            waveforms (sequence of Tensor): Per input, the ``(N, ...)`` rows.
            examples (None, int or Tensor, optional): The example of the rows (an int) or of each
                        row (``(N,)``), to slice ``additional_forward_args`` by. Default: None

        Raises:
            TypeError: The model returned no tensor, or bool, integer or complex scores.
            ValueError: The scores have no row per waveform, hold NaN or Inf, or change width.
        """
        args = tuple(waveforms) + self._extra_args(examples, waveforms[0].shape[0])
        with torch.no_grad():
            flat = self._forward(args, {})[1]
        # A model may return a view of its input, and rows of a RowBuffer are written again.
        return flat.clone()

    def batches(self, n_rows: int) -> Iterator[Tuple[int, int]]:
        r"""``[start, stop)`` slices of ``n_rows`` rows, one per model call (at most ``max_rows``)."""
        return row_slices(n_rows, self.max_rows)

    def scores_of(self, batches: Iterable[Tuple[Sequence[Tensor], Examples]]) -> Tensor:
        r"""Scores ``(N, K)`` of batches ``(waveforms, examples)``, one model call each, in order.
        A batch is queried before the next one is drawn, so batches may share rows."""
        return torch.cat([self.scores(waves, examples) for waves, examples in batches])

    def waveform_scores(
        self, example: int, n_rows: int, waveforms: Callable[[int], Sequence[Tensor]],
        rows_per_call: Optional[int] = None,
    ) -> Tensor:
        r"""Scores ``(n_rows, K)`` of given waveforms of one example, each copied into the reused rows
        (so a model that edits its input in place edits only those copies).

        Args:
            example (int): The example (what the extra arguments are sliced to).
            n_rows (int): Number of rows.
            waveforms (Callable): ``waveforms(i)`` returns row ``i``'s waveforms, one per input
                        tensor; called when its model call is filled, so rows are made one call at a time.
            rows_per_call (int, optional): Rows per model call. Default: ``max_rows``
        """
        assert self.rows is not None, "waveform_scores writes into the oracle's reused rows"
        rows_buffer = self.rows

        def batches() -> Iterator[Tuple[Sequence[Tensor], Examples]]:
            for start, stop in row_slices(n_rows, rows_per_call or self.max_rows):
                rows = rows_buffer.take(stop - start)
                for j, i in enumerate(range(start, stop)):
                    for row, wave in zip(rows, waveforms(i)):
                        row[j].copy_(wave)
                yield rows, example

        return self.scores_of(batches())

    def keep_scores(
        self, space: FeatureSpace, example: int, n_rows: int, keeps: Callable[[int, int], Tensor]
    ) -> Tensor:
        r"""Scores ``(n_rows, K)`` of mutants of one example, given by keep-masks over features.

        Args:
            space (FeatureSpace): The features and spectra.
            example (int): The example.
            n_rows (int): Number of mutants.
            keeps (Callable): ``keeps(start, stop)`` returns the keep values
                        ``(stop - start, n_features)`` of those rows; built per model call, so that
                        many masks of a long clip are never held at once.
        """

        def batches() -> Iterator[Tuple[Sequence[Tensor], Examples]]:
            for start, stop in self.batches(n_rows):
                chunk = keeps(start, stop).to(space.device, space.dtype)
                out = self.rows.take(stop - start) if self.rows is not None else None
                yield space.mutants(example, chunk, out=out), example

        return self.scores_of(batches())

    @contextmanager
    def measure(self) -> Iterator[QueryStats]:
        r"""Add the wall time of the ``with`` block to ``stats.total_seconds`` (model and overhead).
        Work still queued on a GPU at the end of the block is not counted: synchronise inside it."""
        start = time.perf_counter()
        try:
            yield self.stats
        finally:
            self.stats.total_seconds += time.perf_counter() - start

    # ------------------------------------------------------------------ verdicts

    def decide(self, decision: DecisionLike, outputs: Tensor) -> Decision:
        r"""Fix the decision from the scores ``(N, K)`` of the unmasked inputs (every ``"auto"``
        choice of :func:`~captum_freqrex._core.model.decision.resolve_decision` is made here, once), so that
        every later batch is read the same way, whatever else shares it."""
        self.decision = resolve_decision(decision, outputs)
        return self.decision

    def verdicts(self, outputs: Tensor, targets: Union[int, Tensor]) -> RowVerdicts:
        r"""The verdicts of the decision fixed by :meth:`decide` on score rows ``(N, K)``.

        Args:
            outputs (Tensor): ``(N, K)`` scores.
            targets (int or Tensor): The target of every row, or ``(N,)`` long, one per row.
        """
        if self.decision is None:
            raise RuntimeError("no decision yet: call Oracle.decide on the unmasked inputs' scores first")
        if isinstance(targets, int):
            targets = torch.full((outputs.shape[0],), targets, dtype=torch.long, device=outputs.device)
        verdicts = self.decision.read(outputs, targets)
        if self.confidence_filter > 0:
            verdicts.passes = verdicts.passes & (verdicts.confidence >= self.confidence_filter)
        return verdicts
