"""Spectral domains: the invertible transforms whose coefficients are the explained features.

A domain is a pair of pure functions, ``analyze`` (waveform -> complex coefficients) and
``synthesize`` (coefficients -> waveform of a given length), plus the shape of its coefficient grid.
:class:`RfftDomain` (one coefficient per rfft bin) is the default; :class:`StftDomain` gives
time-frequency cells for time-localised explanations.
"""

from __future__ import annotations

import operator
import warnings
from abc import ABC, abstractmethod
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.spectral.few_bins import few_bin_irfft, few_bin_limit

__all__ = ["SpectralDomain", "RfftDomain", "StftDomain", "next_fast_len"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int, got {number}")
    return number


def _largest_power_of_two(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def _largest_prime_factor(n: int) -> int:
    factor, largest = 2, 1
    while factor * factor <= n:
        while n % factor == 0:
            largest, n = factor, n // factor
        factor += 1
    return max(largest, n)


def next_fast_len(length: int) -> int:
    r"""The smallest length >= ``length`` whose prime factors are all 2, 3 or 5.

    FFTs of such lengths are fast; an awkward length (e.g. 479,999) makes every rfft/irfft several
    times slower. Pad or crop clips to this length before explaining them.

    Args:
        length (int): A length in samples, at least 1.

    Returns:
        int: The next 2/3/5-smooth length.
    """
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    candidate = length
    while _largest_prime_factor(candidate) > 5:
        candidate += 1
    return candidate


def _warn_if_slow_length(length: int) -> None:
    if length > 1024 and _largest_prime_factor(length) > 7:
        warnings.warn(
            f"waveform length {length} has a large prime factor, which makes every FFT several "
            f"times slower; crop or pad the clips to a 2/3/5-smooth length such as "
            f"{next_fast_len(length)} (captum_freqrex.next_fast_len)",
            stacklevel=4,
        )


class SpectralDomain(ABC):
    r"""An invertible transform whose complex coefficients are the features FreqReX explains.

    Subclasses implement :meth:`analyze`, :meth:`synthesize` and :meth:`grid_shape`.
    """

    #: Short name used in summaries ("rfft", "stft").
    name: str = "domain"

    @abstractmethod
    def analyze(self, waveforms: Tensor) -> Tensor:
        r"""Transform waveforms ``(..., time)`` into coefficients ``(..., *grid)`` (complex)."""

    @abstractmethod
    def synthesize(self, coefficients: Tensor, length: int) -> Tensor:
        r"""Transform coefficients ``(..., *grid)`` back into waveforms ``(..., length)``."""

    @abstractmethod
    def grid_shape(self, length: int) -> Tuple[int, ...]:
        r"""The coefficient grid of a waveform of ``length`` samples, e.g. ``(length // 2 + 1,)``."""

    @abstractmethod
    def bin_frequencies(self, length: int, sample_rate: float) -> Tensor:
        r"""Centre frequency in Hz of each row of the grid's frequency axis."""

    def synthesize_into(self, coefficients: Tensor, length: int, out: Tensor) -> Tensor:
        r""":meth:`synthesize`, written into ``out``: the same values, without a fresh waveform batch
        where the domain can write in place (the default copies).

        Args:
            coefficients (Tensor): Coefficients ``(..., *grid)``.
            length (int): Waveform length in samples.
            out (Tensor): Contiguous real tensor with the waveforms' number of elements.

        Returns:
            Tensor: ``out``.
        """
        out.copy_(self.synthesize(coefficients, length).reshape(out.shape))
        return out

    def few_coefficient_limit(self, length: int, device: torch.device) -> int:
        r"""Most nonzero coefficients for which :meth:`synthesize_few` is cheaper than
        :meth:`synthesize` (0: never; the default). :class:`FeatureSpace` asks once per input."""
        return 0

    def synthesize_few(self, bins: Tensor, coefficients: Tensor, length: int, out: Tensor) -> Tensor:
        r"""Waveforms ``(C, length)`` of coefficients that are zero except at ``bins`` of a 1-D grid,
        written into ``out``; only called below :meth:`few_coefficient_limit`."""
        raise NotImplementedError(f"{type(self).__name__} has no few-coefficient synthesis")


#: Longest waveform whose lone inverse FFT on the CPU runs as a batch of two (see
#: :func:`_first_of_pair`; a lone clip's forward FFT too). Measured at one thread: the pair costs
#: less than the lone transform up to 2.4 million samples (12 against 18 ms at 960,000, 36 against
#: 49 ms at 2,400,000) and more from 4.8 million (166 against 114 ms), where the second row's work
#: outweighs the set-up saved and its memory (a 60-minute clip's explanation queries one row at a
#: time) is not worth paying.
PAIRED_IRFFT_MAX_SAMPLES = 2**21


def check_domain(domain: object) -> Optional["SpectralDomain"]:
    r"""``domain`` itself when it is None or a :class:`SpectralDomain` instance; otherwise a
    ``TypeError`` that names the fix (a name such as ``"stft"`` or the class itself, not an instance,
    would fail much later, inside the transform)."""
    if domain is None or isinstance(domain, SpectralDomain):
        return domain
    if isinstance(domain, type) and issubclass(domain, SpectralDomain):
        raise TypeError(f"domain must be an instance, got the class {domain.__name__}: pass {domain.__name__}()")
    raise TypeError(
        f"domain must be a SpectralDomain instance such as RfftDomain() (the default, None) or "
        f"StftDomain(n_fft=512), got {type(domain).__name__} {domain!r}"
    )


def _single_cpu_row(rows: Tensor, length: int) -> bool:
    # One spectrum or waveform on the CPU, of a waveform short enough for _first_of_pair to pay.
    return rows.device.type == "cpu" and rows.dim() >= 1 and rows[..., 0].numel() == 1 and length <= PAIRED_IRFFT_MAX_SAMPLES


def _first_of_pair(transform: Callable[[Tensor], Tensor], row: Tensor) -> Tensor:
    # ``transform`` of one row, computed as the first row of a batch of two (1-D, a view of the
    # pair's result). On the CPU (MKL) a single transform takes another path than a batch: 2-4
    # times slower (9.1 ms against 4.1 ms for two rows of an inverse FFT at 480,000 samples, one
    # thread) and rounded differently, while every batch of 2 to 13 rows gives each row the same
    # bits. So a spectrum or a mutant's waveform does not depend on whether its clip was explained,
    # or the mutant synthesised, alone or with others.
    return transform(row.reshape(1, -1).expand(2, -1))[0]


def _batched_irfft(coefficients: Tensor, length: int) -> Tensor:
    # The inverse FFT of one spectrum, as the first row of a pair.
    return _first_of_pair(lambda pair: torch.fft.irfft(pair, n=length), coefficients).reshape(
        coefficients.shape[:-1] + (length,)
    )


class RfftDomain(SpectralDomain):
    r"""One feature per real-FFT bin: ``X = rfft(x)``, ``F = T // 2 + 1`` bins, ``x = irfft(X, n=T)``.

    Bin ``k`` of a clip of ``T`` samples at ``sample_rate`` Hz sits at ``k * sample_rate / T`` Hz.
    """

    name = "rfft"

    def analyze(self, waveforms: Tensor) -> Tensor:
        _warn_if_slow_length(waveforms.shape[-1])
        if _single_cpu_row(waveforms, waveforms.shape[-1]):
            # A copy of the pair's first row: the spectrum keeps no second row's memory.
            spectrum = _first_of_pair(torch.fft.rfft, waveforms).clone()
            return spectrum.reshape(waveforms.shape[:-1] + spectrum.shape)
        return torch.fft.rfft(waveforms)

    def synthesize(self, coefficients: Tensor, length: int) -> Tensor:
        if _single_cpu_row(coefficients, length):
            return _batched_irfft(coefficients, length)
        return torch.fft.irfft(coefficients, n=length)

    def synthesize_into(self, coefficients: Tensor, length: int, out: Tensor) -> Tensor:
        if type(self).synthesize is not RfftDomain.synthesize:  # a subclass's own synthesis
            return super().synthesize_into(coefficients, length, out)
        if _single_cpu_row(coefficients, length):
            out.copy_(_batched_irfft(coefficients, length).reshape(out.shape))
            return out
        torch.fft.irfft(coefficients, n=length, out=out.view(coefficients.shape[:-1] + (length,)))
        return out

    def few_coefficient_limit(self, length: int, device: torch.device) -> int:
        # A subclass with its own synthesize must not be bypassed by the matrix product.
        return few_bin_limit(length, device) if type(self).synthesize is RfftDomain.synthesize else 0

    def synthesize_few(self, bins: Tensor, coefficients: Tensor, length: int, out: Tensor) -> Tensor:
        return few_bin_irfft(bins, coefficients, length, out=out)

    def grid_shape(self, length: int) -> Tuple[int, ...]:
        return (length // 2 + 1,)

    def bin_frequencies(self, length: int, sample_rate: float) -> Tensor:
        return torch.fft.rfftfreq(length, d=1.0 / sample_rate)

    def __repr__(self) -> str:
        return "RfftDomain()"


class StftDomain(SpectralDomain):
    r"""Time-frequency cells as features: ``S = stft(x)`` of shape ``(freq, frames)``, back via istft.

    Masking an STFT cell and inverting with ``istft`` gives the least-squares signal closest to the
    masked STFT, so a removed cell is removed up to the window's overlap-add smoothing.

    Args:
        n_fft (int, optional): FFT size of each frame; ``n_fft // 2 + 1`` frequency rows.
                    Default: 512
        hop_length (int, optional): Hop between frames in samples. Default: ``n_fft // 4``
        center (bool, optional): Pad the signal so frames are centred on their time. Default: True
    """

    name = "stft"

    def __init__(self, n_fft: int = 512, hop_length: int | None = None, center: bool = True) -> None:
        n_fft = _positive_int(n_fft, "n_fft")
        if n_fft < 2:
            raise ValueError(f"n_fft must be at least 2, got {n_fft}")
        self.n_fft = n_fft
        self.hop_length = n_fft // 4 if hop_length is None else _positive_int(hop_length, "hop_length")
        if not 0 < self.hop_length < n_fft:
            # A hop of a whole window or more leaves samples no frame covers with a non-zero
            # window weight: istft cannot invert such a grid.
            raise ValueError(
                f"hop_length must be in (0, n_fft) = (0, {n_fft}), got {self.hop_length}; frames must "
                f"overlap for istft to invert the grid (the default is n_fft // 4 = {max(n_fft // 4, 1)})"
            )
        self.center = center
        self._windows: dict = {}

    def _window(self, like: Tensor) -> Tensor:
        key = (like.device, like.real.dtype if like.is_complex() else like.dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.n_fft, device=key[0], dtype=key[1])
        return self._windows[key]

    def analyze(self, waveforms: Tensor) -> Tensor:
        if waveforms.shape[-1] < self.n_fft:
            raise ValueError(
                f"waveforms of {waveforms.shape[-1]} samples are shorter than n_fft={self.n_fft}: one "
                f"STFT frame would be longer than the clip; use StftDomain(n_fft=...) with n_fft <= "
                f"{waveforms.shape[-1]} (e.g. {_largest_power_of_two(waveforms.shape[-1])})"
            )
        lead = waveforms.shape[:-1]
        flat = waveforms.reshape(-1, waveforms.shape[-1])
        spec = torch.stft(
            flat,
            self.n_fft,
            hop_length=self.hop_length,
            window=self._window(flat),
            center=self.center,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])

    def synthesize(self, coefficients: Tensor, length: int) -> Tensor:
        lead = coefficients.shape[:-2]
        flat = coefficients.reshape(-1, *coefficients.shape[-2:])
        wave = torch.istft(
            flat,
            self.n_fft,
            hop_length=self.hop_length,
            window=self._window(flat),
            center=self.center,
            length=length,
        )
        return wave.reshape(*lead, length)

    def grid_shape(self, length: int) -> Tuple[int, ...]:
        if self.center:
            frames = length // self.hop_length + 1
        else:
            frames = 1 + (length - self.n_fft) // self.hop_length
        return (self.n_fft // 2 + 1, frames)

    def bin_frequencies(self, length: int, sample_rate: float) -> Tensor:
        return torch.fft.rfftfreq(self.n_fft, d=1.0 / sample_rate)

    def frame_times(self, length: int, sample_rate: float) -> Tensor:
        r"""Centre time in seconds of each frame (column of the grid)."""
        frames = self.grid_shape(length)[1]
        offset = 0 if self.center else self.n_fft / 2
        return (torch.arange(frames) * self.hop_length + offset) / sample_rate

    def __repr__(self) -> str:
        return f"StftDomain(n_fft={self.n_fft}, hop_length={self.hop_length}, center={self.center})"


