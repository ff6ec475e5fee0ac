"""Plots of explanations (matplotlib). The core never imports this module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:
    from captum_freqrex._core.explanation import Explanation

__all__ = ["plot_responsibility", "plot_spectrograms"]

# Drawn largest first, so nested sets stay visible as rings.
SET_STYLES = {
    "complete": ("#9ecae1", "complete", 90),
    "sufficient_necessary": ("#3182bd", "sufficient & necessary", 45),
    "sufficient": ("#e6550d", "sufficient", 14),
}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from error
    return plt


def _frequency_axis(n_rows: int, sample_rate: Optional[float], n_fft: Optional[int]) -> Tensor:
    if sample_rate is None:
        return torch.arange(n_rows, dtype=torch.float64)
    length = n_fft if n_fft is not None else 2 * (n_rows - 1)
    return torch.arange(n_rows, dtype=torch.float64) * sample_rate / length


def plot_responsibility(
    explanation: "Explanation",
    sample_rate: Optional[float] = None,
    log_frequency: bool = False,
    class_names: Optional[list] = None,
) -> Any:
    r"""Responsibility per frequency, with the magnitude spectrum and the three sets marked on it.

    For rfft features: two panels (spectrum in dB with the bins of each set marked; responsibility).
    For STFT cells: the responsibility grid as an image (frequency by time).

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        sample_rate (float, optional): Sample rate in Hz for a frequency axis in Hz; bins otherwise.
        log_frequency (bool, optional): Logarithmic frequency axis (``symlog``, so 0 Hz stays on
                    it): the x axis for rfft features, the y axis for STFT cells. Default: False
        class_names (list of str, optional): Names for the title's classes.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = _pyplot()
    resp = explanation.responsibility
    if isinstance(resp, tuple):
        raise ValueError("plot_responsibility draws single-tensor explanations; plot each input's grid yourself")
    resp = resp.detach().cpu()
    if resp.dim() == 2 and resp.shape[0] > 8:  # a (freq, frames) STFT grid
        return _plot_stft(explanation, resp, sample_rate, log_frequency)
    resp = resp.reshape(-1, resp.shape[-1]).sum(0)  # per-channel grids: total over channels
    freqs = _frequency_axis(resp.shape[-1], sample_rate, None)
    original = explanation.original_waveform()
    original = original if original.dim() == 1 else original.mean(0)
    spectrum_db = 20 * torch.log10(torch.fft.rfft(original.detach().cpu().double()).abs() + 1e-9)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    top.plot(freqs, spectrum_db, color="0.6", linewidth=0.5, label="original spectrum")
    ids = explanation._space.ids()[0].reshape(-1, resp.shape[-1])[0].cpu()
    for name, (color, label, size) in SET_STYLES.items():
        chosen = explanation.sets[name]
        if chosen is None:
            continue
        bins = chosen.mask.cpu()[ids].nonzero().squeeze(1)
        top.scatter(freqs[bins], spectrum_db[bins], s=size, color=color, label=f"{label} ({chosen.size})", zorder=3)
    top.set_ylabel("magnitude (dB)")
    top.legend(loc="upper right", fontsize=8)
    names = class_names or {}
    target = names[explanation.target] if class_names else explanation.target
    top.set_title(f"FreqReX: decision {target!s} (confidence {explanation.original.confidence:.2f})")
    bottom.plot(freqs, resp, color="#31a354", linewidth=0.8)
    bottom.fill_between(freqs.numpy(), resp.numpy(), color="#31a354", alpha=0.3)
    bottom.set_ylabel("responsibility")
    bottom.set_xlabel("frequency (Hz)" if sample_rate else "rfft bin")
    if log_frequency:
        bottom.set_xscale("symlog")
    fig.tight_layout()
    return fig


def _plot_stft(explanation: "Explanation", grid: Tensor, sample_rate: Optional[float], log_frequency: bool) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    domain = explanation._space.domain
    n_fft = getattr(domain, "n_fft", 2 * (grid.shape[0] - 1))
    hop = getattr(domain, "hop_length", 1)
    freqs = _frequency_axis(grid.shape[0], sample_rate, n_fft)
    frames = torch.arange(grid.shape[1], dtype=torch.float64) * hop
    times = frames / sample_rate if sample_rate else frames / hop
    # A mesh, not an image: it stays right on a logarithmic frequency axis.
    mesh = ax.pcolormesh(times.numpy(), freqs.numpy(), grid.numpy(), shading="nearest", cmap="magma")
    fig.colorbar(mesh, ax=ax, label="responsibility")
    if log_frequency:
        ax.set_yscale("symlog")
    ax.set_xlabel("time (s)" if sample_rate else "frame")
    ax.set_ylabel("frequency (Hz)" if sample_rate else "STFT bin")
    ax.set_title("FreqReX responsibility over time-frequency cells")
    fig.tight_layout()
    return fig


def plot_spectrograms(signals: Dict[str, Tensor], sample_rate: float, n_fft: int = 1024) -> Any:
    r"""Log-magnitude spectrograms of named waveforms, one panel each, on a shared colour scale.

    Args:
        signals (dict): Name -> ``(time,)`` waveform (e.g. original, sufficient, removed).
        sample_rate (float): Sample rate in Hz.
        n_fft (int, optional): FFT size. Default: 1024

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.2 * len(signals)), sharex=True, squeeze=False)
    window = torch.hann_window(n_fft)
    images = []
    for (name, wave), ax in zip(signals.items(), axes[:, 0]):
        wave = wave.detach().cpu().float()
        wave = wave if wave.dim() == 1 else wave.mean(0)
        spec = torch.stft(wave, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        db = 20 * torch.log10(spec + 1e-6)
        seconds = wave.shape[0] / sample_rate
        images.append(ax.imshow(db.numpy(), origin="lower", aspect="auto", extent=(0, seconds, 0, sample_rate / 2), cmap="magma"))
        ax.set_ylabel("Hz")
        ax.set_title(name, fontsize=9)
    top = max(float(im.get_array().max()) for im in images)
    for im in images:
        im.set_clim(top - 90, top)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig
