"""Known-answer models whose causal frequencies are known by construction."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

SAMPLE_RATE = 8000


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
