"""Known-answer models whose causal frequencies are known by construction, and the rendered notes."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import torch
from torch import Tensor, nn

SAMPLE_RATE = 8000

#: Single notes of real General MIDI instruments (``scripts/render_notes.py``): 16 kHz, 1 s, mono.
NOTES_DIR = Path(__file__).resolve().parent / "data" / "notes"


def tone(freq_hz: float, seconds: float = 1.0, amplitude: float = 1.0, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """A sine at ``freq_hz``; with integer Hz and whole seconds it sits exactly on one rfft bin."""
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return amplitude * torch.sin(2 * torch.pi * freq_hz * t)


def bin_of(freq_hz: float, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    return round(freq_hz * num_samples / sample_rate)


class ToneDetector(nn.Module):
    """Class 1 when the summed magnitude at ``freqs_hz`` exceeds ``threshold``, class 0 otherwise.

    Reads only the rfft bins of ``freqs_hz`` (of the channel mean for multi-channel input), so those
    bins are the only causes of its decision and every other frequency is ignored.
    """

    def __init__(self, freqs_hz: Sequence[float], threshold: float, require_all: bool = False) -> None:
        super().__init__()
        self.freqs_hz = list(freqs_hz)
        self.threshold = threshold
        self.require_all = require_all
        self.calls = 0
        self.rows = 0

    def energies(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.mean(dim=1)
        length = int(x.shape[-1])
        spectrum = torch.fft.rfft(x).abs() / (length / 2)
        bins = [bin_of(f, length) for f in self.freqs_hz]
        return spectrum[:, bins]

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        e = self.energies(x)
        score = e.min(dim=1).values if self.require_all else e.sum(dim=1)
        margin = 10.0 * (score - self.threshold)
        return torch.stack([-margin, margin], dim=1)


class Drifting(nn.Module):
    """A 440 Hz :class:`ToneDetector` plus noise that changes at every call (dropout left on, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440], 0.3)
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: Tensor) -> Tensor:
        out = self.detector(x)
        return out + 0.5 * torch.randn(out.shape, generator=self.generator)


class BlockedTones(nn.Module):
    """Class 1 when every tone of ``causes_hz`` reaches magnitude 0.5 and the bin of ``blocker_hz``
    holds less than ``share`` of the clip's energy.

    Not monotone: a quiet tone beside a cause loses the decision where little else is kept (the
    bands around the loud peaks), though the whole clip, whose other energy dilutes it, keeps it. A
    model that normalises what it hears by its total energy behaves so; the loudest bins alone,
    without the quiet one, keep the decision.
    """

    def __init__(self, causes_hz: Sequence[float], blocker_hz: float, num_samples: int, share: float = 0.008) -> None:
        super().__init__()
        self.causes = [bin_of(f, num_samples) for f in causes_hz]
        self.blocker = bin_of(blocker_hz, num_samples)
        self.share = share

    def forward(self, x: Tensor) -> Tensor:
        magnitude = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        power = magnitude.pow(2)
        causes = magnitude[:, self.causes].min(dim=1).values
        blocked = power[:, self.blocker] / (power.sum(dim=1) + 1e-12)
        margin = torch.minimum(causes - 0.5, 100.0 * (self.share - blocked))
        return torch.stack([-margin, margin], dim=1)


class ToneClassifier(nn.Module):
    """Class ``i`` is the tone of ``freqs_hz[i]`` with the largest magnitude, if above ``floor``;
    the last class ("none") wins when no tone reaches ``floor``, so the silent baseline is well
    defined instead of a numerical tie."""

    def __init__(self, freqs_hz: Sequence[float], floor: float = 0.05) -> None:
        super().__init__()
        self.detector = ToneDetector(freqs_hz, 0.0)
        self.floor = floor

    def forward(self, x: Tensor) -> Tensor:
        e = self.detector.energies(x)
        return 10.0 * torch.cat([e, torch.full_like(e[:, :1], self.floor)], dim=1)


class SpectrumCoverageDetector(nn.Module):
    """Class 1 when more than ``share`` of the rfft bins have a magnitude above ``floor``.

    On an impulse (a flat spectrum: every bin of magnitude 1) kept against silence, a set is
    sufficient only if it holds more than ``share`` of the bins: by construction, every sufficient
    set is most of the spectrum.
    """

    def __init__(self, share: float = 0.75, floor: float = 0.5) -> None:
        super().__init__()
        self.share = share
        self.floor = floor

    def forward(self, x: Tensor) -> Tensor:
        covered = (torch.fft.rfft(x).abs() > self.floor).double().mean(dim=-1).float()
        margin = 10.0 * (covered - self.share)
        return torch.stack([-margin, margin], dim=1)


class EnergyShareDetector(nn.Module):
    """Class 1 when one of the tones ``freqs_hz`` holds more than ``share`` of the input's energy.

    A model that misbehaves on near-silence: on a clip with a loud tone and a faint one (both in
    ``freqs_hz``) among louder others, the loud tone decides (removing it flips the decision), yet
    the faint tone kept alone is all of a near-silent input's energy and decides too. Both single
    bins are sufficient; only the loud one is at the clip's level, and only it is necessary.
    """

    def __init__(self, freqs_hz: Sequence[float], share: float = 0.3) -> None:
        super().__init__()
        self.freqs_hz = list(freqs_hz)
        self.share = share

    def forward(self, x: Tensor) -> Tensor:
        energy = torch.fft.rfft(x.double()).abs().square()
        bins = [bin_of(f, int(x.shape[-1])) for f in self.freqs_hz]
        shares = energy[:, bins] / (energy.sum(dim=-1, keepdim=True) + 1e-30)
        margin = (10.0 * (shares.max(dim=1).values - self.share)).float()
        return torch.stack([-margin, margin], dim=1)


def impulse(num_samples: int) -> Tensor:
    """A unit impulse at the first sample: its rfft has magnitude 1 in every bin."""
    x = torch.zeros(num_samples)
    x[0] = 1.0
    return x


class EitherCause(nn.Module):
    """Class 1 when any group of ``causes`` is present: every tone of the group above ``threshold``.

    ``EitherCause([[440], [880, 1320]], 0.5)`` fires on a 440 Hz tone alone, or on the 880 Hz and
    1320 Hz pair without it: two disjoint causes, so a clip holding all three tones has exactly two
    disjoint minimal sufficient sets ({440} and {880, 1320}) and no third.
    """

    def __init__(self, causes: Sequence[Sequence[float]], threshold: float) -> None:
        super().__init__()
        self.groups = [ToneDetector(group, threshold) for group in causes]
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        present = torch.stack([g.energies(x).min(dim=1).values for g in self.groups], dim=1).max(dim=1).values
        margin = 10.0 * (present - self.threshold)
        return torch.stack([-margin, margin], dim=1)


def midi_hz(pitch: float) -> float:
    """Equal-tempered frequency of a MIDI pitch in Hz (A4 = MIDI 69 = 440 Hz)."""
    return 440.0 * 2 ** ((pitch - 69) / 12)


class FrameNormalisedPitch(nn.Module):
    r"""Pitch among ``n_pitches`` semitones from ``lowest_hz``, from frame-normalised spectra.

    A pitch classifier that normalises its input, as real pitch models do. Hann-windowed frames
    of ``n_fft`` samples (hop ``n_fft // 2``, no padding); each frame's magnitude spectrum is
    divided by its own maximum, so any lone sinusoid is a full-scale tone. A pitch scores the mean
    over frames of the sum over its first ``n_harmonics`` harmonics of the largest normalised
    magnitude within ``cents`` of the harmonic; a last "none" class scores 0.5 and wins on
    silence (the zero baseline). ``(B, T) -> (B, n_pitches + 1)``.

    Its known answers: the note's own pitch wins on a harmonic note (all 24 rendered notes of
    :data:`NOTES_DIR` with the defaults below and :meth:`for_midi` 48-83); and, since the frame
    maximum scales every bin up, a few quiet bins near the harmonics decide as well as the loud
    partials, so a search that prefers the fewest bins may return near-empty ones (issue #16).

    Args:
        sample_rate (int): Hz.
        lowest_hz (float, optional): The lowest pitch in Hz. Default: 220.0 (A3)
        n_pitches (int, optional): Semitones, the classes before "none". Default: 12
        n_harmonics (int, optional): Harmonics per template. Default: 6
        cents (float, optional): Half-width of a template's window. Default: 50.0
        n_fft (int, optional): Frame length in samples. Default: 4096
    """

    def __init__(
        self,
        sample_rate: int,
        lowest_hz: float = 220.0,
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

    @classmethod
    def for_midi(cls, sample_rate: int, lowest: int = 48, highest: int = 83) -> "FrameNormalisedPitch":
        """One class per MIDI pitch ``lowest..highest`` (class ``p - lowest``), then "none"."""
        return cls(sample_rate, lowest_hz=midi_hz(lowest), n_pitches=highest - lowest + 1)

    def forward(self, x: Tensor) -> Tensor:
        frames = torch.stft(x, self.n_fft, self.n_fft // 2, window=self.window, center=False, return_complex=True)
        magnitude = frames.abs().transpose(1, 2)  # (B, frames, freq)
        magnitude = magnitude / (magnitude.amax(-1, keepdim=True) + 1e-8)
        inside = magnitude[..., self.index]  # (B, frames, n_pitches * n_harmonics, width)
        peaks = inside.amax(-1).unflatten(-1, (self.n_pitches, self.n_harmonics))
        salience = peaks.sum(-1).mean(1)  # (B, n_pitches)
        return torch.cat([salience, torch.full_like(salience[:, :1], 0.5)], dim=1)


@dataclass
class RenderedNote:
    """One note of :data:`NOTES_DIR`: ``waveform`` is ``(1, 16000)`` float32 at ``sample_rate``."""

    name: str
    instrument: str
    midi_pitch: int
    f0_hz: float  # measured on the clip by scripts/render_notes.py (nominal within 14 cents)
    waveform: Tensor
    sample_rate: int


def rendered_notes(folder: Path = NOTES_DIR) -> List[RenderedNote]:
    """The notes listed in ``folder/notes.csv``, in its order, read with soundfile."""
    import soundfile

    notes = []
    with open(folder / "notes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            data, rate = soundfile.read(str(folder / row["file"]), dtype="float32")
            notes.append(
                RenderedNote(
                    row["file"].removesuffix(".flac"), row["instrument"], int(row["midi_pitch"]),
                    float(row["measured_f0_hz"]), torch.from_numpy(data).unsqueeze(0), int(rate),
                )
            )
    return notes


class HiddenPartial(nn.Module):
    """Class 0 while the partial at ``freq_hz`` stands above its two neighbouring bins, class 1 once it is gone.

    With amplitudes ``a`` at the partial and ``b`` summed over its two neighbours, the logits are
    ``(4 * (a - 2 b + 1.5), 0)``: on a clip with ``a = 1`` and ``b = 1`` removing the partial alone
    flips the decision, removing it with one neighbour ties (never a flip), and removing any band
    that holds all three raises the confidence instead. A model that is not monotone in what is
    removed: no band holding the flipping bin flips, or even looks promising.
    """

    def __init__(self, freq_hz: int, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self.freq_hz, self.sample_rate = freq_hz, sample_rate

    def forward(self, x: Tensor) -> Tensor:
        amplitude = torch.fft.rfft(x, dim=-1).abs() * 2 / x.shape[-1]
        k = bin_of(self.freq_hz, x.shape[-1], self.sample_rate)
        a, b = amplitude[:, k], amplitude[:, k - 1] + amplitude[:, k + 1]
        first = 4 * (a - 2 * b + 1.5)
        return torch.stack([first, torch.zeros_like(first)], dim=1)


def hidden_partial_clip(freq_hz: int) -> Tensor:
    """``(1, T)``: the partial at ``freq_hz`` (amplitude 1), its neighbours 1 Hz either side (0.5 each),
    and two louder tones the model ignores (3 at 300 Hz, 2 at 900 Hz), one second at SAMPLE_RATE."""
    clip = tone(freq_hz) + tone(freq_hz - 1, amplitude=0.5) + tone(freq_hz + 1, amplitude=0.5)
    return (clip + tone(300, amplitude=3.0) + tone(900, amplitude=2.0)).unsqueeze(0)


class BandNeedsContext(nn.Module):
    """A band that decides only with its context: removing it flips the decision, keeping it alone
    (even with a sufficient bin) names another class, and the band with a few loud context bins
    holds both claims.

    Regions of the rfft of a reference clip (:func:`band_needs_context_clip`), each *present* where
    a share of its reference energy is: the quiet ``band`` (at least 10%; ``full``: 95%), the loud
    ``context`` bins and a louder ``sufficient`` bin (50%), a moderate ``backdrop`` (50%) and one
    loud ``decoy`` bin (50%). Logits: ``0.5`` (silence), ``3 band + sufficient`` (the decision),
    ``5 band (1 - context)(1 - backdrop)`` (a band heard alone), ``2 backdrop``,
    ``4.5 backdrop (1 - decoy)`` (removing the decoy alone flips the decision) and
    ``2.2 decoy (1 - full)`` (the decoy kept without the band). The smallest sets holding both
    claims are the decoy, three context bins and a tenth of the band (about 30 bins): kept alone
    the band needs its context, and the decoy needs the band. The band is the clip's quietest
    region and the ranking puts it last, so the ranking's prefixes that hold are most of the
    spectrum, and the single flipping bin a screening finds, the decoy, grown along the ranking
    reaches the band only with the backdrop, whose removal then takes the decoy's flip away.
    """

    BAND, CONTEXT, BACKDROP, DECOY, SUFFICIENT = range(250, 500), range(3500, 3505), range(1000, 2500), 3700, 3900

    def __init__(self, reference: Tensor) -> None:
        super().__init__()
        self.register_buffer("reference", torch.fft.rfft(reference.double(), dim=-1).abs().square()[0])

    def _present(self, energy: Tensor, region: Sequence[int], share: float) -> Tensor:
        bins = list(region)
        return (energy[:, bins].sum(dim=1) >= share * self.reference[bins].sum()).double()

    def forward(self, x: Tensor) -> Tensor:
        energy = torch.fft.rfft(x.double(), dim=-1).abs().square()
        band, full = self._present(energy, self.BAND, 0.1), self._present(energy, self.BAND, 0.95)
        context, backdrop = self._present(energy, self.CONTEXT, 0.5), self._present(energy, self.BACKDROP, 0.5)
        decoy, sufficient = self._present(energy, [self.DECOY], 0.5), self._present(energy, [self.SUFFICIENT], 0.5)
        logits = [
            torch.full_like(band, 0.5), 3 * band + sufficient, 5 * band * (1 - context) * (1 - backdrop),
            2 * backdrop, 4.5 * backdrop * (1 - decoy), 2.2 * decoy * (1 - full),
        ]
        return torch.stack(logits, dim=1).float()


def band_needs_context_clip() -> Tensor:
    """``(1, SAMPLE_RATE)``: the regions of :class:`BandNeedsContext` at magnitudes 0.02 (band), 0.1
    (backdrop), 2 (context), 3 (decoy) and 4 (sufficient) per bin, random phases (seeded), one
    second at SAMPLE_RATE (one bin a Hz)."""
    spectrum = torch.zeros(SAMPLE_RATE // 2 + 1, dtype=torch.complex128)
    model = BandNeedsContext
    for region, magnitude in ((model.BAND, 0.02), (model.BACKDROP, 0.1), (model.CONTEXT, 2.0),
                              ([model.DECOY], 3.0), ([model.SUFFICIENT], 4.0)):
        bins = torch.tensor(list(region))
        phases = torch.rand(len(bins), generator=torch.Generator().manual_seed(len(bins)), dtype=torch.float64)
        spectrum[bins] = magnitude * SAMPLE_RATE / 2 * torch.exp(2j * torch.pi * phases)
    return torch.fft.irfft(spectrum, n=SAMPLE_RATE).float().unsqueeze(0)


class ScatteredKeyPartials(nn.Module):
    """Class 1 once every one of a few loud key partials is gone while the quiet body of their
    region stays; removing a band that holds them all takes the body too, and the decision stays.

    Regions of the rfft of a reference clip (:func:`scattered_key_partials_clip`, one bin a Hz):
    the six ``KEY`` partials across ``REGION`` (1,000-1,399 Hz), each present where half its
    reference energy is (``k``: the share present); the region's ``body`` (its bins that are
    neither key partials nor ``filler``), present in proportion to its reference energy; and loud
    ``filler`` bins every 8 Hz across the spectrum, which the model reads only as loudness. Logits:
    ``1 + 2 k + 2 (1 - body)`` (the decision), ``2 (1 - k)^4 body`` and ``4`` where less than 0.3%
    of the clip's energy is left (silence). Removing the key partials alone flips the decision;
    removing any contiguous band does not (one that holds every key partial holds the body too),
    so no band, tier or screening finds the answer. The filler makes the key partials a small
    share of the loudest tenth of the bins, spread over several of its runs: only a union of runs
    holds them all. The smallest set holding both claims is the six key partials.
    """

    KEY = (1010, 1080, 1150, 1220, 1290, 1360)
    REGION = range(1000, 1400)
    FILLER = range(8, SAMPLE_RATE // 2, 8)

    def __init__(self, reference: Tensor) -> None:
        super().__init__()
        energy = torch.fft.rfft(reference.double(), dim=-1).abs().square()[0]
        body = [b for b in self.REGION if b not in self.KEY and b not in self.FILLER]
        self.register_buffer("reference", energy)
        self.register_buffer("body", torch.tensor(body))

    def forward(self, x: Tensor) -> Tensor:
        energy = torch.fft.rfft(x.double(), dim=-1).abs().square()
        key = list(self.KEY)
        k = (energy[:, key] >= 0.5 * self.reference[key]).double().mean(dim=1)
        body = (energy[:, self.body].sum(dim=1) / self.reference[self.body].sum()).clamp(max=1.0)
        silence = (energy.sum(dim=1) < 0.003 * self.reference.sum()).double()
        logits = [1 + 2 * k + 2 * (1 - body), 2 * (1 - k) ** 4 * body, 4 * silence]
        return torch.stack(logits, dim=1).float()


def scattered_key_partials_clip() -> Tensor:
    """``(1, SAMPLE_RATE)``: the regions of :class:`ScatteredKeyPartials` at magnitudes 1 (body),
    1.5 (filler) and 3 (key partials) per bin, random phases (seeded), one second at SAMPLE_RATE."""
    model = ScatteredKeyPartials
    magnitude = torch.zeros(SAMPLE_RATE // 2 + 1, dtype=torch.float64)
    magnitude[list(model.REGION)] = 1.0
    magnitude[list(model.FILLER)] = 1.5
    magnitude[list(model.KEY)] = 3.0
    phases = torch.rand(magnitude.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spectrum = torch.polar(magnitude * SAMPLE_RATE / 2, 2 * torch.pi * phases)
    return torch.fft.irfft(spectrum, n=SAMPLE_RATE).float().unsqueeze(0)
