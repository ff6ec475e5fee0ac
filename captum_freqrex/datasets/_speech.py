"""Spoken-language identification on the Asterisk core sound prompts (five languages).

Each language of ``asterisk-core-sounds-{en,es,fr,it,ru}-wav`` is a set of IVR prompts recorded
by one professional voice (8 kHz, 16-bit mono; CC-BY-SA 3.0 for en, es, fr and CC-BY 3.0 for it,
ru: see :data:`SPEECH_LICENCES`). Prompts are split by
their relative path (e.g. ``digits/7.wav``), hashed: a held-out prompt is held out in *every*
language, so the test set holds no recording, and no translation of a sentence, that training saw.
Clips are resampled to the target rate, normalised to -20 dBFS RMS and fitted to a fixed length:
training cuts every prompt into consecutive clips (the last one kept when it has at least 1 s),
testing keeps the first clip of each prompt; short prompts are zero-padded at a random offset.

Note: one voice per language, so the task cannot separate language from speaker.
"""

from __future__ import annotations

import glob
import os
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from captum_freqrex.datasets._debian import require_packages
from captum_freqrex.datasets._resample import resample
from captum_freqrex.datasets._store import save_split, to_int16, write_manifest

__all__ = ["SPEECH_LANGUAGES", "SPEECH_LICENCES", "ASTERISK_ROOT", "build_speech", "speech_files", "is_test_prompt"]

#: Folder of the Asterisk sound packages.
ASTERISK_ROOT = "/usr/share/asterisk/sounds"

#: Language code -> folder prefix under :data:`ASTERISK_ROOT` (the class names, in this order).
SPEECH_LANGUAGES: Dict[str, str] = {"en": "en_", "es": "es_", "fr": "fr_", "it": "it_", "ru": "ru_"}

_TARGET_RMS_DB = -20.0

#: Voice, copyright and licence of each language, from /usr/share/doc/asterisk-core-sounds-*-wav/copyright.
SPEECH_LICENCES: Dict[str, str] = {
    "en": "Asterisk core sounds (en), recorded by Allison Smith, financed by Digium, Inc.; CC-BY-SA 3.0",
    "es": "Asterisk core sounds (es), recorded by Allison Smith, financed by Digium, Inc.; CC-BY-SA 3.0",
    "fr": "Asterisk core sounds (fr), 2006-2008 June Wallack, translated by Clod Patry, Kristopher Lalletti and June Wallack; CC-BY-SA 3.0",
    "it": "Asterisk core sounds (it), 2012 Carlo Flora, translated by Silvia Petrin; CC-BY 3.0",
    "ru": "Asterisk core sounds (ru), 2010 Maxim Topal (ivrvoice.ru); CC-BY 3.0",
}


def _language_dir(root: str, code: str) -> Optional[str]:
    dirs = sorted(d for d in glob.glob(os.path.join(root, SPEECH_LANGUAGES[code] + "*")) if os.path.isdir(d))
    return dirs[0] if dirs else None


def _check(root: str, languages: Sequence[str]) -> None:
    needs = {}
    for code in languages:
        folder = _language_dir(root, code)
        needs[f"asterisk-core-sounds-{code}-wav"] = [folder or os.path.join(root, SPEECH_LANGUAGES[code] + "*")]
    require_packages("build_speech", needs)


def is_test_prompt(relative_path: str, test_fraction: float = 0.2) -> bool:
    r"""Whether a prompt is held out (a stable hash of its path, the same in every language).

    Args:
        relative_path (str): The prompt's path relative to its language folder, e.g. "digits/7.wav".
        test_fraction (float, optional): Share of prompts held out. Default: 0.2

    Returns:
        bool: True for a held-out prompt.
    """
    return (zlib.crc32(relative_path.encode()) % 1000) < int(round(test_fraction * 1000))


def speech_files(root: str = ASTERISK_ROOT, languages: Optional[Sequence[str]] = None) -> List[Tuple[str, str, str]]:
    r"""All prompt files as ``(language, relative_path, absolute_path)``, sorted.

    Args:
        root (str, optional): Folder of the Asterisk sounds. Default: /usr/share/asterisk/sounds
        languages (sequence of str, optional): Language codes. Default: all five

    Returns:
        list of tuple: One entry per WAV file.

    Raises:
        DebianPackageMissing: When a language's package is not installed.
    """
    codes = list(languages) if languages is not None else list(SPEECH_LANGUAGES)
    _check(root, codes)
    out = []
    for code in codes:
        folder = _language_dir(root, code)
        assert folder is not None, "_check raised for a language without its folder"
        for path in sorted(glob.glob(os.path.join(folder, "**", "*.wav"), recursive=True)):
            out.append((code, os.path.relpath(path, folder), path))
    return out


def _read(path: str, sample_rate: int) -> np.ndarray:
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = resample(data.mean(axis=1), rate, sample_rate)
    rms = float(np.sqrt(np.mean(wave**2))) if wave.size else 0.0
    return wave * (10 ** (_TARGET_RMS_DB / 20) / rms) if rms > 1e-6 else wave


def _fit(piece: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(num_samples, dtype=np.float32)
    offset = int(rng.integers(0, num_samples - piece.shape[0] + 1))
    out[offset : offset + piece.shape[0]] = piece
    return out


def build_speech(
    out_dir: str,
    clip_seconds: float = 3.0,
    sample_rate: int = 16000,
    test_fraction: float = 0.2,
    seed: int = 0,
    languages: Optional[Sequence[str]] = None,
    max_files_per_language: Optional[int] = None,
    root: str = ASTERISK_ROOT,
    verbose: bool = False,
) -> str:
    r"""Build the spoken-language dataset to ``<out_dir>/speech``.

    Needs the Debian packages ``asterisk-core-sounds-{en,es,fr,it,ru}-wav``; nothing is downloaded.

    Args:
        out_dir (str): Root folder of the built datasets.
        clip_seconds (float, optional): Clip length. Default: 3.0
        sample_rate (int, optional): Target sample rate (the prompts are 8 kHz). Default: 16000
        test_fraction (float, optional): Share of prompts held out. Default: 0.2
        seed (int, optional): Seed of the padding offsets. Default: 0
        languages (sequence of str, optional): Language codes (the classes, in this order).
                    Default: en, es, fr, it, ru
        max_files_per_language (int, optional): Use only the first prompts of each split and
                    language (for quick checks). Default: None (all)
        root (str, optional): Folder of the Asterisk sounds. Default: /usr/share/asterisk/sounds
        verbose (bool, optional): Print progress. Default: False

    Returns:
        str: The task folder.

    Raises:
        DebianPackageMissing: When a language's package is not installed.
    """
    codes = list(languages) if languages is not None else list(SPEECH_LANGUAGES)
    files = speech_files(root, codes)
    num_samples = int(round(clip_seconds * sample_rate))
    rng = np.random.default_rng(seed)
    task_dir = os.path.join(out_dir, "speech")
    counts: Dict[str, int] = {}
    for split in ("train", "test"):
        chosen = [f for f in files if is_test_prompt(f[1], test_fraction) == (split == "test")]
        if max_files_per_language is not None:
            chosen = [f for c in codes for f in [g for g in chosen if g[0] == c][:max_files_per_language]]
        clips: List[np.ndarray] = []
        labels: List[int] = []
        sources: List[str] = []
        for code, relative, path in chosen:
            wave = _read(path, sample_rate)
            starts = range(0, max(wave.shape[0], 1), num_samples) if split == "train" else [0]
            for start in starts:
                piece = wave[start : start + num_samples]
                if start > 0 and piece.shape[0] < sample_rate:
                    break
                clips.append(to_int16(_fit(piece, num_samples, rng)))
                labels.append(codes.index(code))
                sources.append(f"{_folder(path, root)}/{relative}@{start / sample_rate:.1f}s")
        audio = np.stack(clips) if clips else np.zeros((0, num_samples), dtype=np.int16)
        save_split(task_dir, split, audio, labels, sources)
        counts[split] = len(clips)
        if verbose:
            print(f"  speech/{split}: {len(chosen)} prompts -> {len(clips)} clips", flush=True)
    write_manifest(
        task_dir,
        {
            "task": "speech",
            "class_names": codes,
            "sample_rate": sample_rate,
            "splits": {s: {"n": n, "seconds": clip_seconds} for s, n in counts.items()},
            "recipe": (
                "Asterisk core sound prompts (asterisk-core-sounds-{en,es,fr,it,ru}-wav 1.6.1, 8 kHz), "
                f"resampled to {sample_rate} Hz, normalised to -20 dBFS RMS, {clip_seconds:g} s clips. "
                f"Held out by prompt: crc32(relative path) % 1000 < {int(round(test_fraction * 1000))} "
                "(the same prompts in every language). Train: consecutive clips of each prompt; test: "
                f"the first clip of each prompt; short prompts zero-padded at a random offset (seed {seed}). "
                "One voice per language: language and speaker are confounded."
            ),
            "seed": seed,
            "licence": {code: SPEECH_LICENCES[code] for code in codes},
        },
    )
    return task_dir


def _folder(path: str, root: str) -> str:
    """The language folder of a prompt (e.g. ``en_US_f_Allison``)."""
    return os.path.relpath(path, root).split(os.sep)[0]
