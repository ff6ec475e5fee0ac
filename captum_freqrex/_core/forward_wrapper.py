"""The frequency mask mechanism as a plain forward function, for any Captum method.

:class:`FrequencyForward` binds a model to a batch of waveforms. Its inputs are per-bin keep
coefficients (1 keeps a bin, 0 sets it to the baseline's spectrum, values in between interpolate),
its output is the model's scores on the resynthesised waveforms (unwrapped from a ``ModelOutput``,
dict or tuple as FreqReX unwraps them, graph kept for gradients). IntegratedGradients, KernelShap,
Lime, FeatureAblation and ShapleyValueSampling then attribute over exactly the frequency features
FreqReX uses, with the same ``feature_mask``.

A wrapper of several clips must know which clip each row of a call belongs to, and Captum's methods
lay rows out in different ways (KernelShap and Lime even go one example at a time). So the rows are
identified, not guessed: :meth:`FrequencyForward.example_index` is passed as
``additional_forward_args``, Captum expands it exactly as it expands the inputs, and the wrapper reads
every row's clip from it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.model.outputs import OutputSelector, check_output_selector, select_output
from captum_freqrex._utils.validation import TensorOrTuple, as_tuple, format_baselines, format_waveforms

ROWS = ("index", "tiled", "interleaved")


class ExampleIndex(Tensor):
    r"""A ``(N,)`` long tensor: the example (clip) of each row, made by
    :meth:`FrequencyForward.example_index`.

    A plain :class:`torch.Tensor` to Captum, which slices, concatenates and repeat-interleaves it
    along with the inputs (the subclass survives all three, and ``deepcopy``);
    :class:`FrequencyForward` recognises it by its type among the other ``additional_forward_args``
    and does not pass it to the model.
    """

    def __deepcopy__(self, memo: Dict[int, Any]) -> "ExampleIndex":
        # sensitivity_max deep-copies its kwargs; Tensor's default deepcopy rejects subclasses.
        copied = self.as_subclass(Tensor).clone().as_subclass(ExampleIndex)
        memo[id(self)] = copied
        return copied


class FrequencyForward(nn.Module):
    r"""A Captum-ready forward function over frequency features of fixed waveforms.

    Example::

        >>> wrapped = FrequencyForward(model, waveforms)          # B clips
        >>> ig = IntegratedGradients(wrapped)
        >>> attr = ig.attribute(wrapped.ones(), baselines=wrapped.zeros(), target=3,
        ...                     additional_forward_args=wrapped.example_index())
        >>> # attr: (B, T // 2 + 1), one value per rfft bin, comparable with FreqReX.attribute

    **Which clip a row belongs to.** A Captum method calls the wrapper with ``N`` rows of
    coefficients, and with ``B > 1`` clips the wrapper must know the clip of each row. Captum 0.9
    lays them out differently per method:

    * IntegratedGradients (also with ``internal_batch_size``), FeatureAblation and
      ShapleyValueSampling stack copies of the batch (``torch.cat([x] * k)``): row ``i`` is
      example ``i % B`` (``"tiled"``);
    * :func:`captum.metrics.infidelity` repeats each example in place
      (``x.repeat_interleave(k, 0)``): row ``i`` is example ``i // k`` (``"interleaved"``);
    * KernelShap and Lime explain a batch **one example at a time**: every row of a call belongs to
      one clip, which neither layout expresses;
    * :class:`captum.attr.NoiseTunnel` and :func:`captum.metrics.sensitivity_max` repeat-interleave
      the inputs and then run the wrapped method, which expands them again: interleaved, then that
      method's layout (``"interleaved"`` only around a method that calls the model once on its
      inputs, such as Saliency).

    Every one of them expands ``additional_forward_args`` exactly as it expands the inputs (IG,
    FeatureAblation and ShapleyValueSampling tile them, NoiseTunnel and the metrics
    repeat-interleave them, KernelShap and Lime slice them per example first). So pass
    ``additional_forward_args=wrapped.example_index()`` (alongside the model's own arguments, in
    any position: ``(extra, wrapped.example_index())``); the wrapper then reads each row's clip from
    it and passes the remaining arguments on to the model. That is right for every method and
    composition above, and it is required by default: with ``B > 1`` and no index a call raises a
    ``ValueError`` rather than guess. With ``B = 1`` every row is the clip and no index is needed.

    **What the model returns.** Captum's methods need a tensor of scores. The wrapper returns the
    scores inside the model's output exactly as :class:`FreqReX` finds them: a tensor as is, the
    ``.logits`` of a Hugging Face ``ModelOutput``, a dict's ``"logits"``, a tuple's first element,
    or what ``output=`` selects (see :func:`~captum_freqrex._core.model.outputs.select_output`). The
    selection keeps the autograd graph, so IntegratedGradients works through it.

    Args:
        forward_func (Callable): The model, ``forward_func(*waveforms, *additional_args)``; the
                    example index is removed from the additional arguments before the call.
        inputs (Tensor or tuple of Tensor): The waveforms ``(B, T)`` or ``(B, C, T)`` to explain.
        baselines (scalar, Tensor or tuple, optional): Waveform whose spectrum replaces removed
                    bins, as in :meth:`FreqReX.attribute`. Default: None (zeros)
        domain (SpectralDomain, optional): The transform. Default: rfft
        per_channel (bool, optional): Per-channel coefficients for ``(B, C, T)`` inputs.
                    Default: False
        rows (str, optional): How a call's rows map to the ``B`` clips when it carries no example
                    index. ``"index"``: a call with ``B > 1`` must carry
                    :meth:`example_index` and raises otherwise. ``"tiled"``: row ``i`` is example
                    ``i % B`` (right for IntegratedGradients, FeatureAblation and
                    ShapleyValueSampling called directly). ``"interleaved"``: row ``i`` is example
                    ``i // (N / B)`` (right for :func:`captum.metrics.infidelity`). Neither is
                    right for KernelShap, Lime, or NoiseTunnel and ``sensitivity_max`` around
                    IntegratedGradients, FeatureAblation or ShapleyValueSampling. An example
                    index, when a call carries one, always decides. With ``B = 1`` all three are
                    the same. Default: ``"index"``
        output (None, str, int or Callable, optional): Where the scores are in what the model
                    returns, as for :class:`FreqReX`: a key or attribute name (``"logits"``), a
                    tuple index (``0``), or a function of the whole output. Default: None (a
                    tensor as is; ``.logits``, a dict's ``"logits"``, a tuple's first element)
        synthesis (str, optional): ``"auto"`` or ``"reference"``, as for :class:`FeatureSpace`:
                    the waveforms come from ``keep * (X - Xb) + Xb`` or from the formula as
                    written, ``keep * X + (1 - keep) * Xb``; equal up to float rounding.
                    Default: ``"auto"``
    """

    def __init__(
        self,
        forward_func: Callable,
        inputs: TensorOrTuple,
        baselines: Any = None,
        domain: Optional[SpectralDomain] = None,
        per_channel: bool = False,
        rows: str = "index",
        *,
        output: OutputSelector = None,
        synthesis: str = "auto",
    ) -> None:
        super().__init__()
        if rows not in ROWS:
            raise ValueError(f"rows must be 'index', 'tiled' or 'interleaved', got {rows!r}")
        self.rows = rows
        self.output = check_output_selector(output)
        waves, self._is_tuple = format_waveforms(inputs)
        self.forward_func = forward_func
        self.space = FeatureSpace(
            waves, format_baselines(baselines, waves), None, domain, per_channel, synthesis=synthesis
        )
        self.batch_size = self.space.batch_size
        self.calls = 0
        self.queries = 0

    def _grid_like(self, fill: float) -> Union[Tensor, Tuple[Tensor, ...]]:
        dtype = self.space.dtype
        grids = tuple(
            torch.full((self.batch_size,) + grid, fill, dtype=dtype, device=self.space.device)
            for grid in self.space.feature_grids
        )
        return grids if self._is_tuple else grids[0]

    def ones(self) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""Coefficients that keep every bin: ``(B, *feature_grid)``; the input to attribute."""
        return self._grid_like(1.0)

    def zeros(self) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""Coefficients that remove every bin: ``(B, *feature_grid)``; the Captum baseline."""
        return self._grid_like(0.0)

    def example_index(self) -> ExampleIndex:
        r"""The clip of each row of :meth:`ones`: ``(B,)`` long, the indices 0 to B - 1.

        Pass it as ``additional_forward_args`` (alone, or inside a tuple with the model's own
        arguments); Captum expands it with the inputs, so every call tells the wrapper which clip
        each of its rows belongs to. See the class docstring.
        """
        index = torch.arange(self.batch_size, device=self.space.device)
        return index.as_subclass(ExampleIndex)

    def _examples(self, n_rows: int, examples: Optional[Tensor]) -> Tensor:
        r"""The ``(N,)`` clip of every row: from the example index if given, else from ``rows``."""
        batch = self.batch_size
        if examples is not None:
            examples = examples.as_subclass(Tensor)
            if examples.dim() == 0:
                # Lime and KernelShap iterate a bare (non-tuple) argument: one example's index,
                # unexpanded, for calls whose rows are all that example's.
                examples = examples.expand(n_rows)
            if examples.dim() != 1 or examples.shape[0] != n_rows or examples.is_floating_point():
                raise ValueError(
                    f"the example index must be an integer tensor of shape ({n_rows},), one entry per "
                    f"row of coefficients, got {examples.dtype} of shape {tuple(examples.shape)}; pass "
                    "wrapped.example_index() as additional_forward_args so that Captum expands it "
                    "together with the inputs"
                )
            examples = examples.to(device=self.space.device, dtype=torch.long)
            if n_rows and (int(examples.min()) < 0 or int(examples.max()) >= batch):
                raise ValueError(f"the example index must lie in [0, {batch}) for a wrapper of {batch} examples")
            return examples
        index = torch.arange(n_rows, device=self.space.device)
        if batch == 1:
            return torch.zeros_like(index)
        if self.rows == "index":
            raise ValueError(
                f"this FrequencyForward holds {batch} clips and got {n_rows} rows of coefficients "
                "without an example index, so it cannot tell which clip each row belongs to: Captum's "
                "methods lay rows out differently (KernelShap and Lime go one example at a time). "
                "Pass additional_forward_args=wrapped.example_index() to the Captum method (next to "
                "the model's own arguments: additional_forward_args=(extra, wrapped.example_index())), "
                "or wrap one clip at a time; wrapped.waveforms(coefficients, examples=...) takes it "
                "directly"
            )
        if n_rows % batch:
            raise ValueError(
                f"got {n_rows} rows of coefficients for a wrapper of {batch} examples and "
                f"rows={self.rows!r}; rows must be a multiple of the batch (KernelShap and Lime "
                "evaluate one example at a time: pass additional_forward_args=wrapped.example_index())"
            )
        if self.rows == "tiled":
            return index % batch
        return index // (n_rows // batch)

    def waveforms(self, coefficients: TensorOrTuple, examples: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        r"""Resynthesise waveforms from coefficients ``(N, *feature_grid)``.

        Args:
            coefficients (Tensor or tuple of Tensor): Keep coefficients, ``(N, *feature_grid)`` per
                        input.
            examples (Tensor, optional): ``(N,)`` the clip of each row, e.g.
                        :meth:`example_index` expanded as the coefficients were. Default: None
                        (one clip, or the layout of ``rows``; see the class docstring)

        Returns:
            tuple of Tensor: Per input, ``(N, *example_shape)`` waveforms.
        """
        grids = as_tuple(coefficients)
        for grid, expected in zip(grids, self.space.feature_grids):
            if tuple(grid.shape[1:]) != expected:
                raise ValueError(
                    f"coefficients of shape {tuple(grid.shape)} do not match the feature grid "
                    f"(N, {', '.join(map(str, expected))}); start from wrapper.ones()"
                )
        return self.space.grid_mutants(self._examples(grids[0].shape[0], examples), grids)

    def forward(self, *args: Any) -> Tensor:
        r"""The model's scores on the waveforms the coefficients describe.

        Args:
            *args: The coefficients (one tensor per input), then ``additional_forward_args``; an
                        :class:`ExampleIndex` among them says which clip each row belongs to and
                        is not passed to the model.

        Returns:
            Tensor: The scores picked from the model's output by ``output`` (see the class
            docstring), with their autograd graph.

        Raises:
            TypeError: The output holds no tensor of scores where ``output`` looks (the message
                        names what the model returned).
        """
        n_inputs = len(self.space.feature_grids)
        extra: List[Any] = []
        indices: List[Tensor] = []
        for arg in args[n_inputs:]:
            (indices if isinstance(arg, ExampleIndex) else extra).append(arg)
        if len(indices) > 1:
            raise ValueError(
                f"got {len(indices)} example indices in additional_forward_args; pass "
                "wrapped.example_index() once"
            )
        waves = self.waveforms(args[:n_inputs] if n_inputs > 1 else args[0], indices[0] if indices else None)
        self.calls += 1
        self.queries += waves[0].shape[0]
        outputs = self.forward_func(*waves, *extra)
        try:
            scores = select_output(outputs, self.output)
        except TypeError as error:  # the shared message names FreqReX's output=; this one is ours
            raise TypeError(f"{error} (here: FrequencyForward(model, inputs, output=...))") from error
        if not isinstance(scores, Tensor):
            raise TypeError(
                f"FrequencyForward needs the model's scores as a tensor for Captum, got "
                f"{type(scores).__name__} (output={self.output!r}); pass output= naming the tensor of "
                "scores, e.g. output=\"logits\", output=0 or output=lambda out: out[\"scores\"]"
            )
        return scores
