"""Sets at the harmonics: where FreqReX's and IntegratedGradients' sufficient sets sit on harmonic notes.

Issue #16: a model that normalises its input turns any lone bin near the pitch into a full-scale
tone, so a sufficient set can be a few near-empty bins, valid but misleading to a listener. This
script measures, for FreqReX and for IntegratedGradients (through
:class:`captum_freqrex.FrequencyForward`, its sets extracted and certified by the same
:meth:`FreqReX.explain`), where the certified sufficient sets sit:

* **at a harmonic** - the share of set bins within one rfft bin of a harmonic ``h * f0`` (any
  ``h`` below Nyquist), how many sets hold at least one such bin, and the set bins' distance from
  the nearest harmonic in cents (a decaying partial of a long clip is several bins wide, so one
  bin can be a fraction of a cent);
* **at a spectral peak** - the share of set bins within one bin of a local maximum of ``|X|``
  at most 30 dB below the spectrum's maximum (defined without ``f0``, so it applies to the zoo's
  phrases too);
* **level** - the loudest and the median set bin, in dB relative to the spectral peak, and the
  rank of the spectral peak in the method's ranking.

Data: synthetic harmonic notes (one per semitone of A3-G#4, detuned by up to 20 cents, 8 partials
falling as ``1/h`` with +-3 dB jitter, 10 ms attack, 1.5 s decay, noise 60 dB down) explained on
a pitch classifier with a *frame-normalising* front end (each STFT frame divided by its maximum,
then harmonic templates); and, with ``--zoo``, the ``instruments`` zoo model on its shipped clips
(30 s phrases: no single ``f0``, so only the peak and level columns).

Every ranking rule in ``--rtol`` is applied to the same responsibility and the same IG
attributions (FreqReX's search runs once per clip, seeded): ``0`` is the exact-ties-only rule from
before issue #16, the default the tiered rule of :func:`captum_freqrex._core.certify.ranking.rank_features`.
:meth:`FreqReX.explain` takes no ranking tolerance, so the script swaps the ranking function that
``explain`` calls for the run of each rule.

Usage::

    .venv/bin/python benchmarks/harmonics.py                       # 12 notes of 4 s at 16 kHz
    .venv/bin/python benchmarks/harmonics.py --zoo 2               # and the instruments model's 2 clips
    .venv/bin/python benchmarks/harmonics.py --seconds 30          # 240,001 bins per note
    .venv/bin/python benchmarks/harmonics.py --seconds 1 --notes 4 --rtol 0 0.1 0.5
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from unittest import mock

import torch
from captum.attr import IntegratedGradients
from torch import Tensor, nn

import captum_freqrex._core.freqrex as freqrex_module
from captum_freqrex import FreqReX, FrequencyForward
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL, rank_features

A3_HZ = 220.0
PEAK_FLOOR_DB = -30.0


class FrameNormalisedPitch(nn.Module):
    r"""Pitch class among ``n_pitches`` semitones from ``lowest_hz``, from frame-normalised spectra.

    Hann-windowed frames of ``n_fft`` samples (hop ``n_fft // 2``); each frame's magnitude spectrum
    is divided by its own maximum, so any lone sinusoid is a full-scale tone. A pitch scores the
    mean over frames of the sum over its first ``n_harmonics`` harmonics of the largest normalised
    magnitude within ``cents`` of the harmonic; a last "none" class scores 0.5 and wins on silence.

    Args:
        sample_rate (int): Hz.
        lowest_hz (float, optional): The lowest pitch. Default: 220.0 (A3)
        n_pitches (int, optional): Semitones. Default: 12
        n_harmonics (int, optional): Harmonics per template. Default: 6
        cents (float, optional): Half-width of a template's window. Default: 50.0
        n_fft (int, optional): Frame length in samples. Default: 4096
    """

    def __init__(
        self,
        sample_rate: int,
        lowest_hz: float = A3_HZ,
        n_pitches: int = 12,
        n_harmonics: int = 6,
        cents: float = 50.0,
        n_fft: int = 4096,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.pitches_hz = [lowest_hz * 2 ** (p / 12) for p in range(n_pitches)]
        hz = torch.fft.rfftfreq(n_fft, 1 / sample_rate)
        # Each template window is a run of frame bins; gather it, padded by repeating its first bin.
        runs = []
        for f0 in self.pitches_hz:
            for h in range(1, n_harmonics + 1):
                inside = torch.nonzero((hz >= h * f0 * 2 ** (-cents / 1200)) & (hz <= h * f0 * 2 ** (cents / 1200)))
                runs.append(inside.flatten() if inside.numel() else (hz - h * f0).abs().argmin().view(1))
        width = max(r.numel() for r in runs)
        index = torch.stack([torch.cat([r, r[:1].expand(width - r.numel())]) for r in runs])
        self.n_pitches, self.n_harmonics = n_pitches, n_harmonics
        self.register_buffer("index", index)  # (n_pitches * n_harmonics, width)
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, x: Tensor) -> Tensor:
        frames = torch.stft(x, self.n_fft, self.n_fft // 2, window=self.window, center=False, return_complex=True)
        magnitude = frames.abs().transpose(1, 2)  # (B, frames, freq)
        magnitude = magnitude / (magnitude.amax(-1, keepdim=True) + 1e-8)
        inside = magnitude[..., self.index]  # (B, frames, n_pitches * n_harmonics, width)
        peaks = inside.amax(-1).unflatten(-1, (self.n_pitches, self.n_harmonics))
        salience = peaks.sum(-1).mean(1)  # (B, n_pitches)
        return torch.cat([salience, torch.full_like(salience[:, :1], 0.5)], dim=1)


def harmonic_note(f0: float, seconds: float, sample_rate: int, generator: torch.Generator) -> Tensor:
    """``(T,)`` float32: 8 partials ``1/h`` (+-3 dB), 10 ms attack, 1.5 s decay, noise 60 dB down."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    x = torch.zeros_like(t)
    for h in range(1, 9):
        if h * f0 >= sample_rate / 2:
            break
        gain = 10 ** (float(torch.empty(()).uniform_(-3, 3, generator=generator)) / 20) / h
        phase = 2 * math.pi * float(torch.rand((), generator=generator))
        x += gain * torch.sin(2 * math.pi * h * f0 * t + phase)
    x *= torch.clamp(t / 0.01, max=1.0) * torch.exp(-t / 1.5)
    x /= x.abs().max()
    x += 1e-3 * torch.randn(t.shape, generator=generator, dtype=torch.float64)
    return x.float()


@dataclass
class Clip:
    name: str
    waveform: Tensor  # (1, T)
    sample_rate: int
    f0: Optional[float]


@dataclass
class SetStats:
    certified: bool
    size: int
    harmonic_share: Optional[float]
    cents: Optional[float]
    peak_share: float
    loudest_db: float
    median_db: float
    peak_rank: int


def synthetic_notes(n_notes: int, seconds: float, sample_rate: int, seed: int) -> List[Clip]:
    generator = torch.Generator().manual_seed(seed)
    clips = []
    for i in range(n_notes):
        cents = float(torch.empty(()).uniform_(-20, 20, generator=generator))
        f0 = A3_HZ * 2 ** ((i % 12) / 12 + cents / 1200)
        wave = harmonic_note(f0, seconds, sample_rate, generator)
        clips.append(Clip(f"note {f0:.1f} Hz", wave.unsqueeze(0), sample_rate, f0))
    return clips


def zoo_clips(n_clips: int) -> Tuple[Callable, List[Clip]]:
    from captum_freqrex import zoo

    loaded = zoo.load("instruments")
    clips = []
    for i in range(n_clips):
        clip = zoo.load_clip("instruments", i)
        clips.append(Clip(clip.label, clip.waveform.unsqueeze(0), loaded.sample_rate, None))
    return loaded.model, clips


def set_stats(mask: Tensor, ranking: Tensor, magnitude: Tensor, clip: Clip, certified: bool) -> SetStats:
    """Where one sufficient set sits (see the module docstring for each figure)."""
    mask = mask.reshape(-1).cpu()
    bins = torch.nonzero(mask).flatten()
    n_bins = magnitude.numel()
    level = 20 * torch.log10(magnitude / magnitude.max()).clamp_min(-300.0)
    padded = torch.nn.functional.pad(magnitude, (1, 1))
    peak = (magnitude >= padded[:-2]) & (magnitude >= padded[2:]) & (level >= PEAK_FLOOR_DB)
    # Within one bin of a peak: the peak mask widened by one bin each way.
    near_peak = torch.nn.functional.max_pool1d(peak[None, None].float(), 3, 1, 1)[0, 0].bool()[bins]
    harmonic_share = cents = None
    if clip.f0 is not None:
        num_samples = clip.waveform.shape[-1]
        harmonics = torch.arange(1, int(clip.sample_rate / 2 / clip.f0) + 1, dtype=torch.float64)
        centres = harmonics * clip.f0 * num_samples / clip.sample_rate  # fractional bins
        near = torch.zeros(n_bins + 2, dtype=torch.bool)
        for offset in (-1, 0, 1, 2):  # the integer bins b with |b - centre| <= 1
            candidates = torch.floor(centres) + offset
            hit = (candidates - centres).abs() <= 1.0
            near[(candidates[hit].long() + 1).clamp(0, n_bins + 1)] = True
        harmonic_share = float(near[1:-1][bins].double().mean()) if bins.numel() else 0.0
        hz = bins.double() * clip.sample_rate / num_samples
        nearest = (hz / clip.f0).round().clamp_min(1.0) * clip.f0
        cents = float((1200 * torch.log2(hz / nearest)).abs().median()) if bins.numel() else float("nan")
    peak_rank = int((ranking.reshape(-1).cpu() == int(magnitude.argmax())).nonzero()[0, 0])
    return SetStats(
        certified,
        int(bins.numel()),
        harmonic_share,
        cents,
        float(near_peak.double().mean()) if bins.numel() else 0.0,
        float(level[bins].max()) if bins.numel() else float("nan"),
        float(level[bins].median()) if bins.numel() else float("nan"),
        peak_rank,
    )


def attributions(model: Callable, clip: Clip, seed: int, ig_steps: int) -> Dict[str, Tensor]:
    """FreqReX's responsibility (one seeded search) and IG's attributions over the rfft bins."""
    x = clip.waveform
    with torch.no_grad():
        target = int(model(x).argmax(1))
    responsibility = FreqReX(model).attribute(x, target=target, seed=seed)
    wrapped = FrequencyForward(model, x)
    ig = IntegratedGradients(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=target, n_steps=ig_steps, internal_batch_size=4
    )
    return {"FreqReX": responsibility.detach(), "IntegratedGradients": ig.detach()}


def sets_under_rule(model: Callable, clip: Clip, scores: Tensor, rtol: float, seed: int) -> SetStats:
    """The certified sufficient set of ``scores`` when :meth:`FreqReX.explain` ranks with ``rtol``."""
    ranker = functools.partial(rank_features, rtol=rtol)
    with mock.patch.object(freqrex_module, "rank_features", ranker):
        expl = FreqReX(model).explain(clip.waveform, attributions=scores, seed=seed)[0]
    magnitude = torch.fft.rfft(clip.waveform[0].double()).abs()
    suff = expl.sufficient
    if suff is None:
        return SetStats(False, 0, None, None, 0.0, float("nan"), float("nan"), -1)
    return set_stats(suff.mask, expl.ranking, magnitude, clip, bool(suff.certified))


def _median(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def table(rows: List[Tuple[str, str, float, List[SetStats]]]) -> str:
    """Markdown: one row per (data, method, rule), medians and means over clips."""
    head = (
        "| data | method | rule | clips | certified | median set size (bins) | set bins at a harmonic "
        "(mean share) | sets holding a harmonic | distance from the nearest harmonic (cents, median) | "
        "set bins at a spectral peak (mean share) | loudest set bin (dB re peak, median) | median set "
        "bin (dB re peak, median) | rank of the spectral peak (median, 0 = top) |"
    )
    lines = [head, "| " + " | ".join(["---"] * 13) + " |"]
    for data, method, rtol, stats in rows:
        rule = "exact ties (rtol=0)" if rtol == 0 else f"tiers, rtol={rtol:g}"
        harmonic = [s.harmonic_share for s in stats if s.harmonic_share is not None]
        holding = [s for s in stats if s.harmonic_share]
        lines.append(
            f"| {data} | {method} | {rule} | {len(stats)} | {sum(s.certified for s in stats)} / {len(stats)} | "
            f"{_median([s.size for s in stats]):g} | "
            + (
                f"{statistics.mean(harmonic):.2f} | {len(holding)} / {len(stats)} | "
                f"{_median([s.cents for s in stats]):.1f} | "
                if harmonic
                else "n/a | n/a | n/a | "
            )
            + f"{statistics.mean(s.peak_share for s in stats):.2f} | "
            f"{_median([s.loudest_db for s in stats]):.1f} | {_median([s.median_db for s in stats]):.1f} | "
            f"{_median([s.peak_rank for s in stats]):g} |"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=12, help="synthetic notes, a semitone apart from A3 (default 12)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a synthetic note (default 4)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="of the synthetic notes, Hz (default 16000)")
    parser.add_argument("--zoo", type=int, default=0, help="also the instruments model on N shipped clips")
    parser.add_argument(
        "--rtol", type=float, nargs="+", default=[0.0, DEFAULT_RTOL], help="ranking tolerances to compare"
    )
    parser.add_argument("--ig-steps", type=int, default=32, help="IntegratedGradients steps (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="of the notes and of FreqReX (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for harmonics.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    datasets: List[Tuple[str, Callable, List[Clip]]] = []
    if args.notes > 0:
        pitch = FrameNormalisedPitch(args.sample_rate).eval()
        notes = synthetic_notes(args.notes, args.seconds, args.sample_rate, args.seed)
        data = f"{args.notes} notes, {args.seconds:g} s at {args.sample_rate // 1000} kHz, frame-normalised pitch model"
        datasets.append((data, pitch, notes))
    if args.zoo > 0:
        model, clips = zoo_clips(args.zoo)
        for clip in clips:  # one row per clip: the clips differ too much for a median of two
            datasets.append((f"{clip.name} clip (30 s), instruments zoo model", model, [clip]))

    rows = []
    for data, model, clips in datasets:
        per_rule: Dict[Tuple[str, float], List[SetStats]] = {}
        for clip in clips:
            for method, scores in attributions(model, clip, args.seed, args.ig_steps).items():
                for rtol in args.rtol:
                    stats = sets_under_rule(model, clip, scores, rtol, args.seed)
                    per_rule.setdefault((method, rtol), []).append(stats)
            print(f"{clip.name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        rows.extend((data, method, rtol, stats) for (method, rtol), stats in per_rule.items())

    markdown = table(rows)
    command = "benchmarks/harmonics.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = f"{markdown}\n\n`{command.strip()}`, {time.perf_counter() - start:.0f} s.\n"
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "harmonics.md"), "w") as handle:
        handle.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
