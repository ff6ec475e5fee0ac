"""The freqrex command: explain with a TorchScript model, result folder, one-line errors."""

import importlib.util
import json

import pytest
import soundfile as sf
import torch

from captum_freqrex.cli import main
from known_models import SAMPLE_RATE, ToneClassifier, tone

HAS_ZOO = importlib.util.find_spec("captum_freqrex.zoo") is not None


@pytest.fixture
def scripted_model(tmp_path):
    model = ToneClassifier([440, 1000, 2500]).eval()
    path = tmp_path / "tones.pt"
    torch.jit.trace(model, torch.randn(2, SAMPLE_RATE)).save(str(path))
    return str(path)


@pytest.fixture
def clip_file(tmp_path):
    path = tmp_path / "clip.wav"
    wave = 0.5 * tone(1000) + 0.2 * tone(440) + 0.01 * torch.randn(SAMPLE_RATE)
    sf.write(str(path), wave.numpy(), SAMPLE_RATE)
    return str(path)


def test_explain_writes_a_consistent_result_folder(scripted_model, clip_file, tmp_path, capsys):
    out = tmp_path / "result"
    code = main(["explain", clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["original_class"] == 1 and summary["target"] == 1  # 1 kHz is the loudest tone
    assert summary["sets"]["sufficient"]["certified"] and summary["certified"]
    assert summary["queries"] == summary["responsibility_queries"] + summary["extraction_queries"] + 1
    for name in ("original", "sufficient", "sufficient_removed", "sufficient_necessary", "complete"):
        data, rate = sf.read(str(out / f"{name}.wav"))
        assert rate == SAMPLE_RATE and data.shape == (SAMPLE_RATE,)
    # The sufficient WAV is what the model decided on: re-query it.
    kept, _ = sf.read(str(out / "sufficient.wav"), dtype="float32")
    assert ToneClassifier([440, 1000, 2500])(torch.from_numpy(kept).unsqueeze(0)).argmax().item() == 1
    assert (out / "responsibility.png").stat().st_size > 10_000
    assert (out / "spectrograms.png").stat().st_size > 10_000
    assert "sufficient" in capsys.readouterr().out


def test_explain_fits_audio_to_the_model_and_says_so(scripted_model, tmp_path, capsys):
    path = tmp_path / "long_stereo.wav"
    stereo = torch.stack([tone(440, 2.0, sample_rate=16000), tone(440, 2.0, sample_rate=16000)], 1)
    sf.write(str(path), stereo.numpy(), 16000)
    code = main(["explain", str(path), "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0
    assert "mixed 2 channels down to mono" in err and "resampled 16000 Hz -> 8000 Hz" in err


@pytest.mark.parametrize(
    "make_audio, message",
    [
        (lambda p: None, "no such audio file"),
        (lambda p: p.write_text("not audio"), "cannot read"),
        (lambda p: sf.write(str(p), torch.zeros(SAMPLE_RATE).numpy(), SAMPLE_RATE), "silent"),
    ],
)
def test_bad_audio_gives_one_line_error(scripted_model, tmp_path, capsys, make_audio, message):
    path = tmp_path / "bad.wav"
    make_audio(path)
    code = main(["explain", str(path), "--model", scripted_model, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err
    assert err.startswith("freqrex: error:") and "Traceback" not in err


def test_unloadable_model_file_gives_one_line_error(clip_file, tmp_path, capsys):
    bogus = tmp_path / "model.pt"
    bogus.write_text("nope")
    assert main(["explain", clip_file, "--model", str(bogus)]) == 2
    assert "cannot load" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_ZOO, reason="captum_freqrex.zoo is not built")
def test_unknown_model_name_gives_one_line_error(clip_file, capsys):
    assert main(["explain", clip_file, "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("freqrex: error:") and "no-such-model" in err and "Traceback" not in err


def test_demo_writes_valid_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("model", "original_class_name", "sets", "queries", "forward_calls", "total_seconds", "certified"):
        assert key in summary
    suff = summary["sets"]["sufficient"]
    assert suff is not None and suff["features"] >= 1 and suff["kept_class"] == summary["target"]
    assert summary["queries"] <= 1000 + 64 + 1
    for name in summary["files"].values():
        assert (out / name).stat().st_size > 0
    rate = sf.info(str(out / "original.wav")).samplerate
    assert rate == summary["sample_rate"]
    assert "results in" in capsys.readouterr().out


def test_compare_on_user_audio_writes_the_table(scripted_model, clip_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main([
        "compare", clip_file, clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE),
        "--methods", "FreqReX", "magnitude", "random", "--max-queries", "200", "--out", str(out),
    ])
    assert code == 0
    table = (out / "compare.md").read_text()
    assert all(name in table for name in ("FreqReX", "magnitude", "random"))
    import csv

    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["method"] for r in rows] == ["FreqReX", "magnitude", "random"]
    freqrex = rows[0]
    # Removing FreqReX's top bin (the decisive 1 kHz tone) flips the tone classifier on both clips.
    assert float(freqrex["flip@1"]) == 1.0 and int(float(freqrex["queries"])) > 0


def test_compare_rejects_files_of_different_lengths(scripted_model, clip_file, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(str(short), tone(440, 0.5).numpy(), SAMPLE_RATE)
    code = main(["compare", clip_file, str(short), "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE)])
    err = capsys.readouterr().err
    assert code == 2 and "different lengths" in err and len(err.strip().splitlines()) == 1


def test_compare_with_a_scripted_model_needs_audio(scripted_model, capsys):
    assert main(["compare", "--model", scripted_model]) == 2
    assert "pass audio files" in capsys.readouterr().err


def test_compare_rejects_an_unknown_method_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--methods", "Nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'Nope'" in capsys.readouterr().err
