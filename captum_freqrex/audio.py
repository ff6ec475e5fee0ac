"""Audio I/O around the core: reading clips for a model, writing explanations as WAV files.

Uses ``soundfile`` for reading and writing (WAV, FLAC, OGG) and ``torchaudio.functional.resample``
for resampling. Neither is imported by the core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from captum_freqrex._core.explanation import Explanation

__all__ = [
    "AudioError",
    "LoadedAudio",
    "MAX_PEAK",
    "fit_length",
    "load_audio",
    "noise_like",
    "save_wav",
    "save_explanation_wavs",
]

#: Largest peak amplitude :func:`load_audio` accepts (120 dB above full scale, where full scale is
#: 1.0). Float files can hold any value; one far beyond this is not a waveform the way a model
#: expects one (e.g. samples written unscaled) and its spectrum can overflow float32 in a model.
MAX_PEAK = 1e6


class AudioError(ValueError):
    """A clip that cannot be used: missing, unreadable, empty, silent or of absurd amplitude."""


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


def fit_length(waveform: Tensor, num_samples: int, sample_rate: int) -> Tuple[Tensor, List[str]]:
    r"""Crop (from the start) or zero-pad (at the end) ``(..., time)`` to ``num_samples``.

    Args:
        waveform (Tensor): ``(..., time)`` waveform.
        num_samples (int): The wanted length in samples.
        sample_rate (int): Its sample rate in Hz (for the note only).

    Returns:
        tuple: The ``(..., num_samples)`` waveform and a list with a note on what was done (empty
        when the length already fits).
    """
    length = waveform.shape[-1]
    if length == num_samples:
        return waveform, []
    seconds, wanted = length / sample_rate, num_samples / sample_rate
    if length > num_samples:
        return waveform[..., :num_samples], [f"cropped {seconds:.2f} s to the model's {wanted:.2f} s"]
    padded = torch.nn.functional.pad(waveform, (0, num_samples - length))
    return padded, [f"zero-padded {seconds:.2f} s to the model's {wanted:.2f} s"]


def load_audio(
    path: str,
    sample_rate: Optional[int] = None,
    num_samples: Optional[int] = None,
    *,
    allow_silent: bool = False,
) -> LoadedAudio:
    r"""Read a clip and fit it to a model: mono, resampled, cropped or zero-padded.

    Args:
        path (str): A WAV, FLAC or OGG file.
        sample_rate (int, optional): The model's rate in Hz. Default: the file's rate.
        num_samples (int, optional): The model's clip length in samples; longer clips are cropped
                    (from the start), shorter ones zero-padded at the end. Default: the file's length.
        allow_silent (bool, optional): Accept an all-zero clip (e.g. a baseline file) instead of
                    raising. Default: False

    Returns:
        LoadedAudio: The waveform and notes on what was changed.

    Raises:
        AudioError: When the file is missing, unreadable, empty, holds NaN or Inf, has a peak
                    amplitude above :data:`MAX_PEAK`, or (unless ``allow_silent``) is silent.
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
    if not torch.isfinite(waveform).all():
        raise AudioError(f"{path} contains NaN or Inf samples")
    peak = float(waveform.abs().max())
    if peak > MAX_PEAK:
        raise AudioError(
            f"{path} has peak amplitude {peak:.3g}, which is not a waveform in a sane range (full "
            f"scale is 1.0; at most {MAX_PEAK:.0e} is accepted): normalise it, e.g. divide by its peak"
        )
    if waveform.shape[0] > 1:
        notes.append(f"mixed {waveform.shape[0]} channels down to mono")
    waveform = waveform.mean(dim=0)
    if sample_rate is not None and rate != sample_rate:
        waveform = resample(waveform, rate, sample_rate)
        notes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
        rate = sample_rate
    if num_samples is not None:
        waveform, fitted = fit_length(waveform, num_samples, int(rate))
        notes += fitted
    if not allow_silent and waveform.abs().max() == 0:
        raise AudioError(f"{path} is silent: there is nothing to explain")
    return LoadedAudio(waveform.float(), int(rate), notes)


def noise_like(
    waveform: Tensor,
    color: str = "white",
    level_db: float = -30.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Seeded Gaussian noise shaped like ``waveform`` at a level relative to its RMS.

    Meant as a baseline: the frequencies an explanation removes are replaced by this noise instead
    of by silence.

    Args:
        waveform (Tensor): ``(..., time)`` reference waveform (its shape, dtype, device and RMS).
        color (str, optional): ``"white"`` (flat power spectrum) or ``"pink"`` (power falling as
                    1/f, 3 dB per octave; no DC). Default: ``"white"``
        level_db (float, optional): RMS of the noise relative to the RMS of ``waveform``, in dB
                    (over the whole tensor). Default: -30.0
        generator (torch.Generator, optional): Source of randomness; the same seed gives the same
                    noise. Default: None (torch's global generator)

    Returns:
        Tensor: ``(..., time)`` noise, of RMS ``rms(waveform) * 10 ** (level_db / 20)``.
    """
    if color not in ("white", "pink"):
        raise ValueError(f"color must be 'white' or 'pink', got {color!r}")
    reference = waveform.detach().float()
    noise = torch.randn(reference.shape, generator=generator, dtype=torch.float32)
    if color == "pink":
        length = reference.shape[-1]
        bins = torch.arange(length // 2 + 1, dtype=torch.float32)
        gain = torch.where(bins > 0, bins.clamp(min=1.0).rsqrt(), torch.zeros(()))
        noise = torch.fft.irfft(torch.fft.rfft(noise) * gain, n=length)
    rms = reference.pow(2).mean().sqrt()
    scale = rms * 10.0 ** (level_db / 20.0) / noise.pow(2).mean().sqrt().clamp(min=1e-30)
    return (noise * scale).to(dtype=waveform.dtype, device=waveform.device)


def save_wav(path: str, waveform: Tensor, sample_rate: int, *, overwrite: bool = True) -> str:
    r"""Write ``(time,)`` or ``(channels, time)`` as a 32-bit float WAV (no clipping).

    Args:
        path (str): The file to write.
        waveform (Tensor): ``(time,)`` or ``(channels, time)`` samples.
        sample_rate (int): Sample rate in Hz.
        overwrite (bool, optional): Replace an existing file; False raises ``FileExistsError``
                    instead (the file is created exclusively). Default: True

    Returns:
        str: The path.
    """
    data = waveform.detach().cpu().float()
    data = data.T if data.dim() == 2 else data
    with open(path, "wb" if overwrite else "xb") as handle:
        _soundfile().write(handle, data.numpy(), int(sample_rate), subtype="FLOAT", format="WAV")
    return path


def save_explanation_wavs(
    explanation: "Explanation", directory: str, sample_rate: int, *, overwrite: bool = True
) -> Dict[str, str]:
    r"""Write the original and every set of an explanation, kept alone and removed, as WAV files.

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        directory (str): Output folder, created if missing.
        sample_rate (int): Sample rate in Hz.
        overwrite (bool, optional): Replace existing files; False raises ``FileExistsError`` on the
                    first file that exists. Default: True

    Returns:
        dict: ``{"original": path, "sufficient": path, "sufficient_removed": path, ...}``.
    """
    os.makedirs(directory, exist_ok=True)
    original = explanation.original_waveform()
    written = {"original": save_wav(os.path.join(directory, "original.wav"), original, sample_rate, overwrite=overwrite)}
    for name, chosen in explanation.sets.items():
        if chosen is None:
            continue
        for removed in (False, True):
            key = f"{name}_removed" if removed else name
            wave = explanation.waveform(name, removed=removed)
            written[key] = save_wav(os.path.join(directory, f"{key}.wav"), wave, sample_rate, overwrite=overwrite)
    return written
