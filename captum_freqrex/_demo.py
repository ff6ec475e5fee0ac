"""A synthetic, self-contained demo: a known-answer classifier and a clip it is explained on.

Used by ``freqrex demo`` when the example-model zoo is not installed. The classifier names the
loudest of three notes (A4 440 Hz, C5 523 Hz, E5 659 Hz) from the spectrum, or "none"; so the
frequencies that cause its decision are known by construction and the demo's result can be checked
by ear and by eye.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

SAMPLE_RATE = 16000
NOTES_HZ = (440.0, 523.0, 659.0)
CLASS_NAMES = ("A4", "C5", "E5", "none")


class NoteClassifier(nn.Module):
    """Logits ``(B, 4)``: the magnitude near each note (a 10 Hz band), and a constant for "none"."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, floor: float = 0.02) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.class_names = CLASS_NAMES
        self.floor = floor

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-1]
        spectrum = torch.fft.rfft(x).abs() / (length / 2)
        freqs = torch.fft.rfftfreq(length, 1.0 / self.sample_rate).to(x.device)
        scores = [spectrum[:, (freqs - f).abs() <= 5.0].max(dim=1).values for f in NOTES_HZ]
        scores.append(torch.full_like(scores[0], self.floor))
        return 20.0 * torch.stack(scores, dim=1)


def demo_clip(seconds: float = 3.0, seed: int = 0) -> Tensor:
    """A chord (A4 loud, C5 and E5 softer) with a low hum, a high whistle and noise, ``(T,)``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    parts = [(0.5, 440.0), (0.3, 523.0), (0.2, 659.0), (0.4, 60.0), (0.2, 3000.0)]
    clip = sum(a * torch.sin(2 * torch.pi * f * t) for a, f in parts)
    return clip + 0.05 * torch.randn(t.shape[0], generator=g)


def demo_model_and_clip() -> Tuple[nn.Module, Tensor, Tuple[str, ...]]:
    r"""The synthetic demo: a note classifier whose causes are known, and a chord to explain.

    The classifier names the loudest of three notes, A4 (440 Hz), C5 (523 Hz) and E5 (659 Hz), from
    the rfft magnitude within 5 Hz of each, or "none" when all are quiet. The clip is 3 s at
    16 kHz: A4 loud, C5 and E5 softer, a 60 Hz hum, a 3 kHz whistle and seeded noise.

    Returns:
        tuple: ``(model, clip, class_names)``: an ``nn.Module`` in eval mode mapping ``(B, T)``
        waveforms to ``(B, 4)`` logits, with ``sample_rate`` (16000) and ``class_names`` attributes; the clip,
        ``(48000,)``; the class names ``("A4", "C5", "E5", "none")``.
    """
    return NoteClassifier().eval(), demo_clip(), CLASS_NAMES
