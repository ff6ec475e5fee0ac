"""Inverse real FFTs of spectra that hold only a few bins, as one small matrix product.

Factor the length as ``T = M * K`` and write a sample index as ``n = q * K + r``. Then the inverse
real FFT of bins ``k`` with coefficients ``X_k`` is

    x[q K + r] = sum_k w_k * Re(X_k * exp(2 pi i k r / T) * exp(2 pi i k q / M))

(``w_k = 2 / T``, or ``1 / T`` for the DC and Nyquist bins), i.e. the real product of an
``(M, 2L)`` matrix that depends on the bins only and a ``(2L, K)`` matrix that carries the
coefficients, for ``L`` bins. It costs about ``4 L T`` flops and one pass over the output. A whole
inverse FFT of a long clip is memory-bound instead (on 2 CPU cores, 1.5 ms for 480,000 samples and
126 ms for 9,600,000), so for the narrow parts of a refinement (a few bins) and for mutants that
keep or remove a few bins, the product is several times cheaper.

It is one of the speed-ups of ``FeatureSpace(synthesis="auto")`` (the default); with
``synthesis="reference"`` every mutant goes through the inverse FFT.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

#: Clips shorter than this use inverse FFTs only: there the transform is already cheap.
MIN_LENGTH = 2**18


@functools.lru_cache(maxsize=32)
def _factor(length: int) -> Tuple[int, int]:
    """``(M, K)`` with ``M * K == length`` and ``M <= K`` as close as possible."""
    rows = max(m for m in range(1, math.isqrt(length) + 1) if length % m == 0)
    return rows, length // rows


def few_bin_limit(length: int, device: torch.device) -> int:
    r"""Most bins for which :func:`few_bin_irfft` beats an inverse FFT of ``length`` samples.

    Measured on 2 CPU cores (torch 2.13, MKL; the product's time against the inverse FFT's time
    per row in batched calls): the break-even is about 24 bins at 480,000 samples, 64 at 960,000
    and 256 at 9,600,000, because the FFT of long rows is bound by memory traffic. The limit is
    half the break-even, as a power of two: ``2 ** (floor(log2 T) - 14)``, at most 256; 0 (never)
    below :data:`MIN_LENGTH` samples, on other devices than the CPU (where FFTs are cheap), and for
    lengths without a factor pair of at least 64 each (the product would degenerate).

    Args:
        length (int): Waveform length in samples.
        device (torch.device): Where the waveforms live.

    Returns:
        int: The bin count limit; 0 when the inverse FFT is always used.
    """
    if device.type != "cpu" or length < MIN_LENGTH or _factor(length)[0] < 64:
        return 0
    return min(128, 2 ** (int(math.log2(length)) - 14))


def few_bin_irfft(bins: Tensor, coefficients: Tensor, length: int, out: Optional[Tensor] = None) -> Tensor:
    r"""``irfft`` of spectra that are zero except at ``bins``, as a matrix product.

    Equal to ``torch.fft.irfft(X, n=length)`` with ``X[..., bins] = coefficients`` and zeros
    elsewhere, up to float rounding; like ``irfft``, the imaginary parts of the DC and Nyquist
    bins are ignored.

    Args:
        bins (Tensor): ``(L,)`` distinct rfft bin indices in ``[0, length // 2]``.
        coefficients (Tensor): ``(C, L)`` complex coefficients of those bins, per channel.
        length (int): Output length ``T`` in samples.
        out (Tensor, optional): ``(C, T)`` real tensor to write the waveforms into.

    Returns:
        Tensor: ``(C, T)`` real waveforms, of the coefficients' real dtype.
    """
    dtype = coefficients.real.dtype
    rows, cols = _factor(length)
    bins = bins.to(coefficients.device)
    weights = torch.full(bins.shape, 2.0 / length, dtype=dtype, device=bins.device)
    edges = (bins == 0) | (bins * 2 == length)
    weights[edges] = 1.0 / length
    # Phases reduced exactly in integers, so float rounding does not grow with k * n.
    along_q = _phases(bins, rows, rows, dtype)  # (L, M)
    left = torch.cat([torch.cos(along_q), -torch.sin(along_q)]).T  # (M, 2L)
    along_r = _phases(bins, cols, length, dtype)  # (L, K)
    cos_r, sin_r = torch.cos(along_r), torch.sin(along_r)
    weighted = coefficients * weights
    re, im = weighted.real.unsqueeze(-1), weighted.imag.unsqueeze(-1)  # (C, L, 1)
    right = torch.cat([re * cos_r - im * sin_r, re * sin_r + im * cos_r], dim=1)  # (C, 2L, K)
    channels = coefficients.shape[0]
    if out is None:
        return torch.matmul(left, right).reshape(channels, length)
    torch.matmul(left, right, out=out.view(channels, rows, cols))
    return out


def _phases(bins: Tensor, count: int, period: int, dtype: torch.dtype) -> Tensor:
    """``2 pi (k * j mod period) / period`` for bins ``k`` and ``j < count``, ``(L, count)``."""
    steps = torch.arange(count, device=bins.device)
    turns = (bins.unsqueeze(1) * steps) % period
    return (turns.to(torch.float64) * (2 * math.pi / period)).to(dtype)
