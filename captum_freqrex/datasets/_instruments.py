"""Instrument-family clips rendered from General MIDI phrases with fluidsynth and FluidR3_GM.

Each clip is one random phrase (see :func:`~captum_freqrex.datasets._midi.random_phrase`) played by
one General MIDI program of a family, rendered offline by the ``fluidsynth`` command at the target
sample rate, mixed to mono and normalised to -20 dBFS RMS. Training phrases are in the even keys
(C, D, E, F#, G#, A#), held-out phrases in the odd keys (C#, D#, F, G, A, B), drawn from
independent seeds: no held-out phrase, key or pitch sequence occurs in training.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from captum_freqrex.datasets._debian import require_packages
from captum_freqrex.datasets._midi import SCALES, midi_bytes, random_phrase
from captum_freqrex.datasets._store import save_split, to_int16, write_manifest

__all__ = ["FLUID_LICENCE", "InstrumentFamily", "INSTRUMENT_FAMILIES", "build_instruments", "render_phrase", "SOUNDFONT"]

#: The General MIDI SoundFont of the Debian package ``fluid-soundfont-gm`` (MIT licence).
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

#: Copyright and licence of the rendered sounds (from /usr/share/doc/fluid-soundfont-gm/copyright).
FLUID_LICENCE = "FluidR3_GM SoundFont (fluid-soundfont-gm), Copyright (c) 2000-2002, 2008 Frank Wen, 2008 Toby Smithe; MIT licence"

_TRAIN_ROOTS = (0, 2, 4, 6, 8, 10)
_TEST_ROOTS = (1, 3, 5, 7, 9, 11)
_TARGET_RMS_DB = -20.0


@dataclass(frozen=True)
class InstrumentFamily:
    """General MIDI programs (0-based) of one family, its pitch range and whether it plays chords."""

    programs: Tuple[int, ...]
    low: int
    high: int
    chords: bool


#: The families (classes) and their General MIDI programs.
INSTRUMENT_FAMILIES: Dict[str, InstrumentFamily] = {
    "piano": InstrumentFamily((0, 1, 2, 3, 4, 5), 36, 96, True),
    "mallet": InstrumentFamily((8, 9, 10, 11, 12, 13, 14), 48, 96, True),
    "organ": InstrumentFamily((16, 17, 18, 19, 20), 36, 84, True),
    "guitar": InstrumentFamily((24, 25, 26, 27, 28, 29, 30), 40, 84, True),
    "bass": InstrumentFamily((32, 33, 34, 35, 36, 37, 38, 39), 28, 55, False),
    "strings": InstrumentFamily((40, 41, 42, 44, 45, 48, 49), 40, 88, True),
    "brass": InstrumentFamily((56, 57, 58, 59, 60, 61), 34, 82, False),
    "reed": InstrumentFamily((64, 65, 66, 67, 68, 69, 70, 71), 38, 84, False),
    "pipe": InstrumentFamily((72, 73, 74, 75, 79), 60, 96, False),
}


def _check(soundfont: str, fluidsynth: str) -> None:
    require_packages("build_instruments", {"fluidsynth": [fluidsynth], "fluid-soundfont-gm": [soundfont]})


def render_phrase(
    midi: bytes,
    sample_rate: int,
    num_samples: int,
    reverb: bool = True,
    soundfont: str = SOUNDFONT,
    fluidsynth: str = "fluidsynth",
) -> np.ndarray:
    r"""Render a MIDI file's bytes with fluidsynth to a mono float32 waveform of ``num_samples``.

    Args:
        midi (bytes): A Standard MIDI File.
        sample_rate (int): Output sample rate in Hz.
        num_samples (int): Output length (cropped or zero-padded).
        reverb (bool, optional): Fluidsynth's reverb on or off. Default: True
        soundfont (str, optional): The SoundFont. Default: FluidR3_GM of fluid-soundfont-gm
        fluidsynth (str, optional): The fluidsynth executable. Default: "fluidsynth"

    Returns:
        numpy.ndarray: ``(num_samples,)`` float32, not normalised.
    """
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = os.path.join(tmp, "phrase.mid"), os.path.join(tmp, "phrase.wav")
        with open(mid, "wb") as handle:
            handle.write(midi)
        command = [fluidsynth, "-ni", "-q", "-C", "0", "-R", "1" if reverb else "0", "-g", "0.5",
                   "-r", str(sample_rate), "-F", wav, "-T", "wav", "-O", "s16", soundfont, mid]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        data, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz")
    mono = data.mean(axis=1)[:num_samples]
    return np.pad(mono, (0, num_samples - mono.shape[0]))


def _normalise(wave: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(wave**2)))
    if rms < 1e-6:
        return wave
    wave = wave * (10 ** (_TARGET_RMS_DB / 20) / rms)
    peak = float(np.abs(wave).max())
    return wave * (0.99 / peak) if peak > 0.99 else wave


def _render_split(
    families: Sequence[str],
    n_per_class: int,
    seconds: float,
    roots: Sequence[int],
    rng: np.random.Generator,
    sample_rate: int,
    soundfont: str,
    fluidsynth: str,
    split: str,
    verbose: bool,
) -> Tuple[np.ndarray, List[int], List[str]]:
    num_samples = int(round(seconds * sample_rate))
    audio = np.zeros((len(families) * n_per_class, num_samples), dtype=np.int16)
    labels: List[int] = []
    sources: List[str] = []
    scales = sorted(SCALES)
    row = 0
    for label, name in enumerate(families):
        family = INSTRUMENT_FAMILIES[name]
        for i in range(n_per_class):
            program = family.programs[i % len(family.programs)]
            root = int(rng.choice(roots))
            scale = scales[int(rng.integers(len(scales)))]
            reverb = bool(rng.random() < 0.5)
            notes = random_phrase(rng, int(seconds * 1000), root, SCALES[scale], family.low, family.high, family.chords)
            midi = midi_bytes(notes, program, int(seconds * 1000))
            wave = render_phrase(midi, sample_rate, num_samples, reverb, soundfont, fluidsynth)
            audio[row] = to_int16(_normalise(wave))
            labels.append(label)
            sources.append(f"{name}: GM program {program}, key {root} {scale}, {len(notes)} notes, reverb {'on' if reverb else 'off'}")
            row += 1
        if verbose:
            print(f"  instruments/{split}: {name} done ({n_per_class} clips)", flush=True)
    return audio, labels, sources


def build_instruments(
    out_dir: str,
    n_train: int = 60,
    n_test: int = 12,
    train_seconds: float = 10.0,
    test_seconds: float = 30.0,
    sample_rate: int = 16000,
    seed: int = 0,
    families: Optional[Sequence[str]] = None,
    soundfont: str = SOUNDFONT,
    fluidsynth: str = "fluidsynth",
    verbose: bool = False,
) -> str:
    r"""Render the instrument-family dataset to ``<out_dir>/instruments``.

    Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``; nothing is downloaded.

    Args:
        out_dir (str): Root folder of the built datasets.
        n_train (int, optional): Training clips per family. Default: 60
        n_test (int, optional): Held-out clips per family. Default: 12
        train_seconds (float, optional): Length of training clips (models train on crops).
                    Default: 10.0
        test_seconds (float, optional): Length of held-out clips. Default: 30.0
        sample_rate (int, optional): Sample rate in Hz. Default: 16000
        seed (int, optional): Seed of the phrases; train and test draw from independent streams.
                    Default: 0
        families (sequence of str, optional): Subset of :data:`INSTRUMENT_FAMILIES` (the classes,
                    in this order). Default: all
        soundfont (str, optional): SoundFont path. Default: FluidR3_GM of fluid-soundfont-gm
        fluidsynth (str, optional): The fluidsynth executable. Default: "fluidsynth"
        verbose (bool, optional): Print progress. Default: False

    Returns:
        str: The task folder.

    Raises:
        DebianPackageMissing: When fluidsynth or fluid-soundfont-gm is not installed.
    """
    _check(soundfont, fluidsynth)
    names = list(families) if families is not None else list(INSTRUMENT_FAMILIES)
    unknown = [n for n in names if n not in INSTRUMENT_FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {list(INSTRUMENT_FAMILIES)}")
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    task_dir = os.path.join(out_dir, "instruments")
    for split, n, seconds, roots, rng in (
        ("train", n_train, train_seconds, _TRAIN_ROOTS, train_rng),
        ("test", n_test, test_seconds, _TEST_ROOTS, test_rng),
    ):
        audio, labels, sources = _render_split(names, n, seconds, roots, rng, sample_rate, soundfont, fluidsynth, split, verbose)
        save_split(task_dir, split, audio, labels, sources)
    write_manifest(
        task_dir,
        {
            "task": "instruments",
            "class_names": names,
            "sample_rate": sample_rate,
            "splits": {"train": {"n": n_train * len(names), "seconds": train_seconds},
                       "test": {"n": n_test * len(names), "seconds": test_seconds}},
            "recipe": (
                "Random phrases (random-walk melodies over major/minor/dorian/pentatonic/blues scales, "
                "80-200 bpm, triads for polyphonic families) written as General MIDI files and rendered "
                "by fluidsynth with FluidR3_GM (fluid-soundfont-gm) at the sample rate, chorus off, "
                "reverb on for half the clips, mixed to mono, normalised to -20 dBFS RMS. Each family "
                "cycles through its GM programs. Train: keys C D E F# G# A#; test: keys C# D# F G A B, "
                f"independent seeds (SeedSequence({seed}).spawn(2))."
            ),
            "families": {n: {"programs": list(INSTRUMENT_FAMILIES[n].programs), "pitch_range": [INSTRUMENT_FAMILIES[n].low, INSTRUMENT_FAMILIES[n].high]} for n in names},
            "seed": seed,
            "licence": FLUID_LICENCE,
        },
    )
    return task_dir
