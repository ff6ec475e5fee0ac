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
then harmonic templates: ``FrameNormalisedPitch`` of ``tests/known_models.py``); and, with ``--zoo``,
the ``instruments`` zoo model on its shipped clips (30 s phrases: no single ``f0``, so only the peak
and level columns).

``--soundfont`` measures something else, on real instruments: the 24 single notes rendered from
the FluidR3_GM SoundFont (``tests/data/notes``, written by ``scripts/render_notes.py``; 8 GM
instruments x 3 pitches, 1 s at 16 kHz) through the same model with one class per MIDI pitch 48-83.
For each note the model hears correctly, and for each search of :data:`SEARCHES` and for
IntegratedGradients (its sets extracted and certified by :meth:`FreqReX.explain`), each without and
with ``shrink=True``: the certified sufficient set's size; whether its loudest bin is within 1% of
``n * f0`` (``n`` the nearest harmonic, ``f0`` measured on the clip) and how many of its bins are;
its loudest bin in dB relative to the clip's loudest rfft bin (the target: at most 6 dB below);
the share of notes meeting both; the model queries (IG: its gradient steps plus the extraction's
queries). Two reference rows say whether the target is within reach: the clip's loudest bin kept
alone, else with one partner bin, the first pair that keeps the decision, the partners being the
loudest bins at 12 harmonics (knows ``f0``) or the 12 loudest other spectral peaks (knows nothing).
Written to ``harmonics_soundfont.md`` and, one row per note and option, ``harmonics_soundfont.csv``.

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
    .venv/bin/python benchmarks/harmonics.py --soundfont --threads 1  # every search on 24 real notes
"""

from __future__ import annotations

import argparse
import csv
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
from torch import Tensor

import captum_freqrex._core.freqrex as freqrex_module
from captum_freqrex import FreqReX, FrequencyForward, PartitionRefinement
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL, rank_features

# The known-answer pitch model and the rendered notes live with the tests, which check them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from known_models import FrameNormalisedPitch, rendered_notes  # noqa: E402

A3_HZ = 220.0
PEAK_FLOOR_DB = -30.0
#: The searches compared with ``--soundfont`` (label -> FreqReX's ``search`` argument, made per use).
SEARCHES: Dict[str, Callable[[], object]] = {
    "default": lambda: None,
    'PartitionRefinement(prefer="energy")': lambda: PartitionRefinement(prefer="energy"),
    'PartitionRefinement(prefer="size")': lambda: PartitionRefinement(prefer="size"),
    '"adaptive"': lambda: "adaptive",
    '"energy"': lambda: "energy",
}
HARMONIC_RTOL = 0.01  # "at a harmonic": within 1% of n * f0
LEVEL_DB = -6.0  # "at the note's level": loudest set bin at most 6 dB below the clip's loudest bin
#: Reference rows (label -> partners of :func:`peak_reference`): what a 2-bin set at the peak achieves.
REFERENCES = {
    "reference: the loudest bin, alone or with one of 12 harmonics' loudest bins (knows f0)": "harmonics",
    "reference: the loudest bin, alone or with one of the 12 loudest other spectral peaks (+-10 Hz)": "peaks",
}


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


# ---------------------------------------------------------------- --soundfont: every search option


@dataclass
class NoteSet:
    """Where one certified sufficient set sits on a rendered note (``--soundfont``)."""

    certified: bool
    size: int
    at_harmonic: bool  # its loudest bin is within HARMONIC_RTOL of n * f0
    harmonic_share: float  # of its bins within HARMONIC_RTOL of n * f0
    loudest_db: float  # its loudest bin, dB re the clip's loudest rfft bin
    queries: int

    @property
    def meets_both(self) -> bool:
        return self.certified and self.at_harmonic and self.loudest_db >= LEVEL_DB


def near_harmonic(hz: Tensor, f0: float) -> Tensor:
    """Whether each frequency is within 1% of ``n * f0`` for its nearest harmonic ``n >= 1``."""
    n = (hz / f0).round().clamp_min(1.0)
    return (hz - n * f0).abs() <= HARMONIC_RTOL * n * f0


def note_set(expl, clip: Clip, extra_queries: int = 0) -> NoteSet:
    """The sufficient set of one explanation, measured against ``clip.f0`` and the clip's peak."""
    suff = expl.sufficient
    queries = int(expl.stats.queries) + extra_queries
    if suff is None or not bool(suff.mask.any()):
        return NoteSet(False, 0, False, 0.0, float("nan"), queries)
    magnitude = torch.fft.rfft(clip.waveform[0].double()).abs()
    bins = torch.nonzero(suff.mask.reshape(-1).cpu()).flatten()
    hz = bins.double() * clip.sample_rate / clip.waveform.shape[-1]
    near = near_harmonic(hz, float(clip.f0))
    loudest = int(magnitude[bins].argmax())
    level = 20 * math.log10(float(magnitude[bins[loudest]] / magnitude.max()))
    return NoteSet(bool(suff.certified), int(bins.numel()), bool(near[loudest]), float(near.double().mean()), level, queries)


def explain_options(model: Callable, clip: Clip, seed: int, ig_steps: int) -> Dict[Tuple[str, bool], NoteSet]:
    """One clip's sufficient set for every search of :data:`SEARCHES` and IG, without and with shrink."""
    results = {}
    for label, make in SEARCHES.items():
        for shrink in (False, True):
            expl = FreqReX(model, search=make()).explain(clip.waveform, seed=seed, shrink=shrink)[0]
            results[(label, shrink)] = note_set(expl, clip)
    with torch.no_grad():
        target = int(model(clip.waveform).argmax(1))
    wrapped = FrequencyForward(model, clip.waveform)
    ig = IntegratedGradients(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=target, n_steps=ig_steps, internal_batch_size=8
    )
    for shrink in (False, True):
        expl = FreqReX(model).explain(clip.waveform, target=target, attributions=ig.detach(), seed=seed, shrink=shrink)
        results[("IntegratedGradients", shrink)] = note_set(expl[0], clip, extra_queries=ig_steps)
    for label, partners in REFERENCES.items():
        results[(label, False)] = peak_reference(model, clip, partners)
    return results


def partner_bins(magnitude: Tensor, clip: Clip, partners: str, count: int = 12) -> List[int]:
    """Candidate second bins beside the loudest: ``"harmonics"``, the loudest bin within 1% of
    ``n * f0`` for ``n = 1..count`` (needs ``f0``); ``"peaks"``, the ``count`` loudest other bins
    that are the maximum within +-10 Hz, loudest first (needs nothing but the clip; the width
    skips the leakage ripples beside a partial, which are local maxima too)."""
    hz_per_bin, bins = clip.sample_rate / clip.waveform.shape[-1], []
    if partners == "peaks":
        width = max(1, round(10.0 / hz_per_bin))
        pooled = torch.nn.functional.max_pool1d(magnitude[None, None], 2 * width + 1, 1, width)[0, 0]
        maxima = torch.nonzero(magnitude >= pooled).flatten()
        return maxima[magnitude[maxima].argsort(descending=True)][1 : count + 1].tolist()
    f0 = float(clip.f0)
    for n in range(1, count + 1):
        low, high = math.ceil(0.99 * n * f0 / hz_per_bin), math.floor(1.01 * n * f0 / hz_per_bin)
        if high < magnitude.numel() and low <= high:
            bins.append(low + int(magnitude[low : high + 1].argmax()))
    return bins


def peak_reference(model: Callable, clip: Clip, partners: str) -> NoteSet:
    """Is the target reachable? The clip's loudest bin alone, else with one bin of
    :func:`partner_bins`: the first such set that keeps the decision (all queried here in one
    batch), as a reference row beside the searches."""
    spectrum = torch.fft.rfft(clip.waveform[0].double())
    magnitude = spectrum.abs()
    peak = int(magnitude.argmax())
    sets = [[peak]] + [[peak, b] for b in partner_bins(magnitude, clip, partners) if b != peak]
    masks = torch.zeros(len(sets), magnitude.numel(), dtype=torch.bool)
    for row, bins in enumerate(sets):
        masks[row, bins] = True
    kept_spectra = torch.where(masks, spectrum, torch.zeros((), dtype=spectrum.dtype))
    with torch.no_grad():
        target = int(model(clip.waveform).argmax(1))
        kept = (model(torch.fft.irfft(kept_spectra, n=clip.waveform.shape[-1]).float()).argmax(1) == target).tolist()
    if not any(kept):
        return NoteSet(False, 0, False, 0.0, float("nan"), len(sets))
    bins = torch.tensor(sets[kept.index(True)])
    near = near_harmonic(bins.double() * clip.sample_rate / clip.waveform.shape[-1], float(clip.f0))
    return NoteSet(True, int(bins.numel()), bool(near[0]), float(near.double().mean()), 0.0, len(sets))


def options_table(per_option: Dict[Tuple[str, bool], List[NoteSet]]) -> str:
    """Markdown: one row per (search, shrink), over the notes."""
    head = (
        "| search | shrink | certified | set size (bins, median) | set size (bins, max) | loudest set bin "
        "within 1% of n*f0 (notes) | set bins within 1% of n*f0 (mean share) | loudest set bin (dB re "
        "clip's loudest bin, median) | loudest set bin within 6 dB (notes) | both (share of notes) | "
        "queries (median) |"
    )
    lines = [head, "| " + " | ".join(["---"] * 11) + " |"]
    for (label, shrink), sets in per_option.items():
        n = len(sets)
        lines.append(
            f"| {label} | {'n/a' if label in REFERENCES else 'yes' if shrink else 'no'} | "
            f"{sum(s.certified for s in sets)} / {n} | "
            f"{_median([s.size for s in sets]):g} | {max(s.size for s in sets)} | "
            f"{sum(s.at_harmonic for s in sets)} / {n} | {statistics.mean(s.harmonic_share for s in sets):.2f} | "
            f"{_median([s.loudest_db for s in sets]):.1f} | {sum(s.loudest_db >= LEVEL_DB for s in sets)} / {n} | "
            f"{100 * sum(s.meets_both for s in sets) / n:.0f}% | {_median([s.queries for s in sets]):g} |"
        )
    return "\n".join(lines)


def soundfont_notes(model: Callable) -> Tuple[List[Clip], List[str]]:
    """The rendered notes the model classifies correctly (as clips at their measured f0), and the misses."""
    clips, misses = [], []
    for note in rendered_notes():
        with torch.no_grad():
            predicted = int(model(note.waveform).argmax(1))
        if predicted == note.midi_pitch - 48:
            clips.append(Clip(note.name, note.waveform, note.sample_rate, note.f0_hz))
        else:
            misses.append(f"{note.name} (heard MIDI {predicted + 48})")
    return clips, misses


def run_soundfont(args: argparse.Namespace, start: float) -> str:
    """``--soundfont``: every search option and IG on the rendered notes; markdown and a per-note CSV."""
    model = FrameNormalisedPitch.for_midi(16000, 48, 83).eval()
    clips, misses = soundfont_notes(model)
    per_option: Dict[Tuple[str, bool], List[NoteSet]] = {}
    rows = []
    for clip in clips:
        for (label, shrink), found in explain_options(model, clip, args.seed, args.ig_steps).items():
            per_option.setdefault((label, shrink), []).append(found)
            rows.append([clip.name, f"{clip.f0:.2f}", label, shrink, found.certified, found.size, found.at_harmonic,
                         f"{found.harmonic_share:.3f}", f"{found.loudest_db:.2f}", found.queries])
        print(f"{clip.name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    with open(os.path.join(args.out, "harmonics_soundfont.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["note", "f0_hz", "search", "shrink", "certified", "size", "at_harmonic",
                         "harmonic_share", "loudest_db", "queries"])
        writer.writerows(rows)
    total = len(clips) + len(misses)
    heard = f"The model hears the pitch of {len(clips)} / {total} rendered notes" + (
        f"; left out: {', '.join(misses)}." if misses else "."
    )
    return f"{heard}\n\n{options_table(per_option)}"


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
    parser.add_argument(
        "--soundfont", action="store_true",
        help="instead: every search option (and shrink) and IG on the notes rendered from FluidR3_GM "
        "(tests/data/notes) through the frame-normalised pitch model, to harmonics_soundfont.md/.csv",
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for harmonics.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    command = "benchmarks/harmonics.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.soundfont:
        markdown = run_soundfont(args, start)
        report = f"{markdown}\n\n`{command.strip()}`, {time.perf_counter() - start:.0f} s.\n"
        print(report)
        with open(os.path.join(args.out, "harmonics_soundfont.md"), "w") as handle:
            handle.write(report)
        return 0

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
    report = f"{markdown}\n\n`{command.strip()}`, {time.perf_counter() - start:.0f} s.\n"
    print(report)
    with open(os.path.join(args.out, "harmonics.md"), "w") as handle:
        handle.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
