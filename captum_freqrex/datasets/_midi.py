"""Standard MIDI files written by hand (format 0, one track), and random melodic phrases.

Times are in milliseconds: the file's division is 500 ticks per quarter note at 120 bpm
(500,000 microseconds per quarter), so one tick is one millisecond.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["Note", "midi_bytes", "random_phrase", "SCALES"]

_TICKS_PER_QUARTER = 500
_MICROSECONDS_PER_QUARTER = 500_000  # with 500 ticks per quarter: 1 tick = 1 ms

#: Scale steps (semitones above the root) that phrases draw their pitches from.
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "blues": (0, 3, 5, 6, 7, 10),
}


@dataclass(frozen=True)
class Note:
    """One note: onset and duration in ms, MIDI pitch 0-127, velocity 1-127."""

    start_ms: int
    duration_ms: int
    pitch: int
    velocity: int


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: Sequence[Note], program: int, length_ms: int, channel: int = 0) -> bytes:
    r"""A format-0 Standard MIDI File playing ``notes`` on one General MIDI ``program``.

    Args:
        notes (sequence of Note): The notes; any order, may overlap (chords).
        program (int): General MIDI program, 0-127.
        length_ms (int): Where the track ends (notes are cut there).
        channel (int, optional): MIDI channel 0-15, not 9 (drums). Default: 0

    Returns:
        bytes: The file's content.
    """
    if not 0 <= program <= 127 or not 0 <= channel <= 15 or channel == 9:
        raise ValueError(f"bad program {program} or channel {channel}")
    events: List[Tuple[int, int, bytes]] = []  # (tick, order, data): note-offs sort before note-ons
    for note in notes:
        if note.start_ms >= length_ms:
            continue
        end = min(note.start_ms + note.duration_ms, length_ms)
        events.append((note.start_ms, 1, bytes([0x90 | channel, note.pitch, note.velocity])))
        events.append((end, 0, bytes([0x80 | channel, note.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    track += b"\x00\xff\x51\x03" + _MICROSECONDS_PER_QUARTER.to_bytes(3, "big")
    track += b"\x00" + bytes([0xC0 | channel, program])
    now = 0
    for tick, _, data in events:
        track += _varlen(tick - now) + data
        now = tick
    track += _varlen(max(length_ms - now, 0)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def random_phrase(
    rng: np.random.Generator,
    length_ms: int,
    root: int,
    scale: Sequence[int],
    low: int,
    high: int,
    chords: bool,
) -> List[Note]:
    r"""A random melody (with chords where ``chords``) filling ``length_ms``.

    A tempo is drawn, then notes on a step-wise random walk over the scale's pitches between
    ``low`` and ``high``, with note values of an eighth to a whole note, short rests, accents and
    (for polyphonic instruments) triads on some beats.

    Args:
        rng (numpy.random.Generator): Source of randomness.
        length_ms (int): Length of the phrase.
        root (int): Pitch class of the key, 0-11.
        scale (sequence of int): Scale steps above the root.
        low (int): Lowest MIDI pitch.
        high (int): Highest MIDI pitch.
        chords (bool): Whether to add triads.

    Returns:
        list of Note: The phrase.
    """
    pitches = [p for p in range(low, high + 1) if (p - root) % 12 in scale]
    beat = int(rng.uniform(300, 750))  # ms per quarter note, 80-200 bpm
    values = np.array([0.5, 1.0, 1.5, 2.0, 4.0])
    weights = np.array([0.3, 0.35, 0.1, 0.17, 0.08])
    legato = rng.uniform(0.6, 1.0)
    base_velocity = int(rng.integers(60, 110))
    index = int(rng.integers(len(pitches) // 4, 3 * len(pitches) // 4 + 1))
    notes: List[Note] = []
    t = int(rng.integers(0, 200))
    while t < length_ms:
        duration = int(beat * rng.choice(values, p=weights))
        if rng.random() < 0.08:  # a rest
            t += duration
            continue
        index = int(np.clip(index + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), 0, len(pitches) - 1))
        velocity = int(np.clip(base_velocity + rng.normal(0, 12), 30, 127))
        sounding = int(duration * legato)
        notes.append(Note(t, sounding, pitches[index], velocity))
        if chords and rng.random() < 0.35:
            for step in (2, 4):  # a triad on the scale
                if index + step < len(pitches):
                    notes.append(Note(t, sounding, pitches[index + step], max(velocity - 15, 20)))
        t += duration
    return notes
