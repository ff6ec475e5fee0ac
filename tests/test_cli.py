"""The freqrex command: explain with a TorchScript model, result folder, one-line errors."""

import importlib.util
import json
import os

import pytest
import soundfile as sf
import torch

from captum_freqrex import FreqReXOptions
from captum_freqrex.cli import main
from known_models import SAMPLE_RATE, EitherCause, ToneClassifier, tone

#: The joint search of the sufficient-and-necessary and complete sets, and the certification of
#: its two sets (one row each), on top of the responsibility and extraction budgets.
JOINT = FreqReXOptions().max_joint_queries + 2

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
    argv = ["explain", clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--out", str(out)]
    assert main([*argv, "--audio-files", "all"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["original_class"] == 1 and summary["target"] == 1  # 1 kHz is the loudest tone
    assert summary["sets"]["sufficient"]["certified"] and summary["certified"]
    # Besides responsibility and extraction: the unmasked input (and, where the core probes it, the baseline).
    anchors = summary["queries"] - summary["responsibility_queries"] - summary["extraction_queries"]
    assert anchors in (1, 2)
    for name in ("original", "sufficient", "sufficient_removed", "sufficient_necessary", "complete"):
        data, rate = sf.read(str(out / f"{name}.wav"))
        assert rate == SAMPLE_RATE and data.shape == (SAMPLE_RATE,)
    # The sufficient WAV is what the model decided on: re-query it.
    kept, _ = sf.read(str(out / "sufficient.wav"), dtype="float32")
    assert ToneClassifier([440, 1000, 2500])(torch.from_numpy(kept).unsqueeze(0)).argmax().item() == 1
    assert (out / "responsibility.png").stat().st_size > 10_000
    assert (out / "spectrograms.png").stat().st_size > 10_000
    assert "sufficient" in capsys.readouterr().out


def test_explain_writes_compact_audio_and_no_bins_table_by_default(scripted_model, clip_file, tmp_path):
    argv = ["explain", clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--max-queries", "200"]
    compact, full = tmp_path / "compact", tmp_path / "full"
    assert main([*argv, "--out", str(compact)]) == 0
    summary = json.loads((compact / "summary.json").read_text())
    sets = [name for name, entry in summary["sets"].items() if entry is not None]
    flacs = sorted(f"{name}.listen.flac" for name in sets)
    assert sorted(p.name for p in compact.iterdir()) == sorted(
        ["summary.json", "responsibility.png", "spectrograms.png", *flacs]
    )  # no bins.csv, no true-level or removal WAVs
    assert set(summary["file_notes"]) == set(summary["files"].values())
    assert "16-bit FLAC" in summary["file_notes"]["sufficient.listen.flac"]
    assert main([*argv, "--out", str(full), "--audio-files", "all"]) == 0
    for name in sets:  # the WAV listening copy's samples (libsndfile rounds FLAC within 1 LSB), in a smaller file
        info = sf.info(str(compact / f"{name}.listen.flac"))
        assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", SAMPLE_RATE)
        flac, _ = sf.read(str(compact / f"{name}.listen.flac"), dtype="int16")
        wav, _ = sf.read(str(full / f"{name}.listen.wav"), dtype="int16")
        assert abs(flac.astype("int32") - wav).max() <= 1 and abs(abs(flac.astype("int32")).max() - 29205) <= 2
        assert (compact / f"{name}.listen.flac").stat().st_size < (full / f"{name}.listen.wav").stat().st_size
    assert not (full / "bins.csv").exists() and (full / "sufficient_removed.wav").exists()


def test_bins_csv_and_no_audio_on_request(scripted_model, clip_file, tmp_path):
    argv = ["explain", clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--max-queries", "200"]
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out), "--bins-csv", "--audio-files", "none"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["bins_table"] == "bins.csv"
    lines = (out / "bins.csv").read_text().splitlines()
    assert lines[0].startswith("bin,hz,") and len(lines) == 1 + SAMPLE_RATE // 2 + 1  # one row per rfft bin
    assert sorted(p.name for p in out.iterdir()) == ["bins.csv", "responsibility.png", "spectrograms.png", "summary.json"]
    # A later default run over it removes the table it no longer writes.
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "bins.csv").exists() and (out / "sufficient.listen.flac").exists()


def test_explain_fits_audio_to_the_model_and_says_so(scripted_model, tmp_path, capsys):
    path = tmp_path / "long_stereo.wav"
    stereo = torch.stack([tone(440, 2.0, sample_rate=16000), tone(440, 2.0, sample_rate=16000)], 1)
    sf.write(str(path), stereo.numpy(), 16000)
    code = main(["explain", str(path), "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0
    assert "mixed 2 channels down to mono" in err and "resampled 16000 Hz -> 8000 Hz" in err



def test_fit_length_pads_crops_or_keeps_a_short_clip_at_a_fast_length():
    from captum_freqrex import next_fast_len
    from captum_freqrex.audio import fit_length

    wave = torch.ones(57_792)  # 3.61 s at 16 kHz, a length with a prime factor of 43
    padded, notes = fit_length(wave, 480_000, 16_000)
    assert padded.shape == (480_000,) and notes == ["zero-padded 3.61 s to the model's 30.00 s"]
    kept, notes = fit_length(wave, 480_000, 16_000, pad_short=False)
    assert kept.shape == (next_fast_len(57_792),) == (58_320,) and torch.equal(kept[:57_792], wave)
    assert not kept[57_792:].any()
    assert notes == ["kept at its own 3.61 s (the model takes any length up to 30.00 s), zero-padded by 528 "
                     "samples to 58320, a length the FFT takes fast"]
    cropped, notes = fit_length(wave, 16_000, 16_000, pad_short=False)
    assert cropped.shape == (16_000,) and notes == ["cropped 3.61 s to the model's 1.00 s"]


def test_a_short_clip_through_the_instruments_model_is_explained_as_it_is(tmp_path, capsys):
    """The zoo's instruments model takes any length: the first 3 s of its shipped piano clip are
    not padded to 30 s (which made them mostly silence, decided as reed) but explained as they are."""
    from captum_freqrex import zoo

    clip = zoo.load_clip("instruments", 0)
    path = tmp_path / "piano_3s.wav"
    sf.write(str(path), clip.waveform[: 3 * clip.sample_rate].numpy(), clip.sample_rate)
    code, stdout, err = run_cli(["explain", path, "--model", "instruments", "--max-queries", "150",
                                 "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    assert "kept at its own 3.00 s (the model takes any length up to 30.00 s)" in err
    assert stdout.splitlines()[0].split("decision ")[1].startswith("piano")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["n_features"] == 3 * clip.sample_rate // 2 + 1

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
    assert main(["explain", clip_file, "--model", str(bogus), "--out", str(tmp_path / "out")]) == 2
    assert "cannot load" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_ZOO, reason="captum_freqrex.zoo is not built")
def test_unknown_model_name_gives_one_line_error(clip_file, tmp_path, capsys):
    assert main(["explain", clip_file, "--model", "no-such-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("freqrex: error:") and "no-such-model" in err and "Traceback" not in err


def test_demo_writes_valid_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--audio-files", "all"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("model", "original_class_name", "sets", "queries", "forward_calls", "total_seconds", "certified"):
        assert key in summary
    suff = summary["sets"]["sufficient"]
    assert suff is not None and suff["features"] >= 1 and suff["kept_class"] == summary["target"]
    assert summary["queries"] <= 1000 + 64 + 1 + JOINT
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


def test_compare_budget_gives_kernelshap_its_own_samples(scripted_model, clip_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main([
        "compare", clip_file, "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE),
        "--methods", "FreqReX", "KernelShap", "--budget", "40", "--out", str(out),
    ])
    assert code == 0
    import csv

    rows = {r["method"]: r for r in csv.DictReader(open(out / "compare.csv"))}
    assert float(rows["KernelShap"]["queries"]) == pytest.approx(40, abs=1)
    assert float(rows["FreqReX"]["queries"]) < 40  # the loud decisive tone: a handful of queries
    assert "Budgets given, not equal" in (out / "compare.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--budget", "0"])
    assert exit_info.value.code == 2 and "--budget" in capsys.readouterr().err


def test_compare_rejects_files_of_different_lengths(scripted_model, clip_file, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(str(short), tone(440, 0.5).numpy(), SAMPLE_RATE)
    code = main(["compare", clip_file, str(short), "--model", scripted_model, "--sample-rate", str(SAMPLE_RATE)])
    err = capsys.readouterr().err
    assert code == 2 and "different lengths" in err and len(err.strip().splitlines()) == 1


def test_compare_pads_short_clips_of_an_any_length_model_to_the_longest(tmp_path, capsys, monkeypatch):
    """Through the instruments model (any length) clips of 2 and 3 s keep their lengths, then are
    padded to the longest for the comparison's one batch, which the command says."""
    import captum_freqrex.cli as cli
    from captum_freqrex import zoo
    from captum_freqrex.compare import ComparisonTable

    seen = []

    def recorded(model, clips, *args, **kwargs):
        seen.append(clips)
        return ComparisonTable([{"method": "magnitude", "error": None}], [])

    monkeypatch.setattr(cli, "compare_methods", recorded)
    clip = zoo.load_clip("instruments", 0)
    paths = []
    for seconds in (2, 3):
        paths.append(tmp_path / f"piano_{seconds}s.wav")
        sf.write(str(paths[-1]), clip.waveform[: seconds * clip.sample_rate].numpy(), clip.sample_rate)
    code, _, err = run_cli(["compare", *paths, "--model", "instruments", "--methods", "magnitude",
                            "--out", tmp_path / "c"], capsys)
    assert code == 0, err
    assert "compare: clips zero-padded to the longest, 48000 samples" in err
    assert seen and seen[0].shape == (2, 3 * clip.sample_rate)


def test_compare_with_a_scripted_model_needs_audio(scripted_model, capsys):
    assert main(["compare", "--model", scripted_model]) == 2
    assert "pass audio files" in capsys.readouterr().err


def test_compare_rejects_an_unknown_method_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--methods", "Nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'Nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue #13
# Helpers: run the command as a user would (usage errors exit through SystemExit), and check
# that an error is one line `freqrex: error: ...` with exit status 2 and no traceback.


def run_cli(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    except KeyboardInterrupt:  # would abort the whole pytest session
        pytest.fail("KeyboardInterrupt escaped freqrex's main()")
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, err, *fragments, only_line=True):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err, err
    if only_line:
        assert len(lines) == 1, err
    assert lines[-1].startswith("freqrex: error:"), err
    for fragment in fragments:
        assert fragment in lines[-1], err


def _no_work(*args, **kwargs):
    raise AssertionError("the command started working before refusing")


@pytest.fixture
def tones(scripted_model):
    """``--model`` options of the TorchScript tone classifier (classes 440 Hz, 1 kHz, 2.5 kHz, none)."""
    return ["--model", scripted_model, "--sample-rate", str(SAMPLE_RATE)]


def _wav(path, wave, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.numpy(), SAMPLE_RATE, subtype=subtype)
    return str(path)


def _compare_argv(clip_file, tones):
    return ["compare", clip_file, *tones, "--methods", "random", "--max-queries", "200"]


# 1. Data loss: never overwrite a file the tool did not create in this run.


@pytest.mark.parametrize("name", ["summary.json", "original.wav", "complete_removed.wav", "spectrograms.png"])
def test_explain_refuses_to_overwrite_a_file_it_did_not_create(tones, clip_file, tmp_path, capsys, name):
    out = tmp_path / "result"
    out.mkdir()
    (out / name).write_text("mine")
    code, _, err = run_cli(["explain", clip_file, *tones, "--out", out], capsys)
    assert_error(code, err, f"{out / name} already exists (from an earlier run?); pass --overwrite")
    assert (out / name).read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing written


@pytest.mark.parametrize("command, name", [("demo", "summary.json"), ("compare", "compare.csv")])
def test_demo_and_compare_refuse_to_overwrite(tones, clip_file, tmp_path, capsys, command, name):
    out = tmp_path / "result"
    out.mkdir()
    (out / name).write_text("mine")
    argv = ["demo"] if command == "demo" else _compare_argv(clip_file, tones)
    code, _, err = run_cli([*argv, "--out", out], capsys)
    assert_error(code, err, f"{out / name} already exists", "--overwrite")
    assert (out / name).read_text() == "mine" and sorted(p.name for p in out.iterdir()) == [name]


def test_overwrite_replaces_an_earlier_result_and_drops_its_stale_files(tones, clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    class NoCompleteSet(cli.FreqReX):  # this run finds no complete set; the earlier one did
        def explain(self, *args, **kwargs):
            explanations = super().explain(*args, **kwargs)
            for explanation in explanations:
                explanation.complete = None
            return explanations

    monkeypatch.setattr(cli, "FreqReX", NoCompleteSet)
    out = tmp_path / "result"
    out.mkdir()
    for name in ("summary.json", "complete.wav", "complete_removed.wav"):
        (out / name).write_text("earlier run")
    (out / "notes.txt").write_text("not a result file")
    code, _, err = run_cli(["explain", clip_file, *tones, "--max-queries", "200", "--out", out, "--overwrite"], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sets"]["complete"] is None and "complete" not in summary["files"]
    assert not (out / "complete.wav").exists() and not (out / "complete_removed.wav").exists()
    assert (out / "notes.txt").read_text() == "not a result file"
    assert sorted(p.name for p in out.iterdir()) == sorted([*summary["files"].values(), "summary.json", "notes.txt"])


@pytest.mark.parametrize("command", ["explain", "compare", "demo"])
@pytest.mark.parametrize("where", ["is a file", "is under a file"])
def test_out_that_cannot_be_a_folder_is_refused_before_any_work(tones, clip_file, tmp_path, capsys, command, where):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    out = blocker if where == "is a file" else blocker / "sub" / "result"
    argv = {
        "explain": ["explain", clip_file, *tones],
        "compare": _compare_argv(clip_file, tones),
        "demo": ["demo"],
    }[command]
    code, _, err = run_cli([*argv, "--out", out], capsys)
    assert_error(code, err, str(blocker), "is a file, not a folder")
    assert blocker.read_text() == "mine"


def _place(source, result, link):
    """Make ``result`` the same file as ``source``: a hard or a symbolic link."""
    result.parent.mkdir(parents=True, exist_ok=True)
    (os.link if link == "hard link" else os.symlink)(source, result)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["refuse", "overwrite"])
@pytest.mark.parametrize("link", ["same path", "hard link", "symbolic link"])
def test_explain_never_writes_over_its_input_audio(tones, tmp_path, capsys, link, overwrite):
    # freqrex explain mine/original.wav --out mine --overwrite replaced the recording with its resynthesis.
    out = tmp_path / "mine"
    wave = 0.5 * tone(1000) + 0.2 * tone(440)
    if link == "same path":
        source = _wav(out / "original.wav", wave)
    else:
        source = _wav(tmp_path / "recording.wav", wave)
        _place(source, out / "original.wav", link)
    recording = open(source, "rb").read()
    code, _, err = run_cli(["explain", source, *tones, "--out", out, *overwrite], capsys)
    assert_error(code, err, f"{out / 'original.wav'} is the audio file {source}", "even --overwrite", "another --out")
    assert open(source, "rb").read() == recording
    assert sorted(p.name for p in out.iterdir()) == ["original.wav"]  # nothing written


def test_explain_never_writes_over_its_baseline_file(tones, clip_file, tmp_path, capsys):
    out = tmp_path / "mine"
    noise = 0.01 * torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(3))
    baseline = _wav(out / "complete_removed.wav", noise)
    kept = open(baseline, "rb").read()
    code, _, err = run_cli(["explain", clip_file, *tones, "--baseline", baseline, "--out", out, "--overwrite"], capsys)
    assert_error(code, err, f"is the --baseline file {baseline}")
    assert open(baseline, "rb").read() == kept and sorted(p.name for p in out.iterdir()) == ["complete_removed.wav"]


def test_explain_of_several_files_checks_every_clip_folder(tones, clip_file, tmp_path, capsys):
    out = tmp_path / "out"
    other = _wav(tmp_path / "other.wav", 0.5 * tone(440))
    _place(other, out / "other" / "summary.json", "hard link")  # the second clip's folder holds that clip
    code, _, err = run_cli(["explain", clip_file, other, *tones, "--out", out, "--overwrite"], capsys)
    assert_error(code, err, f"{out / 'other' / 'summary.json'} is the audio file {other}")
    assert not (out / "clip").exists()


def test_compare_never_writes_over_its_model_file(scripted_model, clip_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    _place(scripted_model, out / "compare.md", "hard link")
    argv = ["compare", clip_file, "--model", out / "compare.md", "--sample-rate", SAMPLE_RATE, "--methods", "random"]
    code, _, err = run_cli([*argv, "--max-queries", "200", "--out", out, "--overwrite"], capsys)
    assert_error(code, err, f"{out / 'compare.md'} is the --model file {out / 'compare.md'}")
    assert torch.jit.load(str(out / "compare.md")) is not None and not (out / "compare.csv").exists()


def test_explain_dataset_never_writes_over_its_data_csv(scripted_model, clip_file, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    listing = out / "aggregates.csv"
    listing.write_text(f"path,label\n{clip_file},tone\n")
    argv = ["explain-dataset", listing, "--model", scripted_model, "--sample-rate", SAMPLE_RATE, "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert_error(code, err, f"{listing} is the data set CSV {listing}")
    assert listing.read_text() == f"path,label\n{clip_file},tone\n" and sorted(p.name for p in out.iterdir()) == [
        "aggregates.csv"
    ]


# 2. One result folder per clip, even when clips share a stem.


def test_result_folder_names_are_unique_and_deterministic():
    from captum_freqrex.cli import result_folder_names

    paths = ["a/clip.wav", "clip-2.wav", "b/clip.wav", "Clip.flac", "x/take.ogg"]
    assert result_folder_names(paths) == ["clip", "clip-2", "clip-3", "Clip-4", "take"]
    assert result_folder_names(paths) == result_folder_names(list(paths))


def test_clips_with_the_same_stem_get_their_own_folders(tones, tmp_path, capsys):
    # Each clip's loudest tone decides its class by construction: 1 kHz -> 1, 440 Hz -> 0, 2.5 kHz -> 2.
    clips = {
        _wav(tmp_path / "d1" / "clip.wav", 0.5 * tone(1000)): ("clip", 1),
        _wav(tmp_path / "d2" / "clip.wav", 0.5 * tone(440)): ("clip-2", 0),
        _wav(tmp_path / "d1" / "clip.flac", 0.5 * tone(2500)): ("clip-3", 2),
    }
    out = tmp_path / "res"
    code, stdout, err = run_cli(["explain", *clips, *tones, "--max-queries", "200", "--out", out], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip", "clip-2", "clip-3"]
    for path, (folder, decided) in clips.items():
        summary = json.loads((out / folder / "summary.json").read_text())
        assert summary["source"] == os.path.abspath(path)
        assert summary["original_class"] == decided
        assert f"results in {out / folder}/" in stdout
    code, _, err = run_cli(["explain", *clips, *tones, "--out", out], capsys)  # again: refused
    assert_error(code, err, f"{out / 'clip' / 'summary.json'} already exists")


def _stereo(path, left, right):
    sf.write(str(path), torch.stack([left, right], 1).numpy(), SAMPLE_RATE, subtype="FLOAT")
    return str(path)


def test_per_channel_explains_each_channel_of_a_stereo_file(tones, tmp_path, capsys):
    # Left 440 Hz, right a louder 1 kHz: mixed to mono the model hears 1 kHz only (class 1); each
    # channel alone is decided by its own tone, and its sufficient set holds that tone.
    stereo = _stereo(tmp_path / "stereo.wav", 0.3 * tone(440), 0.6 * tone(1000))
    out = tmp_path / "mixed"
    code, _, err = run_cli(["explain", stereo, *tones, "--max-queries", "200", "--out", out], capsys)
    assert code == 0 and "mixed 2 channels down to mono" in err, err
    assert _sufficient_hz(out) == (1, [1000.0])
    out = tmp_path / "split"
    argv = ["explain", stereo, *tones, "--max-queries", "200", "--per-channel", "--out", out]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["channel-1", "channel-2"]
    for channel, (decided, hz) in enumerate([(0, 440.0), (1, 1000.0)], 1):
        folder = out / f"channel-{channel}"
        assert _sufficient_hz(folder) == (decided, [hz])
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["channel"] == channel and summary["clip"] == f"stereo.wav channel {channel}"
        assert f"stereo.wav: channel {channel} of 2" in err and f"results in {folder}/" in stdout
    assert "mixed" not in err


def test_per_channel_of_several_files_nests_channel_folders_and_checks_them_first(tones, tmp_path, capsys):
    stereo = _stereo(tmp_path / "a.wav", 0.3 * tone(440), 0.6 * tone(1000))
    mono = _wav(tmp_path / "b.wav", 0.5 * tone(2500))
    out = tmp_path / "out"
    (out / "b" / "channel-1").mkdir(parents=True)
    (out / "b" / "channel-1" / "summary.json").write_text("mine")
    argv = ["explain", stereo, mono, *tones, "--max-queries", "200", "--per-channel", "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert_error(code, err, f"{out / 'b' / 'channel-1' / 'summary.json'} already exists")
    assert not (out / "a").exists()
    code, _, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert _sufficient_hz(out / "a" / "channel-2") == (1, [1000.0])
    assert _sufficient_hz(out / "b" / "channel-1") == (2, [2500.0])


# 3. The decision with its own confidence; the target with its own; the core's warnings.


def _softmax_of_tones(path):
    wave, _ = sf.read(path, dtype="float32")
    return ToneClassifier([440, 1000, 2500])(torch.from_numpy(wave).unsqueeze(0)).softmax(-1)[0]


def test_summary_line_gives_decision_and_target_each_with_its_confidence(tones, clip_file, tmp_path, capsys):
    probabilities = _softmax_of_tones(clip_file)  # 1 kHz is the loudest tone: class 1
    assert probabilities.argmax() == 1
    out = tmp_path / "r"
    code, stdout, err = run_cli(["explain", clip_file, *tones, "--target", "0", "--max-queries", "200", "--out", out], capsys)
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert f"decision 1 (confidence {probabilities[1]:.2f})" in first
    assert f"target 0 (confidence {probabilities[0]:.2f})" in first
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_is_decision"] is False
    for warning in summary["warnings"]:  # a TorchScript model has no class names: printed verbatim
        assert f"  warning: {warning}" in stdout.splitlines()
    code, stdout, _ = run_cli(["explain", clip_file, *tones, "--max-queries", "200", "--out", tmp_path / "r2"], capsys)
    assert code == 0 and "target" not in stdout.splitlines()[0]


def test_a_baseline_that_already_decides_is_said_plainly(tones, clip_file, tmp_path, capsys):
    # The baseline is a loud 1 kHz tone: alone, it already gets the clip's decision (class 1).
    baseline = _wav(tmp_path / "loud_1k.wav", tone(1000))
    out = tmp_path / "r"
    code, stdout, err = run_cli(
        ["explain", clip_file, *tones, "--baseline", baseline, "--max-queries", "200", "--out", out], capsys
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline_decides"] is True and summary["baseline"]["decided_class"] == 1
    lines = stdout.splitlines()
    assert summary["warnings"] and all(f"  warning: {w}" in lines for w in summary["warnings"])
    hint = [line for line in lines if line.startswith("  hint:")]
    assert len(hint) == 1 and "alone already makes the model decide 1" in hint[0] and "--baseline noise" in hint[0]


@pytest.mark.skipif(not HAS_ZOO, reason="captum_freqrex.zoo is not built")
def test_summary_names_the_classes_of_a_zoo_model(tmp_path, capsys):
    from captum_freqrex import zoo

    model, clip = zoo.load("percussion"), zoo.load_clip("percussion", 0)
    path = tmp_path / "drum.wav"
    sf.write(str(path), clip.waveform.numpy(), clip.sample_rate)
    with torch.no_grad():
        probabilities = model.model(clip.waveform.unsqueeze(0)).softmax(-1)[0]
    decided = int(probabilities.argmax())
    target = (decided + 1) % len(model.class_names)
    argv = ["explain", path, "--model", "percussion", "--target", model.class_names[target], "--max-queries", "100"]
    code, stdout, err = run_cli([*argv, "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert f"decision {model.class_names[decided]} (confidence {probabilities[decided]:.2f})" in first
    assert f"target {model.class_names[target]} (confidence {probabilities[target]:.2f})" in first
    warnings = [line for line in stdout.splitlines() if line.startswith("  warning:")]
    assert any(f"class {target} '{model.class_names[target]}'" in line for line in warnings)


# 4. --baseline silence|noise|pink|FILE.


@pytest.fixture
def explain_calls(monkeypatch):
    """What the command passes to FreqReX.explain."""
    import captum_freqrex.cli as cli

    calls = []

    class Recording(cli.FreqReX):
        def explain(self, inputs, baselines=None, *args, **kwargs):
            calls.append({"inputs": inputs, "baselines": baselines, **kwargs})
            return super().explain(inputs, baselines, *args, **kwargs)

    monkeypatch.setattr(cli, "FreqReX", Recording)
    return calls


def _rms(x):
    return x.double().pow(2).mean().sqrt()


@pytest.mark.parametrize("kind, ratio_range", [("noise", (0.6, 1.6)), ("pink", (6.0, 16.0))])
def test_noise_baselines_are_seeded_and_30_db_below_the_clip(
    tones, clip_file, tmp_path, capsys, explain_calls, kind, ratio_range
):
    def baseline_of(seed, out):
        code, _, err = run_cli(
            ["explain", clip_file, *tones, "--baseline", kind, "--seed", seed, "--max-queries", "200", "--out", out],
            capsys,
        )
        assert code == 0, err
        return explain_calls[-1]["inputs"].reshape(-1), explain_calls[-1]["baselines"].reshape(-1)

    clip, base = baseline_of(3, tmp_path / "a")
    assert base.shape == clip.shape
    assert abs(20 * torch.log10(_rms(base) / _rms(clip)).item() + 30.0) < 0.01
    # 1 s at 8 kHz: rfft bin k is k Hz. White: flat power; pink: power ~ 1/f, so the decade
    # 50-150 Hz holds 10x the mean power of 500-1500 Hz.
    power = torch.fft.rfft(base.double()).abs().pow(2)
    low, high = ratio_range
    assert low < (power[50:150].mean() / power[500:1500].mean()).item() < high
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["baseline"]["kind"] == kind and summary["baseline"]["level_db"] == -30.0
    assert summary["baseline"]["seed"] == 3
    assert torch.equal(baseline_of(3, tmp_path / "b")[1], base)  # same seed, same noise
    assert not torch.equal(baseline_of(4, tmp_path / "c")[1], base)


def test_file_baseline_is_fitted_to_the_model_like_the_input(tones, clip_file, tmp_path, capsys, explain_calls):
    half_second = 0.3 * tone(2500, 0.5)
    path = _wav(tmp_path / "room.wav", half_second, subtype="FLOAT")
    code, _, err = run_cli(
        ["explain", clip_file, *tones, "--baseline", path, "--max-queries", "200", "--out", tmp_path / "r"], capsys
    )
    assert code == 0, err
    base = explain_calls[-1]["baselines"].reshape(-1)
    assert base.shape == (SAMPLE_RATE,)  # zero-padded to the clip's 1 s
    assert torch.allclose(base[: SAMPLE_RATE // 2], half_second, atol=1e-6) and not base[SAMPLE_RATE // 2 :].any()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["baseline"]["kind"] == "file" and summary["baseline"]["path"] == os.path.abspath(path)
    assert any("zero-padded" in note for note in summary["baseline"]["notes"])


def test_silence_is_the_default_baseline(tones, clip_file, tmp_path, capsys, explain_calls):
    code, _, err = run_cli(["explain", clip_file, *tones, "--max-queries", "200", "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    assert explain_calls[-1]["baselines"] is None
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["baseline"]["kind"] == "silence"


# 5. Clear errors: one line, exit status 2, no traceback.


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--sample-rate", "0"], "argument --sample-rate"),
        (["--sample-rate", "-8000"], "argument --sample-rate"),
        (["--seed", str(2**70)], "argument --seed"),
        (["--seed", "-1"], "argument --seed"),
        (["--max-queries", "0"], "argument --max-queries"),
        (["--baseline", "nowhere.wav"], "--baseline nowhere.wav"),
    ],
)
def test_bad_explain_options_are_refused_before_any_work(tones, clip_file, tmp_path, capsys, monkeypatch, options, fragment):
    import captum_freqrex.cli as cli

    monkeypatch.setattr(cli, "_explain_one", _no_work)
    code, _, err = run_cli(["explain", clip_file, *tones, *options, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--clips", "-2"], "argument --clips"),
        (["--clips", "0"], "argument --clips"),
        (["--ks", "-3"], "argument --ks"),
        (["--ks", "1", "0"], "argument --ks"),
        (["--max-queries", "0"], "argument --max-queries: must be an integer >= 15"),
        (["--seed", str(2**63)], "argument --seed"),
    ],
)
def test_bad_compare_options_are_refused_before_any_work(tmp_path, capsys, monkeypatch, options, fragment):
    import captum_freqrex.cli as cli

    monkeypatch.setattr(cli, "compare_methods", _no_work)
    code, _, err = run_cli(["compare", *options, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, fragment)


@pytest.mark.skipif(not HAS_ZOO, reason="captum_freqrex.zoo is not built")
def test_target_out_of_range_of_named_classes_is_refused_early(clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    monkeypatch.setattr(cli, "_read_audio", _no_work)
    code, _, err = run_cli(["explain", clip_file, "--model", "percussion", "--target", "99", "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "--target 99 is out of range", "5 classes", "snare")


def test_target_out_of_range_of_a_scripted_model_is_one_line(tones, clip_file, tmp_path, capsys):
    code, _, err = run_cli(["explain", clip_file, *tones, "--target", "99", "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "--target 99", "out of range", only_line=False)
    assert not (tmp_path / "r").exists()


def test_ctrl_c_is_one_line(tones, clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_explain_one", interrupted)
    code, _, err = run_cli(["explain", clip_file, *tones, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, only_line=False)
    assert err.strip().splitlines()[-1] == "freqrex: error: interrupted"


def test_memory_error_of_the_core_is_one_line(tones, clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    class OutOfMemory(cli.FreqReX):
        def explain(self, *args, **kwargs):
            raise MemoryError("explaining this clip needs about 40 GiB; this machine has 8 GiB")

    monkeypatch.setattr(cli, "FreqReX", OutOfMemory)
    code, _, err = run_cli(["explain", clip_file, *tones, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "needs about 40 GiB", only_line=False)



def test_memory_running_out_inside_the_fft_is_exit_2(tones, clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    class OutOfMemory(cli.FreqReX):
        def explain(self, *args, **kwargs):
            raise RuntimeError("MKL FFT error: Intel oneMKL DFTI ERROR: Not enough memory to allocate")

    monkeypatch.setattr(cli, "FreqReX", OutOfMemory)
    code, _, err = run_cli(["explain", clip_file, *tones, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "out of memory inside the FFT or the model", only_line=False)

    class Broken(cli.FreqReX):
        def explain(self, *args, **kwargs):
            raise RuntimeError("shape mismatch")

    monkeypatch.setattr(cli, "FreqReX", Broken)
    code, _, err = run_cli(["explain", clip_file, *tones, "--out", tmp_path / "s"], capsys)
    assert code == 1 and "RuntimeError: shape mismatch" in err  # other library failures stay exit 1

@pytest.mark.skipif(not HAS_ZOO, reason="captum_freqrex.zoo is not built")
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_local_path_shadowing_a_zoo_name_is_refused(scripted_model, clip_file, tmp_path, capsys, monkeypatch, kind):
    import shutil

    monkeypatch.chdir(tmp_path)
    if kind == "file":
        shutil.copy(scripted_model, "percussion")
    else:
        os.mkdir("percussion")
    code, _, err = run_cli(["explain", clip_file, "--model", "percussion", "--out", "r"], capsys)
    assert_error(code, err, f"a {kind} percussion exists", "./percussion", "zoo:percussion")
    # zoo:NAME picks the zoo model (its 5 named classes), ./NAME the local one.
    code, _, err = run_cli(["explain", clip_file, "--model", "zoo:percussion", "--target", "99", "--out", "r"], capsys)
    assert_error(code, err, "percussion has 5 classes")
    argv = ["explain", clip_file, "--model", "./percussion", "--sample-rate", SAMPLE_RATE, "--target", "99", "--out", "r"]
    code, _, err = run_cli(argv, capsys)
    if kind == "file":  # the tone classifier: 4 classes
        assert_error(code, err, "--target 99", "4 classes", only_line=False)
    else:
        assert_error(code, err, "./percussion is a folder")


def test_audio_of_absurd_amplitude_is_refused(tones, tmp_path, capsys):
    path = _wav(tmp_path / "loud.wav", 1e30 * tone(1000), subtype="FLOAT")
    code, _, err = run_cli(["explain", path, *tones, "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "peak amplitude 1e+30", "not a waveform in a sane range", "normalise")


# 6. --output: which part of the model's output holds the scores.

TWO_HEADS = '''
import torch

sample_rate = 8000


def _heads(x):
    """'tone': the louder of 440 Hz and 1 kHz (class 0 or 1; 2 below 0.05);
    'low': class 0 while 440 Hz is above 0.05, else class 1."""
    n = x.shape[-1]
    e = torch.fft.rfft(x).abs()[:, [round(440 * n / 8000), round(1000 * n / 8000)]] / (n / 2)
    floor = torch.full_like(e[:, :1], 0.05)
    return {"tone": 10 * torch.cat([e, floor], 1), "low": 10 * torch.cat([e[:, :1], floor], 1)}


def two_heads():
    return _heads


def two_heads_tuple():
    return lambda x: (_heads(x)["low"], _heads(x)["tone"])
'''


@pytest.fixture
def heads_module(tmp_path, monkeypatch):
    """``freqrex_cli_heads:two_heads`` (a dict of two heads, no 'logits') and ``:two_heads_tuple``."""
    import sys

    (tmp_path / "freqrex_cli_heads.py").write_text(TWO_HEADS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "freqrex_cli_heads", raising=False)
    yield "freqrex_cli_heads"
    sys.modules.pop("freqrex_cli_heads", None)


def _sufficient_hz(out):
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["sets"]["sufficient"]
    assert entry["certified"]
    return summary["original_class"], (entry["inputs"][0] if "inputs" in entry else entry)["frequencies_hz"]


@pytest.mark.parametrize(
    "spec, output, decided, cause_hz",
    [
        ("two_heads", "tone", 1, 1000.0),  # 1 kHz (0.5) is louder than 440 Hz (0.2)
        ("two_heads", "low", 0, 440.0),  # 440 Hz is present
        ("two_heads_tuple", "1", 1, 1000.0),  # the tuple's second element: the 'tone' head
        ("two_heads_tuple", "-1", 1, 1000.0),
        ("two_heads_tuple", None, 0, 440.0),  # no --output: the tuple's first element, 'low'
    ],
)
def test_output_picks_the_head_that_is_explained(heads_module, clip_file, tmp_path, capsys, spec, output, decided, cause_hz):
    out = tmp_path / "r"
    selector = [] if output is None else ["--output", output]
    argv = ["explain", clip_file, "--model", f"{heads_module}:{spec}", *selector, "--max-queries", "200", "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    original, hz = _sufficient_hz(out)
    assert original == decided and cause_hz in hz


@pytest.mark.parametrize(
    "spec, options, fragments",
    [
        ("two_heads", ["--output", "scores"],
         ["--output scores: output='scores' selects nothing: the model returned a dict with keys ['tone', 'low']"]),
        ("two_heads", [], ["the model returned a dict with keys ['tone', 'low'] and no 'logits'", "--output KEY"]),
        ("two_heads_tuple", ["--output", "2"], ["--output 2: output=2 selects nothing: the model returned a tuple of 2"]),
    ],
)
def test_an_output_that_selects_nothing_is_one_line_before_any_work(
    heads_module, clip_file, tmp_path, capsys, monkeypatch, spec, options, fragments
):
    import captum_freqrex.cli as cli

    monkeypatch.setattr(cli.FreqReX, "explain", _no_work)
    monkeypatch.setattr(cli, "compare_methods", _no_work)
    for command in ("explain", "compare"):
        argv = [command, clip_file, "--model", f"{heads_module}:{spec}", *options, "--out", tmp_path / command]
        code, _, err = run_cli(argv, capsys)
        # explain names the clip it starts on first (as for a --target the model does not have)
        assert_error(code, err, *fragments, only_line=command == "compare")
        assert not (tmp_path / command).exists()


def test_an_empty_output_is_a_usage_error(heads_module, clip_file, tmp_path, capsys):
    code, _, err = run_cli(["explain", clip_file, "--model", f"{heads_module}:two_heads", "--output", "", "--out", tmp_path / "r"], capsys)
    assert_error(code, err, "argument --output: expected a key or attribute name, or a tuple index")


def test_compare_explains_the_selected_head(heads_module, clip_file, tmp_path, capsys, monkeypatch):
    import captum_freqrex.cli as cli

    passed = {}
    real = cli.compare_methods

    def recording(model, clips, **kwargs):
        passed.update(kwargs)
        return real(model, clips, **kwargs)

    monkeypatch.setattr(cli, "compare_methods", recording)
    argv = ["compare", clip_file, "--model", f"{heads_module}:two_heads", "--output", "low", "--methods", "FreqReX",
            "--ks", "1", "--max-queries", "100", "--out", tmp_path / "c"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert passed["output"] == "low" and "FreqReX" in stdout


def test_explain_asks_for_disjoint_alternatives_with_explanations(tones, clip_file, tmp_path, capsys):
    # The tone classifier decides 1 kHz on this clip; without its bin the decision is 440 Hz, so no
    # disjoint alternative exists: the CLI records the request and says why none was found.
    out = tmp_path / "out"
    assert main(["explain", clip_file, *tones, "--out", str(out), "--explanations", "2", "--max-queries", "200"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["n_explanations"] == 2 and summary["alternatives"] == []
    assert summary["alternatives_report"]["requested"] == 2 and "no further disjoint set" in printed
    with pytest.raises(SystemExit) as refused:
        main(["explain", clip_file, *tones, "--out", str(tmp_path / "x"), "--explanations", "0"])
    assert refused.value.code == 2 and "--explanations: must be an integer >= 1" in capsys.readouterr().err
    code = main(["explain", clip_file, *tones, "--out", str(tmp_path / "y"), "--explanations", "2", "--mode", "necessary"])
    assert code == 2 and "--explanations 2" in capsys.readouterr().err


def test_explain_lets_the_complete_set_stop_further_below_the_confidence(tones, clip_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["explain", clip_file, *tones, "--max-queries", "200", "--complete-tolerance", "0.2"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    complete = summary["sets"]["complete"]
    assert summary["settings"]["complete_tolerance"] == 0.2
    assert complete["certified"] and complete["kept_confidence"] >= summary["original_confidence"] - 0.2
    for bad in ("1", "-0.1", "much"):
        with pytest.raises(SystemExit) as refused:
            main(["explain", clip_file, *tones, "--out", str(tmp_path / "x"), "--complete-tolerance", bad])
        assert refused.value.code == 2
        assert f"--complete-tolerance: must be a number in [0, 1) (a drop in confidence), got {bad}" in capsys.readouterr().err


def test_explain_writes_the_alternatives_audio_and_removes_stale_ones(tmp_path, monkeypatch, capsys):
    # EitherCause fires on 440 Hz alone or on 880 + 1320 Hz: two disjoint certified sets, whose audio
    # is written beside the sets'; a rerun asking for one explanation removes the alternative's files.
    (tmp_path / "freqrex_cli_either.py").write_text(
        "from known_models import EitherCause\n\n\ndef either():\n    return EitherCause([[440], [880, 1320]], 0.5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clip = _wav(tmp_path / "three.wav", tone(440) + tone(880) + tone(1320) + 0.5 * tone(2000), subtype="FLOAT")
    out = tmp_path / "out"
    argv = ["explain", clip, "--model", "freqrex_cli_either:either", "--sample-rate", str(SAMPLE_RATE), "--out", str(out)]
    assert main([*argv, "--explanations", "2", "--audio-files", "all"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["alternatives"]) == 1
    for name in ("alternative_1.wav", "alternative_1_removed.wav", "alternative_1.listen.wav"):
        assert summary["files"][name.replace(".wav", "").replace(".listen", "_listen")] == name
        assert "alternative sufficient set 1" in summary["file_notes"][name]
    # The true-level file is what the model was given: the alternative set alone keeps class 1.
    kept, _ = sf.read(str(out / "alternative_1.wav"), dtype="float32")
    assert EitherCause([[440], [880, 1320]], 0.5)(torch.from_numpy(kept).unsqueeze(0)).argmax().item() == 1
    first = set(summary["alternatives"][0]["frequencies_hz"]) | set(summary["sets"]["sufficient"]["frequencies_hz"])
    assert first == {440.0, 880.0, 1320.0}
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert not list(out.glob("alternative_*")) and (out / "sufficient.listen.flac").exists()


LAYOUT_MODELS = '''
from torch import nn

from known_models import ToneDetector


class WantsChannelAxis(nn.Module):
    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(1, 1, 1, bias=False)
        nn.init.ones_(self.front.weight)
        self.detector = ToneDetector([1000], 0.3)

    def forward(self, waves):  # (batch, 1, time), as a Conv1d front end takes it
        return self.detector(self.front(waves)[:, 0])


def channel_first():
    return WantsChannelAxis().eval()


def wrapped():
    model = channel_first()
    return lambda waves: model(waves.unsqueeze(1))


def unloaded():
    def model(waves):
        raise RuntimeError("weights not loaded: call load_weights() first")
    return model
'''


def test_a_model_that_takes_a_channel_axis_gets_the_fix_in_one_line(tmp_path, monkeypatch, clip_file, capsys):
    # The command line calls the model on (1, time) mono clips: a (batch, 1, time) model scores one
    # as an unbatched channel (no row of scores); the one-line error says it takes a channel axis
    # and how to give it one, and the wrapped model is explained at its tone.
    (tmp_path / "freqrex_cli_layout.py").write_text(LAYOUT_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["explain", clip_file, "--sample-rate", str(SAMPLE_RATE), "--max-queries", "200"]
    code, _, err = run_cli([*argv, "--model", "freqrex_cli_layout:channel_first", "--out", tmp_path / "a"], capsys)
    assert_error(code, err, "(batch, 1, time)", "w.unsqueeze(1)", "package.module:callable", only_line=False)
    out = tmp_path / "b"
    code, _, err = run_cli([*argv, "--model", "freqrex_cli_layout:wrapped", "--out", out], capsys)
    assert code == 0, err
    assert _sufficient_hz(out) == (1, [1000.0])
    # A model failing on the first call for its own reasons (no layout helps) is the model's
    # failure, as in the search's calls: exit status 2, not the library's 1.
    code, _, err = run_cli([*argv, "--model", "freqrex_cli_layout:unloaded", "--out", tmp_path / "c"], capsys)
    assert_error(code, err, "the model failed on FreqReX's waveforms: RuntimeError: weights not loaded", only_line=False)
    assert "(batch, 1, time)" not in err
