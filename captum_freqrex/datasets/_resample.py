"""Band-limited resampling for the builders, on numpy arrays (see :func:`captum_freqrex.audio.resample`)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resample"]


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    r"""Resample a 1-D float waveform (band-limited sinc interpolation: torchaudio's resampler when it
    imports, the same filter in plain torch otherwise).

    Args:
        wave (numpy.ndarray): ``(T,)`` float waveform.
        orig_rate (int): Its sample rate in Hz.
        new_rate (int): The wanted sample rate in Hz.

    Returns:
        numpy.ndarray: ``(T * new_rate / orig_rate,)`` float32.
    """
    if orig_rate == new_rate or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    from captum_freqrex.audio import resample as _resample

    out = _resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), int(orig_rate), int(new_rate))
    return out.numpy()
