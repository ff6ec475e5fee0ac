"""Audio I/O around the core: reading clips for a model, writing explanations as WAV files.

Uses ``soundfile`` for reading and writing (WAV, FLAC, OGG) and ``torchaudio.functional.resample``
for resampling, or, where torchaudio cannot be imported (absent, or a CUDA build whose compiled
extensions fail to load on a CPU torch), :func:`sinc_resample`: the same windowed-sinc filter in
torch alone. None of them is imported by the core.
"""

from __future__ import annotations

import math
import operator
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import next_fast_len

if TYPE_CHECKING:
    from captum_freqrex._explanation import Explanation

__all__ = [
    "AudioError",
    "LoadedAudio",
    "MAX_PEAK",
    "fit_length",
    "load_audio",
    "noise_like",
    "BASELINE_KINDS",
    "NOISE_LEVEL_DB",
    "resample",
    "sinc_resample",
    "save_wav",
    "save_explanation_wavs",
    "listening_copy",
    "listening_copy_at",
    "peak_dbfs",
    "LISTEN_PEAK_DBFS",
    "LISTEN_SUFFIX",
    "LISTEN_FLAC_SUFFIX",
    "save_set_listening_copies",
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
        sample_rate (float): Sample rate in Hz; a whole number (WAV headers hold an integer rate).
        notes (list of str): What was done to fit the model (resampled, mixed down, cropped, padded).
        file_rate (int, optional): The file's own sample rate in Hz (listening copies are best
                    written at it). Default: ``sample_rate``
        valid_samples (int, optional): How many leading samples of ``waveform`` come from the file;
                    the rest is zero padding to the model's length. Default: all of them
    """

    waveform: Tensor
    sample_rate: int
    notes: List[str] = field(default_factory=list)
    file_rate: Optional[int] = None
    valid_samples: Optional[int] = None


def _soundfile():
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover - soundfile is a declared dependency of [audio]
        raise ImportError(
            "audio I/O needs soundfile, from the audio extra: pip install 'captum_freqrex[audio]'"
        ) from error
    return soundfile


def resample(waveform: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    r"""Resample ``(..., time)`` from ``orig_rate`` to ``new_rate`` Hz (band-limited).

    Uses ``torchaudio.functional.resample`` when torchaudio imports, otherwise :func:`sinc_resample`
    (the same filter, torch only), so resampling never needs torchaudio's compiled extensions.

    Args:
        waveform (Tensor): ``(..., time)`` float waveform at ``orig_rate``.
        orig_rate (int): Its sample rate in Hz.
        new_rate (int): The wanted sample rate in Hz.

    Returns:
        Tensor: ``(..., ceil(time * new_rate / orig_rate))`` at ``new_rate`` (``waveform`` itself when
        the rates are equal).
    """
    orig_rate, new_rate = _check_rates(orig_rate, new_rate)
    if orig_rate == new_rate:
        return waveform
    torchaudio_resample = _torchaudio_resample()
    if torchaudio_resample is None:
        return sinc_resample(waveform, orig_rate, new_rate)
    return torchaudio_resample(waveform, orig_rate, new_rate)


def _torchaudio_resample() -> Optional[Callable[[Tensor, int, int], Tensor]]:
    """``torchaudio.functional.resample``, or None where torchaudio cannot be imported."""
    try:
        from torchaudio.functional import resample as torchaudio_resample
    except (ImportError, OSError, RuntimeError):
        # ImportError: not installed. OSError / RuntimeError: PyPI's CUDA build on a CPU-only torch,
        # whose compiled extensions fail to load (``import torchaudio`` loads them).
        return None
    return torchaudio_resample


def _check_rates(orig_rate: int, new_rate: int) -> Tuple[int, int]:
    rates = []
    for name, rate in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        try:
            value = operator.index(rate)
        except TypeError:
            # Typed int, but a whole-number float (44100.0) is accepted at run time too.
            if not (isinstance(rate, float) and float(rate).is_integer()):
                raise TypeError(f"{name} must be a whole number of Hz, got {rate!r}") from None
            value = int(rate)
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value} Hz")
        rates.append(value)
    return rates[0], rates[1]


#: Most elements (signals x outputs x taps) :func:`sinc_resample` gathers at once (16 MB in float32).
_RESAMPLE_BLOCK = 1 << 22


def sinc_resample(
    waveform: Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> Tensor:
    r"""Band-limited resampling of ``(..., time)`` by windowed-sinc interpolation, in torch alone.

    The filter is torchaudio's default (``sinc_interp_hann``): a sinc low-pass at ``rolloff`` times
    the lower of the two Nyquist frequencies, Hann-windowed over ``lowpass_filter_width`` zero
    crossings on each side, the signal zero-padded at both ends; the result matches
    ``torchaudio.functional.resample`` up to rounding. Output sample ``n`` sits at input position
    ``n * orig_rate / new_rate``; with ``L = orig_rate / g`` and ``M = new_rate / g`` (``g`` their
    gcd) there are only ``M`` distinct fractional positions, so the weights are one ``(M, taps)``
    table (polyphase), computed once in float64. The outputs are gathered and weighted in blocks of
    bounded memory, on the input's device, with no Python loop per sample.

    Args:
        waveform (Tensor): ``(..., time)`` float waveform at ``orig_rate``.
        orig_rate (int): Its sample rate in Hz.
        new_rate (int): The wanted sample rate in Hz.
        lowpass_filter_width (int, optional): Zero crossings of the sinc kept on each side (sharper
                    cutoff, more taps). Default: 6
        rolloff (float, optional): Cutoff as a fraction of the lower Nyquist frequency, in (0, 1].
                    Default: 0.99

    Returns:
        Tensor: ``(..., ceil(time * new_rate / orig_rate))`` at ``new_rate``, with the input's dtype
        and device (``waveform`` itself when the rates are equal).

    Raises:
        TypeError: When ``waveform`` is not floating point or a rate is not a whole number.
        ValueError: When a rate, ``lowpass_filter_width`` or ``rolloff`` is out of range.
    """
    if not isinstance(waveform, Tensor) or not waveform.is_floating_point():
        raise TypeError(f"waveform must be a floating-point tensor, got {getattr(waveform, 'dtype', type(waveform))}")
    if waveform.dim() == 0:
        raise ValueError("waveform must have a time dimension, got a 0-d tensor")
    orig_rate, new_rate = _check_rates(orig_rate, new_rate)
    if lowpass_filter_width < 1:
        raise ValueError(f"lowpass_filter_width must be >= 1, got {lowpass_filter_width}")
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must lie in (0, 1], got {rolloff}")
    if orig_rate == new_rate:
        return waveform
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    length = waveform.shape[-1]
    n_out = -(-new * length // orig)  # ceil, in integers
    if waveform.numel() == 0:
        return waveform.new_zeros(waveform.shape[:-1] + (n_out,))
    signals = waveform.reshape(-1, length)
    device = waveform.device
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)  # taps on each side, in input samples
    taps = torch.arange(-width, width + 1)
    # Output n = f * M + p sits at input position f * L + (p * L) // M + frac[p]. The weights are
    # computed on the CPU in float64 (not every device has it), then moved.
    phase = torch.arange(new)
    offset = (phase * orig // new).to(device)
    frac = (phase * orig % new).double() / new
    zeros = ((taps.double()[None, :] - frac[:, None]) * (cutoff / orig)).clamp(
        -lowpass_filter_width, lowpass_filter_width
    )  # distance to the output position in zero crossings of the sinc
    window = torch.cos(zeros * (math.pi / (2 * lowpass_filter_width))) ** 2
    weights = (torch.sinc(zeros) * window * (cutoff / orig)).to(device, waveform.dtype)  # (M, taps)
    # Frame f holds outputs f * M .. f * M + M - 1; the right pad covers the last frame's phases.
    padded = torch.nn.functional.pad(signals, (width, width + orig))
    windows = padded.unfold(-1, taps.numel(), 1)  # (signals, positions, taps), a view
    frames = -(-n_out // new)
    block = max(1, _RESAMPLE_BLOCK // (signals.shape[0] * new * taps.numel()))
    parts = []
    for start in range(0, frames, block):  # a few blocks per clip, bounding the gathered memory
        f = torch.arange(start, min(start + block, frames), device=device)
        gathered = windows[:, f[:, None] * orig + offset]  # (signals, frames, M, taps)
        parts.append(torch.einsum("sfmk,mk->sfm", gathered, weights).flatten(1))
    out = torch.cat(parts, dim=1)[:, :n_out]
    return out.reshape(waveform.shape[:-1] + (n_out,))


def fit_length(
    waveform: Tensor, num_samples: int, sample_rate: int, pad_short: bool = True
) -> Tuple[Tensor, List[str]]:
    r"""Crop (from the start) or zero-pad (at the end) ``(..., time)`` to ``num_samples``.

    Args:
        waveform (Tensor): ``(..., time)`` waveform.
        num_samples (int): The wanted length in samples.
        sample_rate (int): Its sample rate in Hz (for the note only).
        pad_short (bool, optional): Zero-pad a shorter waveform to ``num_samples``. False (a model
                    that takes any length, such as the zoo's instruments model) keeps it at its own
                    length, padded only to the next length the FFT takes fast
                    (:func:`~captum_freqrex.next_fast_len`, a few milliseconds at most). Default: True

    Returns:
        tuple: The fitted waveform and a list with a note on what was done (empty when the length
        already fits).
    """
    length = waveform.shape[-1]
    if length == num_samples:
        return waveform, []
    seconds, wanted = length / sample_rate, num_samples / sample_rate
    if length > num_samples:
        return waveform[..., :num_samples], [f"cropped {seconds:.2f} s to the model's {wanted:.2f} s"]
    if not pad_short:
        note = f"kept at its own {seconds:.2f} s (the model takes any length up to {wanted:.2f} s)"
        fast = next_fast_len(length)
        if fast == length:
            return waveform, [note]
        padded = torch.nn.functional.pad(waveform, (0, fast - length))
        return padded, [f"{note}, zero-padded by {fast - length} samples to {fast}, a length the FFT takes fast"]
    padded = torch.nn.functional.pad(waveform, (0, num_samples - length))
    return padded, [f"zero-padded {seconds:.2f} s to the model's {wanted:.2f} s"]


def load_audio(
    path: str,
    sample_rate: Optional[int] = None,
    num_samples: Optional[int] = None,
    *,
    allow_silent: bool = False,
    channel: Optional[int] = None,
    pad_short: bool = True,
) -> LoadedAudio:
    r"""Read a clip and fit it to a model: mono, resampled, cropped or zero-padded.

    Args:
        path (str): A WAV, FLAC or OGG file.
        sample_rate (int, optional): The model's rate in Hz. Default: the file's rate.
        num_samples (int, optional): The model's clip length in samples; longer clips are cropped
                    (from the start), shorter ones zero-padded at the end. Default: the file's length.
        allow_silent (bool, optional): Accept an all-zero clip (e.g. a baseline file) instead of
                    raising. Default: False
        channel (int, optional): Read only this channel (0-based) instead of mixing all of them
                    down to mono. Default: None
        pad_short (bool, optional): Zero-pad a clip shorter than ``num_samples`` to it; False keeps
                    it at its own length (see :func:`fit_length`). Default: True

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
    if channel is not None:
        if not 0 <= channel < waveform.shape[0]:
            raise AudioError(f"{path} has {waveform.shape[0]} channel(s): there is no channel {channel + 1}")
        if waveform.shape[0] > 1:
            notes.append(f"channel {channel + 1} of {waveform.shape[0]}")
        waveform = waveform[channel]
    else:
        if waveform.shape[0] > 1:
            notes.append(f"mixed {waveform.shape[0]} channels down to mono")
        waveform = waveform.mean(dim=0)
    file_rate = int(rate)
    if sample_rate is not None and rate != sample_rate:
        waveform = resample(waveform, rate, sample_rate)
        notes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
        rate = sample_rate
    valid = waveform.shape[-1]
    if num_samples is not None:
        waveform, fitted = fit_length(waveform, num_samples, int(rate), pad_short)
        notes += fitted
    if not allow_silent and waveform.abs().max() == 0:
        where = path if channel is None else f"{path} (channel {channel + 1})"
        raise AudioError(f"{where} is silent: there is nothing to explain")
    return LoadedAudio(waveform.float(), int(rate), notes, file_rate, min(valid, waveform.shape[-1]))


#: The generated baselines of ``freqrex explain`` and ``explain-dataset`` (anything else is a waveform).
BASELINE_KINDS = ("silence", "noise", "pink")

#: Level of the ``noise`` and ``pink`` baselines: their RMS relative to the clip's RMS, in dB.
NOISE_LEVEL_DB = -30.0


def noise_like(
    waveform: Tensor,
    color: str = "white",
    level_db: float = NOISE_LEVEL_DB,
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


def save_wav(
    path: str, waveform: Tensor, sample_rate: float, *, overwrite: bool = True, subtype: str = "FLOAT",
    format: str = "WAV",
) -> str:
    r"""Write ``(time,)`` or ``(channels, time)`` as a WAV file, 32-bit float by default (no clipping).

    Args:
        path (str): The file to write.
        waveform (Tensor): ``(time,)`` or ``(channels, time)`` samples.
        sample_rate (float): Sample rate in Hz, a whole number (WAV headers hold an integer).
        overwrite (bool, optional): Replace an existing file; False raises ``FileExistsError``
                    instead (the file is created exclusively). Default: True
        subtype (str, optional): A ``soundfile`` WAV subtype: ``"FLOAT"`` keeps any level,
                    ``"PCM_16"`` clips at full scale (for waveforms already within it).
                    Default: ``"FLOAT"``
        format (str, optional): A ``soundfile`` format: ``"WAV"``, or ``"FLAC"`` (lossless and
                    smaller, integer subtypes only, e.g. ``"PCM_16"``). Default: ``"WAV"``

    Returns:
        str: The path.
    """
    if not float(sample_rate).is_integer() or sample_rate <= 0:
        raise ValueError(f"a WAV file needs a positive whole-number sample rate, got {sample_rate}")
    data = waveform.detach().cpu().float()
    data = data.T if data.dim() == 2 else data
    with open(path, "wb" if overwrite else "xb") as handle:
        _soundfile().write(handle, data.numpy(), int(sample_rate), subtype=subtype, format=format)
    return path


#: Peak level of the listening copies :func:`save_explanation_wavs` writes, in dB full scale.
LISTEN_PEAK_DBFS = -1.0

#: File-name ending of a listening copy: ``sufficient.wav`` -> ``sufficient.listen.wav``.
LISTEN_SUFFIX = ".listen.wav"
#: File-name ending of a compact listening copy (:func:`save_set_listening_copies`), 16-bit FLAC.
LISTEN_FLAC_SUFFIX = ".listen.flac"


def peak_dbfs(waveform: Tensor) -> float:
    r"""Peak amplitude of ``waveform`` in dB full scale (0 dBFS is a peak of 1.0; -inf for silence)."""
    peak = float(waveform.detach().abs().max()) if waveform.numel() else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def listening_copy(waveform: Tensor, peak_db: float = LISTEN_PEAK_DBFS) -> Tuple[Tensor, float]:
    r"""``waveform`` scaled so that its peak sits at ``peak_db`` dBFS, for listening.

    A set of frequencies kept alone is often far quieter than the clip (a few low bins of a piano
    clip peak near -60 dBFS, below what a listener hears); its listening copy is the same sound,
    louder. Silence stays silence.

    Args:
        waveform (Tensor): ``(..., time)`` samples.
        peak_db (float, optional): The wanted peak in dBFS. Default: -1.0

    Returns:
        tuple: The scaled waveform and the gain applied in dB (0.0 for silence).
    """
    level = peak_dbfs(waveform)
    if not math.isfinite(level):
        return waveform.detach().clone(), 0.0
    gain_db = peak_db - level
    return waveform.detach() * 10.0 ** (gain_db / 20.0), gain_db


def single_waveform(wave: Union[Tensor, Tuple[Tensor, ...]]) -> Tensor:
    """A waveform of a single-tensor explanation, as one Tensor (what the WAV, plot and report helpers take).

    Raises:
        ValueError: For the tuple of waveforms of a tuple-input explanation.
    """
    if not isinstance(wave, Tensor):
        raise ValueError(
            f"this explanation is of a tuple of {len(wave)} inputs; WAV files, plots and reports are "
            "made for explanations of one waveform tensor: explain each input on its own"
        )
    return wave


def save_explanation_wavs(
    explanation: "Explanation",
    directory: str,
    sample_rate: float,
    *,
    overwrite: bool = True,
    listening_copies: bool = True,
    listen_rate: Optional[int] = None,
) -> Dict[str, str]:
    r"""Write the original and every set of an explanation, kept alone and removed, as WAV files.

    Two files per set signal:

    * ``NAME.wav`` (``sufficient.wav``, ``sufficient_removed.wav``, ...): **true level**, 32-bit
      float, exactly the waveform the model was given when the set was certified. Use these to
      re-query a model or measure levels. A set kept alone can be very quiet.
    * ``NAME.listen.wav``: a **listening copy**, the same waveform peak-normalised to
      :data:`LISTEN_PEAK_DBFS` (-1 dBFS) as 16-bit PCM, so that a quiet set can be heard. Louder than
      in the clip: not for measuring.

    ``original.wav`` (the clip as resynthesised from its spectrum) is written at its true level only.

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        directory (str): Output folder, created if missing.
        sample_rate (int): Sample rate in Hz.
        overwrite (bool, optional): Replace existing files; False raises ``FileExistsError`` on the
                    first file that exists. Default: True
        listening_copies (bool, optional): Also write the ``*.listen.wav`` copies. Default: True
        listen_rate (int, optional): Rate of the listening copies in Hz, e.g. the rate of the file
                    the clip was read from (resampled from ``sample_rate``). Default: ``sample_rate``

    Returns:
        dict: ``{"original": path, "sufficient": path, "sufficient_listen": path,
        "sufficient_removed": path, "sufficient_removed_listen": path, ...}`` for the sets found,
        the alternative sufficient sets of ``explain(..., n_explanations=k)`` included
        (``alternative_1.wav``, ...), and with ``explain(..., mode="necessary")`` the clip with
        :attr:`Explanation.manipulation` removed (``manipulation_removed.wav``).
    """
    os.makedirs(directory, exist_ok=True)
    original = single_waveform(explanation.original_waveform())
    written = {"original": save_wav(os.path.join(directory, "original.wav"), original, sample_rate, overwrite=overwrite)}
    # Each set alone and removed; the necessary-mode answer removed only (the manipulated clip).
    signals = [(name, removed) for name in explanation.named_sets for removed in (False, True)]
    signals += [("manipulation", True)] if explanation.manipulation is not None else []
    for name, removed in signals:
        key = f"{name}_removed" if removed else name
        wave = single_waveform(explanation.waveform(name, removed=removed))
        written[key] = save_wav(os.path.join(directory, f"{key}.wav"), wave, sample_rate, overwrite=overwrite)
        if listening_copies:
            path = os.path.join(directory, key + LISTEN_SUFFIX)
            written[f"{key}_listen"] = _save_listening_copy(path, wave, sample_rate, listen_rate, overwrite, "WAV")
    return written


def save_set_listening_copies(
    explanation: "Explanation",
    directory: str,
    sample_rate: float,
    *,
    overwrite: bool = True,
    listen_rate: Optional[int] = None,
) -> Dict[str, str]:
    r"""Write each set of an explanation kept alone as a compact listening copy, ``NAME.listen.flac``.

    The copy is the set's waveform peak-normalised to :data:`LISTEN_PEAK_DBFS` (-1 dBFS), as 16-bit
    FLAC: the waveform of :func:`save_explanation_wavs`'s ``NAME.listen.wav`` (libsndfile rounds to
    16 bits for FLAC within one step of its WAV rounding), losslessly compressed. No true-level files, no ``original.wav`` and no removals: what a long clip needs to
    be heard in little space (a 10-minute clip's three sets took 23 MB instead of 269 MB of WAVs).

    Args:
        explanation (Explanation): From :meth:`FreqReX.explain` (single-tensor input).
        directory (str): Output folder, created if missing.
        sample_rate (int): Sample rate in Hz.
        overwrite (bool, optional): Replace existing files; False raises ``FileExistsError`` on the
                    first file that exists. Default: True
        listen_rate (int, optional): Rate of the copies in Hz. Default: ``sample_rate``

    Returns:
        dict: ``{"sufficient_listen": path, ...}`` for the sets found, the alternative sufficient
        sets included (``alternative_1.listen.flac``, ...).
    """
    os.makedirs(directory, exist_ok=True)
    written = {}
    for name in explanation.named_sets:
        wave = single_waveform(explanation.waveform(name))
        path = os.path.join(directory, name + LISTEN_FLAC_SUFFIX)
        written[f"{name}_listen"] = _save_listening_copy(path, wave, sample_rate, listen_rate, overwrite, "FLAC")
    return written


def _save_listening_copy(
    path: str, waveform: Tensor, sample_rate: float, listen_rate: Optional[float], overwrite: bool, format: str
) -> str:
    # The one way both writers make a listening copy: resampled, peak-normalised, 16-bit.
    loud, _, rate = listening_copy_at(waveform, sample_rate, listen_rate)
    return save_wav(path, loud, rate, overwrite=overwrite, subtype="PCM_16", format=format)


def listening_copy_at(
    waveform: Tensor, sample_rate: float, listen_rate: Optional[float] = None
) -> Tuple[Tensor, float, int]:
    r"""A listening copy (:func:`listening_copy`) resampled to ``listen_rate``.

    Resampled first, then peak-normalised, so that the copy's peak is exactly the target.

    Args:
        waveform (Tensor): ``(time,)`` or ``(channels, time)`` at ``sample_rate``.
        sample_rate (float): Its rate in Hz.
        listen_rate (float, optional): The copy's rate in Hz. Default: ``sample_rate``

    Returns:
        tuple: The copy, the gain applied in dB, and the copy's rate in Hz (an int).
    """
    rate = int(sample_rate)
    if listen_rate is not None and int(listen_rate) != rate:
        waveform = resample(waveform, rate, int(listen_rate))
        rate = int(listen_rate)
    loud, gain = listening_copy(waveform)
    return loud, gain, rate
