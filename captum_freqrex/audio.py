"""Audio I/O around the core: reading clips for a model, writing explanations as WAV files.

Uses ``soundfile`` for reading and writing (WAV, FLAC, OGG) and ``torchaudio.functional.resample``
for resampling. Neither is imported by the core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:
    from captum_freqrex._core.explanation import Explanation

__all__ = ["AudioError", "LoadedAudio", "load_audio", "save_wav", "save_explanation_wavs"]


class AudioError(ValueError):
    """A clip that cannot be used: missing, unreadable, empty or silent."""


@dataclass
class LoadedAudio:
    r"""A clip prepared for a model.

    Attributes:
        waveform (Tensor): ``(time,)`` mono float32 waveform at ``sample_rate``.
        sample_rate (int): Sample rate in Hz.
        notes (list of str): What was done to fit the model (resampled, mixed down, cropped, padded).
    """

    waveform: Tensor
    sample_rate: int
    notes: List[str] = field(default_factory=list)


def _soundfile():
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover - soundfile is a declared dependency of [audio]
        raise ImportError("audio I/O needs soundfile: pip install soundfile") from error
    return soundfile


def resample(waveform: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    r"""Resample ``(..., time)`` from ``orig_rate`` to ``new_rate`` Hz (band-limited, torchaudio)."""
    if orig_rate == new_rate:
        return waveform
    try:
        from torchaudio.functional import resample as _resample
    except ImportError as error:
        raise ImportError(
            f"resampling {orig_rate} Hz -> {new_rate} Hz needs torchaudio; install it or resample the file"
        ) from error
    return _resample(waveform, orig_rate, new_rate)


def load_audio(
    path: str, sample_rate: Optional[int] = None, num_samples: Optional[int] = None
) -> LoadedAudio:
    r"""Read a clip and fit it to a model: mono, resampled, cropped or zero-padded.

    Args:
        path (str): A WAV, FLAC or OGG file.
        sample_rate (int, optional): The model's rate in Hz. Default: the file's rate.
        num_samples (int, optional): The model's clip length in samples; longer clips are cropped
                    (from the start), shorter ones zero-padded at the end. Default: the file's length.

    Returns:
        LoadedAudio: The waveform and notes on what was changed.
    """
    if not os.path.isfile(path):
        raise AudioError(f"no such audio file: {path}")
    sf = _soundfile()
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError types
        raise AudioError(f"cannot read {path} as audio ({error}); use WAV, FLAC or OGG") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path} holds no samples")
    waveform = torch.from_numpy(data.T.copy())  # (channels, time)
    notes = []
    if waveform.shape[0] > 1:
        notes.append(f"mixed {waveform.shape[0]} channels down to mono")
    waveform = waveform.mean(dim=0)
    if not torch.isfinite(waveform).all():
        raise AudioError(f"{path} contains NaN or Inf samples")
    if sample_rate is not None and rate != sample_rate:
        waveform = resample(waveform, rate, sample_rate)
        notes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
        rate = sample_rate
    if num_samples is not None and waveform.shape[0] != num_samples:
        seconds = waveform.shape[0] / rate
        if waveform.shape[0] > num_samples:
            waveform = waveform[:num_samples]
            notes.append(f"cropped {seconds:.2f} s to the model's {num_samples / rate:.2f} s")
        else:
            waveform = torch.nn.functional.pad(waveform, (0, num_samples - waveform.shape[0]))
            notes.append(f"zero-padded {seconds:.2f} s to the model's {num_samples / rate:.2f} s")
    if waveform.abs().max() == 0:
        raise AudioError(f"{path} is silent: there is nothing to explain")
    return LoadedAudio(waveform.float(), int(rate), notes)


def save_wav(path: str, waveform: Tensor, sample_rate: int) -> str:
    r"""Write ``(time,)`` or ``(channels, time)`` as a 32-bit float WAV (no clipping). Returns the path."""
    data = waveform.detach().cpu().float()
    data = data.T if data.dim() == 2 else data
    _soundfile().write(path, data.numpy(), int(sample_rate), subtype="FLOAT")
    return path


def save_explanation_wavs(explanation: "Explanation", directory: str, sample_rate: int) -> Dict[str, str]:
    r"""Write the original and every set of an explanation, kept alone and removed, as WAV files.

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        directory (str): Output folder, created if missing.
        sample_rate (int): Sample rate in Hz.

    Returns:
        dict: ``{"original": path, "sufficient": path, "sufficient_removed": path, ...}``.
    """
    os.makedirs(directory, exist_ok=True)
    written = {"original": save_wav(os.path.join(directory, "original.wav"), explanation.original_waveform(), sample_rate)}
    for name, chosen in explanation.sets.items():
        if chosen is None:
            continue
        for removed in (False, True):
            key = f"{name}_removed" if removed else name
            wave = explanation.waveform(name, removed=removed)
            written[key] = save_wav(os.path.join(directory, f"{key}.wav"), wave, sample_rate)
    return written
