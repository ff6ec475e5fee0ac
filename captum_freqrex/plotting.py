"""Plots of explanations (matplotlib). The core never imports this module.

Plots read explanations through their public attributes only (``responsibility``, ``sets``,
``layout``, ``waveform()``, ...); ``Explanation.plot`` and ``plot_spectrograms`` call these
functions through the registry the package's ``__init__`` fills.

Frequency axes are logarithmic by default (``symlog``: linear from 0 Hz to 20 Hz, logarithmic above),
because the frequencies a classifier relies on often sit in the lowest octaves, which a linear
0 Hz - Nyquist axis squeezes into a few pixels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._explanation.text import count_of
from captum_freqrex.audio import single_waveform

if TYPE_CHECKING:
    from captum_freqrex._explanation import Explanation

__all__ = ["plot_responsibility", "plot_spectrograms", "plot_explanation_spectrograms"]

# Drawn largest first, so nested sets stay visible as rings; the quiet sufficient set (where a
# near-silent one gave way to a loud one, Explanation.quiet_sufficient) last, apart from them.
SET_STYLES = {
    "complete": ("#9ecae1", "complete", 90),
    "sufficient_necessary": ("#3182bd", "sufficient & necessary", 45),
    "sufficient": ("#e6550d", "sufficient", 14),
    "quiet_sufficient": ("#756bb1", "quiet sufficient", 10),
}

#: Column labels of the membership strip beside a spectrogram.
STRIP_LABELS = {"sufficient": "S", "sufficient_necessary": "SN", "complete": "C", "quiet_sufficient": "Q"}

#: Sets of at most this many frequencies are drawn as markers (and lines over spectrograms);
#: larger ones as coloured stretches of the spectrum and as a strip beside the spectrogram.
MARK_LIMIT = 200

#: Where a logarithmic frequency axis turns linear (so that 0 Hz stays on it), in Hz.
LINEAR_BELOW_HZ = 20.0


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError that names the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib, from the audio extra: pip install 'captum_freqrex[audio]'"
        ) from error
    return plt


def _class_label(class_names: Optional[Sequence[str]], index: Optional[int]) -> str:
    if index is None:
        return "none"
    if class_names and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def _format_hz(value: float) -> str:
    if value >= 1000:
        text = f"{value / 1000:g}k"
    else:
        text = f"{value:g}"
    return text


def _log_frequency_axis(ax: Any, axis: str, top: float, sample_rate: Optional[float], spacing: float) -> None:
    """A symlog frequency axis from 0 to ``top`` with 1-2-5 ticks (Hz, or bins without a rate)."""
    linthresh = max(LINEAR_BELOW_HZ, 2.0 * spacing) if sample_rate else max(10.0, 2.0 * spacing)
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("symlog", linthresh=linthresh, linscale=0.25)
    ticks = [0.0] + [
        m * 10.0**e for e in range(0, 7) for m in (1, 2, 5) if linthresh <= m * 10.0**e <= top
    ]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_ticks(ticks, labels=[_format_hz(t) for t in ticks])
    target.set_minor_locator(_null_locator())
    (ax.set_xlim if axis == "x" else ax.set_ylim)(0.0, top)


def _db(value: float) -> str:
    """A level in whole dB with its sign, never ``-0``."""
    rounded = round(value)
    return f"{rounded:+d}" if rounded != 0 else "0"


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _drawn_sets(explanation: "Explanation") -> Dict[str, Any]:
    """The sets the figures draw, by name, smallest kind first: the three sets found, then the
    quiet sufficient set where there is one."""
    named = explanation.named_sets
    return {name: named[name] for name in STRIP_LABELS if name in named}


def _in_set_rows(explanation: "Explanation", name: str) -> Optional[Tensor]:
    """``(freq,)`` bool: the frequency rows of input 0 that the set touches (any channel or frame)."""
    chosen = explanation.named_sets.get(name)
    if chosen is None:
        return None
    layout = explanation.layout
    ids = layout.ids[0]
    _, freq_axis, _ = layout.axes(0)
    in_set = chosen.mask.detach().cpu().bool()[ids]
    return in_set.movedim(freq_axis, 0).reshape(ids.shape[freq_axis], -1).any(1)


def _distinct_sets(explanation: "Explanation") -> List[Tuple[List[str], Any]]:
    """The sets found, with sets of identical masks merged: ``[(names, set), ...]`` smallest first."""
    groups: List[Tuple[List[str], Any]] = []
    for name, chosen in _drawn_sets(explanation).items():
        for names, other in groups:
            if torch.equal(other.mask.cpu(), chosen.mask.cpu()):
                names.append(name)
                break
        else:
            groups.append(([name], chosen))
    return groups


def _title(explanation: "Explanation", class_names: Optional[Sequence[str]]) -> str:
    target = _class_label(class_names, explanation.target)
    text = f"FreqReX: decision {target} (confidence {explanation.original.confidence:.2f})"
    if explanation.flip_class is not None:
        text += f"; removing the sufficient & necessary set flips it to {_class_label(class_names, explanation.flip_class)}"
    return text


def _single_tensor(explanation: "Explanation", what: str) -> Tensor:
    resp = explanation.responsibility
    if isinstance(resp, tuple):
        raise ValueError(f"{what} draws single-tensor explanations; plot each input's grid yourself")
    return resp.detach().cpu().double()


def _mono(wave: Tensor) -> Tensor:
    wave = wave.detach().cpu().double()
    return wave if wave.dim() == 1 else wave.mean(0)


def plot_responsibility(
    explanation: "Explanation",
    sample_rate: Optional[float] = None,
    log_frequency: bool = True,
    class_names: Optional[Sequence[str]] = None,
) -> Any:
    r"""Responsibility per frequency, with the magnitude spectrum and the sets marked on it.

    For rfft features: two panels (the clip's spectrum in dB with each set's bins marked, the
    three sets and, where a near-silent sufficient set gave way to a loud one, the quiet one; the
    responsibility, one line per channel for per-channel features). A set of at most
    :data:`MARK_LIMIT` bins is drawn as markers, a larger one as the stretches of the spectrum
    it holds, in its colour. For STFT cells: the clip's spectrogram (grey) with the responsibility
    of each cell drawn over it in colour and the sufficient set's cells outlined.

    An explanation loaded without its inputs (see :meth:`Explanation.load`) has no spectrum to
    draw: the figure shows the responsibility with the sets marked on it.

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        sample_rate (float, optional): Sample rate in Hz for a frequency axis in Hz; bins otherwise.
                    Default: the explanation's ``sample_rate``
        log_frequency (bool, optional): Logarithmic frequency axis (``symlog``: linear up to
                    20 Hz, so 0 Hz stays on it): the x axis for rfft features, the y axis for STFT
                    cells. Default: True
        class_names (list of str, optional): Names for the title's classes.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = pyplot()
    resp = _single_tensor(explanation, "plot_responsibility")
    sample_rate = explanation.sample_rate if sample_rate is None else sample_rate
    layout = explanation.layout
    channel_axis, freq_axis, frame_axis = layout.axes(0)
    if frame_axis is not None:
        return _plot_stft(explanation, resp, sample_rate, log_frequency, class_names)
    per_channel = resp.reshape(-1, resp.shape[-1])  # (channels or 1, freq)
    hz = layout.bin_hz(0, sample_rate)
    freqs = hz if hz is not None else torch.arange(resp.shape[-1], dtype=torch.float64)
    spacing = float(freqs[1] - freqs[0]) if freqs.numel() > 1 else 1.0
    thin = _Thinning(freqs, log_frequency, spacing)
    if explanation.has_waveforms:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
        spectrum_db = 20 * torch.log10(torch.fft.rfft(_mono(single_waveform(explanation.original_waveform()))).abs() + 1e-9)
        thin.line(top, spectrum_db, color="0.6", linewidth=0.5, label="original spectrum")
        top.set_ylabel("magnitude (dB)")
        marked_on, values = top, spectrum_db
    else:
        fig, bottom = plt.subplots(1, 1, figsize=(10, 3.5))
        top, marked_on, values = bottom, bottom, per_channel.sum(0)
    drawn = _drawn_sets(explanation)
    for name, (color, label, size) in SET_STYLES.items():
        rows = _in_set_rows(explanation, name)
        chosen = drawn.get(name)
        if rows is None or chosen is None:  # rows is None exactly when the set is
            continue
        text = f"{label} ({chosen.size})"
        if int(rows.sum()) <= MARK_LIMIT:
            bins = rows.nonzero().squeeze(1)
            marked_on.scatter(freqs[bins], values[bins], s=size, color=color, label=text, zorder=3)
        else:
            thin.line(marked_on, torch.where(rows, values, torch.nan), color=color, linewidth=0.7, label=text, zorder=2)
    marked_on.legend(loc="upper right", fontsize=8)
    top.set_title(_title(explanation, class_names), fontsize=10)
    if per_channel.shape[0] > 1 and channel_axis is not None:
        for channel, row in enumerate(per_channel):
            thin.line(bottom, row, linewidth=0.8, label=f"channel {channel}")
        bottom.legend(loc="upper right", fontsize=8)
    else:
        thin.line(bottom, per_channel.sum(0), color="#31a354", linewidth=0.8, fill=True)
    bottom.set_ylabel("responsibility")
    bottom.set_xlabel("frequency (Hz)" if sample_rate else "rfft bin")
    if log_frequency:
        _log_frequency_axis(bottom, "x", float(freqs[-1]), sample_rate, spacing)
    else:
        bottom.set_xlim(0.0, float(freqs[-1]))
    fig.tight_layout()
    return fig


#: Most points a line over frequency is drawn with: longer ones (a 10-minute clip has 4.8
#: million bins) are drawn as the min-max envelope of this many columns of the axis, which
#: looks the same at the figure's resolution and keeps matplotlib's copies of every vertex small.
DISPLAY_POINTS = 4000


class _Thinning:
    """Draws lines over the bins ``freqs`` directly, or, beyond :data:`DISPLAY_POINTS` bins, as the
    envelope of the bins in each column of the axis (even on the axis's linear or log scale)."""

    def __init__(self, freqs: Tensor, log_frequency: bool, spacing: float) -> None:
        self.freqs = freqs.double()
        self.index: Optional[Tensor] = None
        if freqs.numel() <= DISPLAY_POINTS:
            return
        top = float(freqs[-1])
        if log_frequency:
            linthresh = max(LINEAR_BELOW_HZ, 2.0 * spacing)
            low = torch.linspace(0.0, linthresh, 65, dtype=torch.float64)[:-1]
            edges = torch.cat([low, torch.logspace(math.log10(linthresh), math.log10(top), DISPLAY_POINTS, dtype=torch.float64)])
        else:
            edges = torch.linspace(0.0, top, DISPLAY_POINTS + 1, dtype=torch.float64)
        self.n = edges.numel() - 1
        self.index = (torch.bucketize(self.freqs, edges, right=True) - 1).clamp(0, self.n - 1)
        self.x = self.per_column(self.freqs, "mean")

    def per_column(self, values: Tensor, how: str) -> Tensor:
        """``values`` reduced (``"mean"``, ``"amin"``, ``"amax"``) over the bins of each display column.

        NaN where a column holds no bin, or only NaN bins (a set's line elsewhere).
        """
        assert self.index is not None
        values = values.double()
        valid = ~torch.isnan(values)
        out = torch.full((self.n,), math.nan, dtype=torch.float64)
        out.scatter_reduce_(0, self.index[valid], values[valid], how, include_self=False)
        return out

    def line(self, ax: Any, values: Tensor, fill: bool = False, **style: Any) -> None:
        """``ax.plot`` of ``values`` over the bins (and the area under it when ``fill``)."""
        if self.index is None:
            ax.plot(self.freqs, values, **style)
            if fill:
                ax.fill_between(self.freqs.numpy(), values.numpy(), color=style.get("color"), alpha=0.3)
            return
        low, high = self.per_column(values, "amin"), self.per_column(values, "amax")
        keep = ~torch.isnan(self.x)
        x, lows, highs = self.x[keep].numpy(), low[keep].numpy(), high[keep].numpy()
        color = ax.plot(x, highs, **style)[0].get_color()
        ax.fill_between(x, lows, highs, color=color, linewidth=0, zorder=style.get("zorder"))
        if fill:
            ax.fill_between(x, highs, color=color, alpha=0.3)


def _stft_axes(explanation: "Explanation", sample_rate: Optional[float], grid: Tensor) -> Tuple[Tensor, Tensor]:
    layout = explanation.layout
    hz = layout.bin_hz(0, sample_rate)
    seconds = layout.frame_seconds(0, sample_rate)
    freqs = hz if hz is not None else torch.arange(grid.shape[0], dtype=torch.float64)
    times = seconds if seconds is not None else torch.arange(grid.shape[1], dtype=torch.float64)
    return freqs, times


def _draw_stft_overlay(
    ax: Any, explanation: "Explanation", grid: Tensor, freqs: Tensor, times: Tensor, with_colorbar: bool = True
) -> None:
    """The clip's spectrogram in grey (on the STFT's own cells) with the responsibility over it."""
    import numpy as np

    fig = ax.figure
    if explanation.has_waveforms:
        domain = explanation.layout.domain
        assert domain is not None, "an explanation with its waveforms keeps its domain"
        coefficients = domain.analyze(single_waveform(explanation.original_waveform()).detach().cpu().float())
        magnitude = coefficients.abs().double()
        magnitude = magnitude if magnitude.dim() == 2 else magnitude.reshape(-1, *magnitude.shape[-2:]).mean(0)
        db = 20 * torch.log10(magnitude + 1e-9)
        top = float(db.max())
        ax.pcolormesh(
            times.numpy(), freqs.numpy(), db.numpy(), shading="nearest", cmap="Greys", vmin=top - 80, vmax=top,
            rasterized=True,
        )
    values = np.ma.masked_less_equal(grid.numpy(), 0.0)
    mesh = ax.pcolormesh(
        times.numpy(), freqs.numpy(), values, shading="nearest", cmap="plasma", alpha=0.85, rasterized=True
    )
    if with_colorbar:
        fig.colorbar(mesh, ax=ax, label="responsibility")
    chosen = explanation.sufficient
    if chosen is not None:
        cells = chosen.mask.detach().cpu().bool()[explanation.layout.ids[0]]
        cells = cells if cells.dim() == 2 else cells.reshape(-1, *cells.shape[-2:]).any(0)
        where = cells.nonzero()
        if 0 < where.shape[0] <= 4 * MARK_LIMIT:
            ax.scatter(
                times[where[:, 1]].numpy(), freqs[where[:, 0]].numpy(), s=16, marker="s", facecolors="none",
                edgecolors=SET_STYLES["sufficient"][0], linewidths=0.8, label=f"sufficient ({chosen.size})",
            )
            ax.legend(loc="upper right", fontsize=8)


def _plot_stft(
    explanation: "Explanation", grid: Tensor, sample_rate: Optional[float], log_frequency: bool,
    class_names: Optional[Sequence[str]],
) -> Any:
    plt = pyplot()
    if grid.dim() == 3:  # per-channel cells: total over channels
        grid = grid.sum(0)
    fig, ax = plt.subplots(figsize=(10, 4))
    freqs, times = _stft_axes(explanation, sample_rate, grid)
    _draw_stft_overlay(ax, explanation, grid, freqs, times)
    spacing = float(freqs[1] - freqs[0]) if freqs.numel() > 1 else 1.0
    if log_frequency:
        _log_frequency_axis(ax, "y", float(freqs[-1]), sample_rate, spacing)
    else:
        ax.set_ylim(0.0, float(freqs[-1]))
    ax.set_xlabel("time (s)" if sample_rate else "frame")
    ax.set_ylabel("frequency (Hz)" if sample_rate else "STFT bin")
    ax.set_title(_title(explanation, class_names) + "\nresponsibility of each time-frequency cell over the clip's spectrogram", fontsize=10)
    fig.tight_layout()
    return fig


def _auto_n_fft(length: int) -> int:
    """A power-of-two FFT size for spectrograms: about 1/16 of the clip, within [256, 4096]."""
    n_fft = 1 << max(int(length // 16).bit_length() - 1, 0)
    n_fft = min(max(n_fft, 256), 4096)
    while n_fft > length and n_fft > 2:
        n_fft //= 2
    return n_fft


def _spectrogram_db(wave: Tensor, n_fft: int) -> Tensor:
    # float32, in place: a 10-minute clip's spectrogram is 19 million cells, and float64 copies of
    # each step took 0.6 GiB per panel.
    wave = _mono(wave).float()
    spec = torch.stft(wave, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    return spec.add_(1e-9).log10_().mul_(20)


#: Most rows and columns a spectrogram is drawn with. Finer grids are max-pooled onto this many
#: (so a thin line stays visible), coarser stretches take their nearest row: a 10-minute clip
#: draws as fast as a 1 s one.
DISPLAY_ROWS = 480
DISPLAY_COLUMNS = 1200


def _display_edges(top: float, log_frequency: bool, spacing: float) -> Tensor:
    """Frequency edges of the display rows: even on the axis the spectrogram is drawn on."""
    if not log_frequency:
        return torch.linspace(0.0, top, DISPLAY_ROWS + 1, dtype=torch.float64)
    linthresh = max(LINEAR_BELOW_HZ, 2.0 * spacing)
    low = torch.linspace(0.0, linthresh, 9, dtype=torch.float64)[:-1]
    high = torch.logspace(math.log10(linthresh), math.log10(top), DISPLAY_ROWS, dtype=torch.float64)
    return torch.cat([low, high])


def _pool_rows(values: Tensor, centres: Tensor, edges: Tensor) -> Tensor:
    """``(rows, C) -> (len(edges) - 1, C)``: the max of the rows in each display row, or the nearest row."""
    n_display = edges.numel() - 1
    index = (torch.bucketize(centres, edges, right=True) - 1).clamp(0, n_display - 1)
    pooled = torch.full((n_display, values.shape[1]), -math.inf, dtype=values.dtype)
    pooled.scatter_reduce_(0, index.view(-1, 1).expand_as(values), values, "amax")
    mids = (edges[:-1] + edges[1:]) / 2
    above = torch.searchsorted(centres, mids).clamp(max=centres.numel() - 1)
    below = (above - 1).clamp(min=0)
    nearest = torch.where((mids - centres[below]).abs() <= (centres[above] - mids).abs(), below, above)
    return torch.maximum(pooled, values[nearest])


def _draw_spectrogram(
    ax: Any, db: Tensor, seconds: float, sample_rate: float, n_fft: int, vmax: float, dynamic_range_db: float,
    log_frequency: bool,
) -> Any:
    spacing = sample_rate / n_fft
    hop_seconds = (n_fft // 4) / sample_rate
    freqs = torch.arange(db.shape[0], dtype=torch.float64) * spacing
    edges = _display_edges(sample_rate / 2, log_frequency, spacing)
    values = _pool_rows(db, freqs, edges)
    group = max(1, math.ceil(values.shape[1] / DISPLAY_COLUMNS))
    if group > 1:  # max over groups of frames
        pad = (-values.shape[1]) % group
        values = torch.nn.functional.pad(values, (0, pad), value=-math.inf)
        values = values.reshape(values.shape[0], -1, group).amax(2)
    columns = torch.arange(values.shape[1] + 1, dtype=torch.float64) * group - 0.5
    times = (columns * hop_seconds).clamp(0.0, seconds)
    mesh = ax.pcolormesh(
        times.numpy(), edges.numpy(), values.numpy(), shading="flat", cmap="magma",
        vmin=vmax - dynamic_range_db, vmax=vmax, rasterized=True,
    )
    if log_frequency:
        _log_frequency_axis(ax, "y", sample_rate / 2, sample_rate, spacing)
    else:
        ax.set_ylim(0.0, sample_rate / 2)
    ax.set_ylabel("Hz")
    return mesh


def plot_spectrograms(
    signals: Dict[str, Tensor],
    sample_rate: float,
    n_fft: int = 1024,
    log_frequency: bool = True,
    shared_scale: bool = True,
    dynamic_range_db: float = 90.0,
) -> Any:
    r"""Log-magnitude spectrograms of named waveforms, one panel each.

    Args:
        signals (dict): Name -> ``(time,)`` (or ``(channels, time)``, averaged) waveform.
        sample_rate (float): Sample rate in Hz.
        n_fft (int, optional): FFT size (hop ``n_fft // 4``). Default: 1024
        log_frequency (bool, optional): Logarithmic frequency axis (``symlog``, linear below
                    20 Hz). Default: True
        shared_scale (bool, optional): One colour scale for all panels, so that levels compare
                    across them (a much quieter signal looks dark); False scales each panel to its
                    own peak, so that every signal's shape is visible. Default: True
        dynamic_range_db (float, optional): Range of the colour scale below its top, in dB.
                    Default: 90.0

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = pyplot()
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.2 * len(signals)), sharex=True, squeeze=False)
    spectra = {name: _spectrogram_db(wave, n_fft) for name, wave in signals.items()}
    top = max(float(db.max()) for db in spectra.values())
    for (name, db), ax, wave in zip(spectra.items(), axes[:, 0], signals.values()):
        seconds = wave.shape[-1] / sample_rate
        vmax = top if shared_scale else float(db.max())
        _draw_spectrogram(ax, db, seconds, sample_rate, n_fft, vmax, dynamic_range_db, log_frequency)
        ax.set_title(name, fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def _membership_strip(ax: Any, explanation: "Explanation", sample_rate: float, top: float) -> None:
    """Beside a spectrogram: one column per set, coloured where the set holds a frequency.

    Membership is gathered onto about 600 display rows (logarithmic above 20 Hz), so that a set of
    one bin in a clip of 240,000 stays visible.
    """
    import numpy as np

    hz = explanation.layout.bin_hz(0, sample_rate)
    assert hz is not None, "a sample rate and the domain give each row's frequency"
    edges = np.concatenate([np.linspace(0.0, LINEAR_BELOW_HZ, 8)[:-1], np.geomspace(LINEAR_BELOW_HZ, top, 600)])
    columns = list(_drawn_sets(explanation))
    for column, name in enumerate(columns):
        rows = _in_set_rows(explanation, name)
        assert rows is not None  # columns holds only the sets found
        counts, _ = np.histogram(hz[rows].numpy(), bins=edges)
        color = SET_STYLES[name][0]
        filled = np.ma.masked_equal((counts > 0).astype(float)[:, None], 0.0)
        from matplotlib.colors import ListedColormap

        ax.pcolormesh([column, column + 0.9], edges, filled, cmap=ListedColormap([color]), vmin=0, vmax=1)
        if int(rows.sum()) <= MARK_LIMIT:  # a few frequencies: a line each, at least a pixel thick
            ax.hlines(hz[rows].numpy(), column, column + 0.9, color=color, linewidth=1.5)
    ax.set_xlim(0, max(len(columns), 1))
    ax.set_xticks([c + 0.45 for c in range(len(columns))])
    ax.set_xticklabels([STRIP_LABELS[n] for n in columns], fontsize=7)
    ax.tick_params(axis="y", labelleft=False)
    ax.set_title("sets", fontsize=8)


def plot_explanation_spectrograms(
    explanation: "Explanation",
    sample_rate: float,
    n_fft: Optional[int] = None,
    log_frequency: bool = True,
    class_names: Optional[Sequence[str]] = None,
    dynamic_range_db: float = 80.0,
    valid_samples: Optional[int] = None,
) -> Any:
    r"""The clip's spectrogram with the sets drawn over it, then each set alone and the decisive removal.

    Panels, top to bottom:

    * the original, with the sets over it: for rfft features, a line at each frequency of a set
      of at most :data:`MARK_LIMIT` frequencies and a strip on the right (``S``, ``SN``, ``C``,
      and ``Q`` for the quiet sufficient set where a near-silent one gave way to a loud one,
      :attr:`~captum_freqrex.Explanation.quiet_sufficient`) coloured where each set holds a
      frequency; for STFT cells, the responsibility of each cell in colour over the spectrogram
      in grey (computed with the domain's own STFT);
    * each set kept alone, the quiet sufficient set last; sets with the same features share one
      panel, a set holding every feature (identical to the original) gets none, and a set of at
      most :data:`MARK_LIMIT` frequencies a mark at each on the panel's right edge;
    * the original with the sufficient-and-necessary set removed (what the decision flips on).

    Each panel has its own colour scale, from its own peak down ``dynamic_range_db``, so that a
    set far quieter than the clip is not drawn black; its title says how loud it is (peak in
    dBFS, and relative to the clip's peak).

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input, with its
                    waveforms).
        sample_rate (float): Sample rate in Hz.
        n_fft (int, optional): FFT size of the spectrograms (hop ``n_fft // 4``). Default: the
                    STFT domain's ``n_fft`` for STFT explanations, otherwise a power of two near
                    1/16 of the clip within [256, 4096] (finer frequency resolution for long clips)
        log_frequency (bool, optional): Logarithmic frequency axis (``symlog``, linear below
                    20 Hz). Default: True
        class_names (list of str, optional): Names for the title's classes.
        dynamic_range_db (float, optional): Range of each panel's colour scale, in dB. Default: 80.0
        valid_samples (int, optional): Leading samples of the clip that are real audio (a short
                    file zero-padded to the model's length): only they are drawn, and the title
                    says how much padding follows. Default: every sample

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = pyplot()
    grid = _single_tensor(explanation, "plot_explanation_spectrograms")
    layout = explanation.layout
    stft = layout.axes(0)[2] is not None
    original = single_waveform(explanation.original_waveform())
    full = original.shape[-1]
    if valid_samples is not None and not 0 < valid_samples <= full:
        raise ValueError(f"valid_samples must be in [1, {full}] (the clip's length), got {valid_samples}")
    # A padded clip's spectrogram is drawn over its real part only: padding would be most of it.
    length = full if valid_samples is None else int(valid_samples)
    padding = (
        f"; zero padding from {length / sample_rate:.2f} s to the model's {full / sample_rate:.2f} s not drawn"
        if length < full else ""
    )
    if n_fft is None:
        n_fft = getattr(layout.domain, "n_fft", None) if stft else None
        n_fft = n_fft or _auto_n_fft(length)
    seconds = length / sample_rate
    clip_peak = float(_mono(original).abs().max())
    clip_db = 20 * math.log10(clip_peak) if clip_peak > 0 else -math.inf
    panels, everything = _set_panels(explanation, length, sample_rate)
    n_rows = 1 + len(panels)
    fig = plt.figure(figsize=(10.5, 2.3 * n_rows + 0.5))
    spec = fig.add_gridspec(n_rows, 2, width_ratios=(40, 2.6), wspace=0.03)
    first = fig.add_subplot(spec[0, 0])
    title = "original"
    if everything:
        title += f" (= {', '.join(everything)} set: every feature)"
    if stft:
        title += _draw_original_stft(first, explanation, grid, sample_rate, log_frequency)
    else:
        db = _spectrogram_db(original[..., :length], n_fft)
        _draw_spectrogram(first, db, seconds, sample_rate, n_fft, float(db.max()), dynamic_range_db, log_frequency)
        _mark_set_frequencies(first, fig.add_subplot(spec[0, 1], sharey=first), explanation, sample_rate)
        title += "; dashed lines and the strip on the right: the frequencies of each set"
    first.set_title(f"{_title(explanation, class_names)}\n{title}{padding}", fontsize=9)
    axes = [first]
    for row, panel in enumerate(panels, start=1):
        ax = fig.add_subplot(spec[row, 0], sharex=first)
        _draw_set_panel(ax, panel.label, panel.wave, seconds, sample_rate, n_fft, dynamic_range_db, log_frequency, clip_db)
        if panel.marks and not stft:
            ax.plot([seconds] * len(panel.marks), panel.marks, linestyle="none", marker="<", markersize=5,
                    color=panel.color, clip_on=False, label="frequencies of the set")
        axes.append(ax)
    for ax in axes[:-1]:
        ax.tick_params(axis="x", labelbottom=False)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_xlim(0.0, seconds)
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.55 / (2.3 * n_rows + 0.5), bottom=0.35 / n_rows, hspace=0.45)
    return fig


class _Panel(NamedTuple):
    label: str
    wave: Tensor
    marks: List[float]  # a small set's frequencies (Hz), pointed at on the panel's right edge
    color: str  # the set's colour (SET_STYLES)


def _set_panels(explanation: "Explanation", length: int, sample_rate: float) -> Tuple[List[_Panel], List[str]]:
    # One panel per distinct set (kept alone) and one for the removal of the sufficient & necessary
    # set; the sets that hold every feature are named instead of drawn. A set of at most
    # MARK_LIMIT frequencies gets a mark at each on the panel's edge: one bin is a one-pixel line
    # on a spectrogram, easily missed at the top of a log axis.
    hz = explanation.layout.bin_hz(0, sample_rate)
    panels: List[_Panel] = []
    everything = []
    for names, chosen in _distinct_sets(explanation):
        labels = " = ".join(SET_STYLES[n][1] for n in names)
        if bool(chosen.mask.all()):
            everything.append(labels)
            continue
        wave = single_waveform(explanation.waveform(names[0]))[..., :length]
        rows = _in_set_rows(explanation, names[0])
        marks = hz[rows].tolist() if hz is not None and rows is not None and 0 < int(rows.sum()) <= MARK_LIMIT else []
        panels.append(_Panel(f"{labels} kept alone ({count_of(chosen.size, 'feature')})", wave, marks,
                             SET_STYLES[names[0]][0]))
    if explanation.sufficient_necessary is not None:
        removal = single_waveform(explanation.waveform("sufficient_necessary", removed=True))[..., :length]
        panels.append(_Panel("original with the sufficient & necessary set removed", removal, [], ""))
    return panels, everything


def _draw_original_stft(first: Any, explanation: "Explanation", grid: Tensor, sample_rate: float,
                        log_frequency: bool) -> str:
    # The STFT cells' responsibility over the original's spectrogram; returns the title's part.
    cells = grid if grid.dim() == 2 else grid.sum(0)
    freqs, times = _stft_axes(explanation, sample_rate, cells)
    _draw_stft_overlay(first, explanation, cells, freqs, times, with_colorbar=False)
    if log_frequency:
        _log_frequency_axis(first, "y", float(freqs[-1]), sample_rate, float(freqs[1] - freqs[0]))
    first.set_ylabel("Hz")
    return ": responsibility of each cell (colour) over its spectrogram (grey)"


def _mark_set_frequencies(first: Any, strip: Any, explanation: "Explanation", sample_rate: float) -> None:
    # Dashed lines at each (small) set's frequencies, and the membership strip beside the axes.
    hz = explanation.layout.bin_hz(0, sample_rate)
    assert hz is not None, "a sample rate and the domain give each row's frequency"
    for name in SET_STYLES:
        rows = _in_set_rows(explanation, name)
        if rows is None or int(rows.sum()) > MARK_LIMIT:
            continue
        for f in hz[rows].tolist():
            first.axhline(f, color=SET_STYLES[name][0], linewidth=0.9, linestyle="--", alpha=0.9)
    _membership_strip(strip, explanation, sample_rate, sample_rate / 2)


def _draw_set_panel(ax: Any, label: str, wave: Tensor, seconds: float, sample_rate: float, n_fft: int,
                    dynamic_range_db: float, log_frequency: bool, clip_db: float) -> None:
    # One set's spectrogram, scaled to its own peak, titled with its level against the clip's.
    db = _spectrogram_db(wave, n_fft)
    peak = float(_mono(wave).abs().max())
    if peak <= 0:
        _draw_spectrogram(ax, db, seconds, sample_rate, n_fft, 0.0, dynamic_range_db, log_frequency)
        ax.set_title(f"{label}: silent", fontsize=9)
        return
    _draw_spectrogram(ax, db, seconds, sample_rate, n_fft, float(db.max()), dynamic_range_db, log_frequency)
    level = 20 * math.log10(peak)
    ax.set_title(
        f"{label}: peak {_db(level)} dBFS ({_db(level - clip_db)} dB vs the clip); colours scaled to its own peak",
        fontsize=9,
    )
