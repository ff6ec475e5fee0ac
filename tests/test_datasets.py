"""Dataset builders: tiny builds where the Debian packages are present, and the missing-package error."""

import os
import shutil
import struct

import numpy as np
import pytest

from captum_freqrex.datasets import (
    TEST_KITS,
    DebianPackageMissing,
    build_instruments,
    build_percussion,
    build_speech,
    drum_class,
    load_split,
    require_packages,
)
from captum_freqrex.datasets._instruments import SOUNDFONT
from captum_freqrex.datasets._midi import Note, midi_bytes
from captum_freqrex.datasets._percussion import HYDROGEN_ROOT, SONIC_PI_ROOT
from captum_freqrex.datasets._speech import ASTERISK_ROOT, SPEECH_LANGUAGES, is_test_prompt

HAS_FLUID = shutil.which("fluidsynth") is not None and os.path.exists(SOUNDFONT)
HAS_ASTERISK = all(
    any(d.startswith(prefix) for d in (os.listdir(ASTERISK_ROOT) if os.path.isdir(ASTERISK_ROOT) else []))
    for prefix in SPEECH_LANGUAGES.values()
)
HAS_DRUMS = os.path.isdir(HYDROGEN_ROOT) and os.path.isdir(SONIC_PI_ROOT)


# ----------------------------------------------------------------------------- missing packages


def test_missing_package_message_has_the_apt_line(tmp_path):
    with pytest.raises(DebianPackageMissing) as info:
        require_packages("thing", {"pkg-a": [str(tmp_path / "absent")], "pkg-b": [str(tmp_path)], "pkg-c": ["no-such-exe-xyz"]})
    error = info.value
    assert error.packages == ("pkg-a", "pkg-c")
    assert error.command == "sudo apt-get update && sudo apt-get install -y pkg-a pkg-c"
    assert str(error).endswith("install with: sudo apt-get update && sudo apt-get install -y pkg-a pkg-c")
    assert "thing needs" in str(error)


def test_builders_raise_before_doing_anything(tmp_path):
    out = tmp_path / "data"
    with pytest.raises(DebianPackageMissing, match=r"apt-get install -y fluid-soundfont-gm$"):
        build_instruments(str(out), soundfont=str(tmp_path / "missing.sf2"), fluidsynth="sh")
    with pytest.raises(DebianPackageMissing, match=r"apt-get install -y fluidsynth fluid-soundfont-gm$"):
        build_instruments(str(out), soundfont=str(tmp_path / "missing.sf2"), fluidsynth="no-such-fluidsynth-xyz")
    with pytest.raises(DebianPackageMissing) as info:
        build_speech(str(out), root=str(tmp_path))
    assert info.value.packages == tuple(f"asterisk-core-sounds-{c}-wav" for c in ("en", "es", "fr", "it", "ru"))
    with pytest.raises(DebianPackageMissing, match=r"apt-get install -y hydrogen-drumkits sonic-pi-samples$"):
        build_percussion(str(out), hydrogen_root=str(tmp_path / "h"), sonic_pi_root=str(tmp_path / "s"))
    assert not out.exists()


# ----------------------------------------------------------------------------- pure helpers


def test_midi_file_structure():
    data = midi_bytes([Note(0, 500, 60, 100), Note(250, 500, 64, 90)], program=40, length_ms=1000)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 500)
    assert data[14:18] == b"MTrk" and struct.unpack(">I", data[18:22])[0] == len(data) - 22
    assert b"\xc0\x28" in data and data.endswith(b"\xff\x2f\x00")
    assert data.count(b"\x90") == 2 and data.count(b"\x80") == 2


def test_drum_class_names():
    assert drum_class('Kick (Tama Superstar 22")') == "kick"
    assert drum_class("BassDrum") == "kick"
    assert drum_class("Pearl Snare Rimshot") == "snare"
    assert drum_class("Sabian Hat Semi-Open") == "hihat"
    assert drum_class("Closed HH 2") == "hihat"
    assert drum_class("Crash/Ride Bell (Paiste Rude Crash/Ride 18\")") == "cymbal"
    assert drum_class("Pearl Tom Floor") == "tom"
    assert drum_class("Floor Tom") == "tom"
    for other in ("Hand Clap", "Pearl Side Stick", "Snare Roll", "Cowbell", "Djembe1 Bass"):
        assert drum_class(other) is None


def test_held_out_prompts_are_the_same_in_every_language():
    assert is_test_prompt("digits/7.wav") == is_test_prompt("digits/7.wav")
    share = np.mean([is_test_prompt(f"p{i}.wav") for i in range(2000)])
    assert 0.15 < share < 0.25


# ----------------------------------------------------------------------------- tiny builds


@pytest.mark.skipif(not HAS_FLUID, reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
def test_build_instruments_tiny(tmp_path):
    build_instruments(str(tmp_path), n_train=1, n_test=1, train_seconds=1.0, test_seconds=2.0, families=["bass", "pipe"], seed=3)
    train, test = load_split(str(tmp_path), "instruments", "train"), load_split(str(tmp_path), "instruments", "test")
    assert train.class_names == test.class_names == ("bass", "pipe")
    assert train.waveforms.shape == (2, 16000) and test.waveforms.shape == (2, 32000)
    assert train.labels.tolist() == test.labels.tolist() == [0, 1]
    for split in (train, test):
        rms = split.waveforms.pow(2).mean(1).sqrt()
        assert (rms > 0.01).all()  # normalised to -20 dBFS, not silent
    # Held-out phrases are in the odd keys, training phrases in the even keys.
    keys = lambda split: [int(s.split("key ")[1].split()[0]) for s in split.sources]  # noqa: E731
    assert all(k % 2 == 0 for k in keys(train)) and all(k % 2 == 1 for k in keys(test))


@pytest.mark.skipif(not HAS_ASTERISK, reason="needs Debian packages asterisk-core-sounds-{en,es,fr,it,ru}-wav")
def test_build_speech_tiny(tmp_path):
    build_speech(str(tmp_path), max_files_per_language=2)
    train, test = load_split(str(tmp_path), "speech", "train"), load_split(str(tmp_path), "speech", "test")
    assert train.class_names == ("en", "es", "fr", "it", "ru") and train.sample_rate == 16000
    assert test.waveforms.shape == (10, 48000) and sorted(set(test.labels.tolist())) == [0, 1, 2, 3, 4]
    assert train.waveforms.shape[0] >= 10
    prompts = lambda split: {s.split("/", 1)[1].split("@")[0] for s in split.sources}  # noqa: E731
    assert not prompts(train) & prompts(test)


@pytest.mark.skipif(not HAS_DRUMS, reason="needs Debian packages hydrogen-drumkits and sonic-pi-samples")
def test_build_percussion_tiny(tmp_path):
    build_percussion(str(tmp_path), max_files_per_kit=2)
    train, test = load_split(str(tmp_path), "percussion", "train"), load_split(str(tmp_path), "percussion", "test")
    assert train.class_names == ("kick", "snare", "hihat", "cymbal", "tom")
    assert train.waveforms.shape[1] == test.waveforms.shape[1] == 16000
    assert all(s.split("/")[0] in TEST_KITS for s in test.sources)
    assert not any(s.split("/")[0] in TEST_KITS for s in train.sources)
    peaks = test.waveforms.abs().amax(1)
    assert torch_close(peaks, 10 ** (-1 / 20))


def torch_close(values, target, tol=1e-3):
    return bool(((values - target).abs() < tol).all())
