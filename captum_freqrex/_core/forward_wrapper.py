"""The frequency mask mechanism as a plain forward function, for any Captum method.

:class:`FrequencyForward` binds a model to a batch of waveforms. Its inputs are per-bin keep
coefficients (1 keeps a bin, 0 sets it to the baseline's spectrum, values in between interpolate),
its output is the model's output on the resynthesised waveforms. IntegratedGradients, KernelShap,
Lime, FeatureAblation and ShapleyValueSampling then attribute over exactly the frequency features
FreqReX uses, with the same ``feature_mask``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_freqrex._core.domains import SpectralDomain
from captum_freqrex._core.feature_space import FeatureSpace
from captum_freqrex._utils.validation import TensorOrTuple, as_tuple, format_baselines, format_waveforms


class FrequencyForward(nn.Module):
    r"""A Captum-ready forward function over frequency features of fixed waveforms.

    Example::

        >>> wrapped = FrequencyForward(model, waveforms)
        >>> ig = IntegratedGradients(wrapped)
        >>> attr = ig.attribute(wrapped.ones(), baselines=wrapped.zeros(), target=3)
        >>> # attr: (B, T // 2 + 1), one value per rfft bin, comparable with FreqReX.attribute

    Args:
        forward_func (Callable): The model, ``forward_func(*waveforms, *additional_args)``.
        inputs (Tensor or tuple of Tensor): The waveforms ``(B, T)`` or ``(B, C, T)`` to explain.
        baselines (scalar, Tensor or tuple, optional): Waveform whose spectrum replaces removed
                    bins, as in :meth:`FreqReX.attribute`. Default: None (zeros)
        domain (SpectralDomain, optional): The transform. Default: rfft
        per_channel (bool, optional): Per-channel coefficients for ``(B, C, T)`` inputs.
                    Default: False
        rows (str, optional): How a call's ``N = k * B`` rows map to the ``B`` waveforms when
                    ``B > 1``. ``"tiled"``: copies of the batch one after another
                    (``torch.cat([x] * k)``, row ``i`` is example ``i % B``), as Captum's
                    attribution methods (IntegratedGradients, FeatureAblation, KernelShap, Lime,
                    ShapleyValueSampling) batch their evaluations. ``"interleaved"``: each
                    example repeated in place (``x.repeat_interleave(k, 0)``, row ``i`` is
                    example ``i // k``), as :class:`captum.attr.NoiseTunnel`,
                    :func:`captum.metrics.infidelity` and :func:`captum.metrics.sensitivity_max`
                    expand their inputs. With ``B = 1`` both are the same. Default: ``"tiled"``
    """

    def __init__(
        self,
        forward_func: Callable,
        inputs: TensorOrTuple,
        baselines: Any = None,
        domain: Optional[SpectralDomain] = None,
        per_channel: bool = False,
        rows: str = "tiled",
    ) -> None:
        super().__init__()
        if rows not in ("tiled", "interleaved"):
            raise ValueError(f"rows must be 'tiled' or 'interleaved', got {rows!r}")
        self.rows = rows
        waves, self._is_tuple = format_waveforms(inputs)
        self.forward_func = forward_func
        self.space = FeatureSpace(waves, format_baselines(baselines, waves), None, domain, per_channel)
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

    def waveforms(self, coefficients: TensorOrTuple) -> Tuple[Tensor, ...]:
        r"""Resynthesise waveforms from coefficients ``(N, *feature_grid)``, ``N`` a multiple of B.

        Row ``i`` belongs to example ``i % B`` (``rows="tiled"``) or ``i // (N / B)``
        (``rows="interleaved"``); see the class docstring.
        """
        grids = as_tuple(coefficients)
        rows = grids[0].shape[0]
        if rows % self.batch_size:
            raise ValueError(
                f"got {rows} rows of coefficients for a wrapper of {self.batch_size} examples; "
                "rows must be a multiple of the batch (Captum stacks copies of it)"
            )
        for grid, expected in zip(grids, self.space.feature_grids):
            if tuple(grid.shape[1:]) != expected:
                raise ValueError(
                    f"coefficients of shape {tuple(grid.shape)} do not match the feature grid "
                    f"(N, {', '.join(map(str, expected))}); start from wrapper.ones()"
                )
        index = torch.arange(rows, device=self.space.device)
        if self.rows == "tiled":
            examples = index % self.batch_size
        else:
            examples = index // (rows // self.batch_size)
        return self.space.grid_mutants(examples, grids)

    def forward(self, *args: Any) -> Any:
        n_inputs = len(self.space.feature_grids)
        waves = self.waveforms(args[:n_inputs] if n_inputs > 1 else args[0])
        self.calls += 1
        self.queries += waves[0].shape[0]
        return self.forward_func(*waves, *args[n_inputs:])
