"""What the zoo hands out: a loaded model with its metadata, and a sample clip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from torch import Tensor, nn

__all__ = ["ZooModel", "SampleClip"]


@dataclass(frozen=True)
class ZooModel:
    r"""A zoo model ready to explain.

    Attributes:
        name (str): Zoo name, e.g. "instruments".
        model (nn.Module): In eval mode, parameters frozen; maps ``(B, num_samples)`` float32
                    waveforms at ``sample_rate`` to ``(B, len(class_names))`` scores (logits, or
                    probabilities for "silero-vad").
        sample_rate (int): Sample rate in Hz the model expects.
        num_samples (int): Clip length in samples the model expects.
        class_names (tuple of str): Name of each output index.
        info (dict): The model card: seed, data recipe, held-out accuracy, inference time,
                    licences, shipped clips.
        pad_short_clips (bool): Whether a clip shorter than ``num_samples`` is zero-padded to it
                    before it is explained (the command line's ``explain`` and ``explain-dataset``).
                    False for a model that takes any length and never saw padding in training
                    ("instruments": its global pooling is length-agnostic, it trains on 4 s crops
                    of 30 s clips): a short clip is explained at its own length, where padding to
                    30 s would make it mostly silence.
    """

    name: str
    model: nn.Module
    sample_rate: int
    num_samples: int
    class_names: Tuple[str, ...]
    info: Dict[str, Any] = field(repr=False, compare=False)
    pad_short_clips: bool = True


@dataclass(frozen=True)
class SampleClip:
    r"""A shipped held-out clip.

    Attributes:
        name (str): Human-readable name with its source.
        waveform (Tensor): ``(T,)`` float32 mono waveform in [-1, 1].
        sample_rate (int): Sample rate in Hz.
        label (str or None): The true class, when known.
        licence (str): Copyright, licence and what was done to the recording.
    """

    name: str
    waveform: Tensor = field(repr=False, compare=False)
    sample_rate: int
    label: Optional[str]
    licence: str = field(repr=False)
