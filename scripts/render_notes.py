"""Render single notes of real General MIDI instruments to ``tests/data/notes/`` (known-answer test data).

    .venv/bin/python scripts/render_notes.py                  # the 24 notes, notes.csv, LICENSES.md
    .venv/bin/python scripts/render_notes.py --out /tmp/notes # elsewhere

Each note is one MIDI note held for the whole clip, played by one General MIDI program of the
FluidR3_GM SoundFont (Debian package ``fluid-soundfont-gm``, MIT licence) and rendered offline by
``fluidsynth`` (chorus and reverb off) at 16 kHz; it is mixed to mono, cut to 1 s (16,000 samples,
a 2/5-smooth FFT length) from its onset, faded out over its last 20 ms (no click at the cut),
peak-normalised to -1 dBFS and written as 16-bit FLAC. ``notes.csv`` records each note's file,
instrument, GM program, MIDI pitch, nominal f0 (equal temperament, A4 = 440 Hz) and the f0 measured
on the clip (the comb of its first eight harmonics that catches the most magnitude within +-50
cents of the nominal f0), with the difference in cents.

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from typing import List, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from captum_freqrex.datasets import require_packages  # noqa: E402
from captum_freqrex.datasets._instruments import FLUID_LICENCE, SOUNDFONT, render_phrase  # noqa: E402
from captum_freqrex.datasets._midi import Note, midi_bytes  # noqa: E402

SAMPLE_RATE = 16000
NUM_SAMPLES = 16000  # 1 s: 2/5-smooth
PEAK_DBFS = -1.0
FADE_MS = 20

#: (instrument, General MIDI program, MIDI pitches): 8 instruments x 3 notes, MIDI 48-81 (C3-A5).
INSTRUMENTS: List[Tuple[str, int, Tuple[int, ...]]] = [
    ("piano", 0, (48, 57, 72)),
    ("nylon guitar", 24, (52, 59, 67)),
    ("violin", 40, (60, 67, 76)),
    ("cello", 42, (48, 55, 62)),
    ("flute", 73, (67, 74, 81)),
    ("trumpet", 56, (58, 65, 72)),
    ("church organ", 19, (50, 60, 69)),
    ("clarinet", 71, (53, 62, 70)),
]


def nominal_f0(pitch: int) -> float:
    """Equal-tempered frequency of a MIDI pitch in Hz (A4 = MIDI 69 = 440 Hz)."""
    return 440.0 * 2 ** ((pitch - 69) / 12)


def measured_f0(wave: np.ndarray, nominal: float, sample_rate: int = SAMPLE_RATE) -> float:
    """The f0 within +-50 cents of ``nominal`` whose first 8 harmonics catch the most magnitude (Hz)."""
    n_fft = 16 * wave.shape[0]  # zero-padded: 1/16 Hz per bin on a 1 s clip
    magnitude = np.abs(np.fft.rfft(wave * np.hanning(wave.shape[0]), n=n_fft))
    candidates = nominal * 2 ** (np.linspace(-50, 50, 401) / 1200)
    harmonics = np.arange(1, 9)[:, None] * candidates[None, :]
    bins = np.round(harmonics * n_fft / sample_rate).astype(int)
    inside = bins < magnitude.shape[0]
    score = np.where(inside, magnitude[np.minimum(bins, magnitude.shape[0] - 1)], 0.0).sum(0)
    return float(candidates[int(np.argmax(score))])


def render_note(program: int, pitch: int, sample_rate: int = SAMPLE_RATE, num_samples: int = NUM_SAMPLES) -> np.ndarray:
    """One held note, mono, from its onset, faded out and peak-normalised: ``(num_samples,)`` float32."""
    held_ms = int(1000 * num_samples / sample_rate) + 300  # longer than the clip: no release inside it
    midi = midi_bytes([Note(0, held_ms, pitch, 100)], program, held_ms)
    wave = render_phrase(midi, sample_rate, num_samples + sample_rate // 2, reverb=False)
    onset = int(np.argmax(np.abs(wave) > 1e-3 * np.abs(wave).max()))
    wave = wave[onset : onset + num_samples].astype(np.float64)
    fade = int(sample_rate * FADE_MS / 1000)
    wave[-fade:] *= np.linspace(1.0, 0.0, fade)
    return (wave * (10 ** (PEAK_DBFS / 20) / np.abs(wave).max())).astype(np.float32)


def write_licence(out: str) -> None:
    with open(os.path.join(out, "LICENSES.md"), "w") as handle:
        handle.write(
            "# Rendered notes: source and licence\n\n"
            "Written by `scripts/render_notes.py`: single notes of General MIDI instruments rendered with\n"
            "fluidsynth from the Debian package fluid-soundfont-gm. Mixed to mono, cut to 1 s from the\n"
            "onset, faded out over 20 ms, peak-normalised to -1 dBFS, 16-bit FLAC at 16 kHz.\n\n"
            f"* {FLUID_LICENCE}.\n"
        )


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "data", "notes"), help="output folder")
    args = parser.parse_args(argv)
    import soundfile

    require_packages("render_notes", {"fluidsynth": ["fluidsynth"], "fluid-soundfont-gm": [SOUNDFONT]})
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for instrument, program, pitches in INSTRUMENTS:
        for pitch in pitches:
            wave = render_note(program, pitch)
            name = f"{instrument.replace(' ', '_')}_{pitch}.flac"
            soundfile.write(os.path.join(args.out, name), wave, SAMPLE_RATE, subtype="PCM_16")
            f0, measured = nominal_f0(pitch), measured_f0(wave, nominal_f0(pitch))
            cents = 1200 * math.log2(measured / f0)
            rows.append([name, instrument, program, pitch, f"{f0:.2f}", f"{measured:.2f}", f"{cents:.1f}"])
            print(f"{name}: f0 {f0:.1f} Hz, measured {measured:.1f} Hz ({cents:+.1f} cents)", flush=True)
    with open(os.path.join(args.out, "notes.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "instrument", "gm_program", "midi_pitch", "f0_hz", "measured_f0_hz", "cents_off"])
        writer.writerows(rows)
    write_licence(args.out)
    total = sum(os.path.getsize(os.path.join(args.out, r[0])) for r in rows)
    print(f"{len(rows)} notes, {total / 1024:.0f} KiB of FLAC in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
