"""Feature masks that group frequency bins into bands (Captum ``feature_mask`` semantics).

Each helper returns an integer tensor with one id per frequency bin, ids ``0 .. n_bands - 1``
increasing with frequency, ready to pass as ``feature_mask`` to :class:`~captum_freqrex.FreqReX`,
:class:`~captum_freqrex.FrequencyForward`-based Captum methods and the metrics. For an
:class:`~captum_freqrex.StftDomain` the mask has shape ``(freq, 1)`` and groups every frame alike.

All three take the same arguments in the same order, ``(num_samples, n_bands, *, sample_rate,
...)``. The sample rate is keyword-only because it and ``n_bands`` are both plain numbers: passed
by position, one is silently read as the other (``log_bands(T, 64, 16000)`` used to build 3,001
bands).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, ParamSpec, TypeVar

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import RfftDomain, SpectralDomain, StftDomain, check_domain

__all__ = ["linear_bands", "log_bands", "mel_bands"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _two_positional(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Replace Python's "takes 2 positional arguments" by the call to write instead.

    ``log_bands`` and ``mel_bands`` used to take ``(num_samples, sample_rate, n_bands)``: such a call
    must fail loudly rather than be read in either order.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if len(args) > 2:
            name = func.__name__
            raise TypeError(
                f"{name}() takes (num_samples, n_bands, *, sample_rate=...): the sample rate is "
                f"keyword-only, got {len(args)} positional arguments {tuple(args)}; write e.g. "
                f"{name}(num_samples, n_bands, sample_rate=16000) (log_bands and mel_bands used to "
                "take (num_samples, sample_rate, n_bands))"
            )
        return func(*args, **kwargs)

    return wrapper


def _bin_frequencies(num_samples: int, sample_rate: float, domain: Optional[SpectralDomain]) -> Tensor:
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return (check_domain(domain) or RfftDomain()).bin_frequencies(num_samples, sample_rate).double()


def _mask_from_edges(freqs: Tensor, edges: Tensor, domain: Optional[SpectralDomain]) -> Tensor:
    raw = torch.bucketize(freqs, edges[1:-1].double(), right=True)
    # Bands narrower than one bin hold no bin: relabel so ids are consecutive.
    ids = torch.unique(raw, return_inverse=True)[1]
    return ids.unsqueeze(-1) if isinstance(domain, StftDomain) else ids


def _check_bands(n_bands: int) -> None:
    if n_bands < 1:
        raise ValueError(f"n_bands must be at least 1, got {n_bands}")


@_two_positional
def linear_bands(
    num_samples: int,
    n_bands: int,
    *,
    sample_rate: float = 1.0,
    domain: Optional[SpectralDomain] = None,
) -> Tensor:
    r"""Group frequency bins into ``n_bands`` bands of equal width in Hz.

    Args:
        num_samples (int): Clip length in samples (the waveform's last dimension).
        n_bands (int): Number of bands. Bands narrower than a bin are merged away, so the mask
                    may hold fewer ids when ``n_bands`` exceeds the number of bins.
        sample_rate (float, optional): Sample rate in Hz, keyword-only; only scales the edges.
                    Default: 1.0
        domain (SpectralDomain, optional): The domain whose bins are grouped. Default: rfft

    Returns:
        Tensor: ``(freq,)`` long tensor of band ids (``(freq, 1)`` for an STFT domain).
    """
    _check_bands(n_bands)
    freqs = _bin_frequencies(num_samples, sample_rate, domain)
    edges = torch.linspace(0.0, sample_rate / 2, n_bands + 1, dtype=torch.float64)
    return _mask_from_edges(freqs, edges, domain)


@_two_positional
def log_bands(
    num_samples: int,
    n_bands: int,
    *,
    sample_rate: float,
    f_min: float = 20.0,
    domain: Optional[SpectralDomain] = None,
) -> Tensor:
    r"""Group frequency bins into ``n_bands`` bands of equal width in log-frequency (octave-like).

    Bins below ``f_min`` (including DC) join the first band.

    Args:
        num_samples (int): Clip length in samples (the waveform's last dimension).
        n_bands (int): Number of bands. Bands narrower than a bin are merged away, so the mask
                    may hold fewer ids.
        sample_rate (float): Sample rate in Hz, keyword-only.
        f_min (float, optional): Lower edge in Hz of the logarithmic scale. Default: 20.0
        domain (SpectralDomain, optional): The domain whose bins are grouped. Default: rfft

    Returns:
        Tensor: ``(freq,)`` long tensor of band ids (``(freq, 1)`` for an STFT domain).
    """
    _check_bands(n_bands)
    if not 0 < f_min < sample_rate / 2:
        raise ValueError(f"f_min must be in (0, {sample_rate / 2}) Hz, got {f_min}")
    freqs = _bin_frequencies(num_samples, sample_rate, domain)
    edges = torch.logspace(
        math.log10(f_min), math.log10(sample_rate / 2), n_bands + 1, dtype=torch.float64
    )
    edges[0] = 0.0
    return _mask_from_edges(freqs, edges, domain)


def _hz_to_mel(hz: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@_two_positional
def mel_bands(
    num_samples: int,
    n_bands: int,
    *,
    sample_rate: float,
    f_min: float = 0.0,
    f_max: Optional[float] = None,
    domain: Optional[SpectralDomain] = None,
) -> Tensor:
    r"""Group frequency bins into ``n_bands`` bands of equal width on the mel scale (HTK formula).

    Bins outside ``[f_min, f_max]`` join the first or last band.

    Args:
        num_samples (int): Clip length in samples (the waveform's last dimension).
        n_bands (int): Number of bands. Bands narrower than a bin are merged away, so the mask
                    may hold fewer ids.
        sample_rate (float): Sample rate in Hz, keyword-only.
        f_min (float, optional): Lower edge in Hz. Default: 0.0
        f_max (float, optional): Upper edge in Hz. Default: ``sample_rate / 2``
        domain (SpectralDomain, optional): The domain whose bins are grouped. Default: rfft

    Returns:
        Tensor: ``(freq,)`` long tensor of band ids (``(freq, 1)`` for an STFT domain).
    """
    _check_bands(n_bands)
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2} Hz, got {f_min}, {f_max}")
    freqs = _bin_frequencies(num_samples, sample_rate, domain)
    mels = torch.linspace(
        float(_hz_to_mel(torch.tensor(f_min))),
        float(_hz_to_mel(torch.tensor(f_max))),
        n_bands + 1,
        dtype=torch.float64,
    )
    return _mask_from_edges(freqs, _mel_to_hz(mels), domain)
