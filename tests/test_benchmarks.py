"""Smoke version of benchmarks/perf.py on tiny clips: the table is complete and sane."""

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from captum_freqrex import FreqReXOptions

#: The joint search of the sufficient-and-necessary and complete sets, and the certification of
#: its two sets (one row each), on top of the responsibility and extraction budgets.
JOINT = FreqReXOptions().max_joint_queries + 2

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perf_benchmark_smoke(tmp_path):
    perf = _load("perf")
    assert perf.main(["--lengths", "0.5", "--repeats", "1", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "perf.csv")))
    assert [r["method"] for r in rows] == [
        "FreqReX", "FreqReX.attribute", "IntegratedGradients", "KernelShap", "FeatureAblation"]
    for row in rows:
        assert int(row["queries"]) > 0 and int(row["forward_calls"]) > 0
        assert 0 <= float(row["overhead_share"]) <= 1
        assert float(row["model_s_median"]) <= float(row["wall_s_median"])
    freqrex, attribute = rows[0], rows[1]
    assert freqrex["certified"] == "True" and freqrex["contains_tone_bin"] == "True"
    assert int(freqrex["queries"]) <= 1000 + 64 + 1 + JOINT
    # attribute asks the responsibility only: fewer queries than explain, its ranking as good here.
    assert int(attribute["queries"]) < int(freqrex["queries"]) and attribute["contains_tone_bin"] == "True"
    assert attribute["vs_ig"] != "" and attribute["synthesis_s_median"] != ""
    text = (tmp_path / "perf.md").read_text()
    assert text.count("\n") == len(rows) + 4 and "device cpu" in text.splitlines()[0]
    assert "peak_cuda_mib" not in rows[0]  # GPU columns only on CUDA


def test_perf_benchmark_smoke_on_the_zoo_model(tmp_path):
    perf = _load("perf")
    args = ["--model", "instruments", "--lengths", "3", "--repeats", "1", "--methods", "FreqReX", "IntegratedGradients"]
    assert perf.main(args + ["--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "perf.csv")))
    assert [(r["model"], r["method"]) for r in rows] == [("instruments", "FreqReX"), ("instruments", "IntegratedGradients")]
    assert rows[0]["certified"] == "True" and "contains_tone_bin" not in rows[0]
    assert int(rows[0]["queries"]) <= 1000 + 64 + 1 + JOINT and int(rows[1]["queries"]) > 0
    # The inverse transforms are part of the overhead, and the floor lies between the model alone
    # and the whole wall time.
    freqrex = rows[0]
    assert 0 < float(freqrex["synthesis_s_median"]) < float(freqrex["overhead_s_median"])
    assert float(freqrex["vs_ig_model_only"]) < float(freqrex["vs_ig_floor"]) <= float(freqrex["vs_ig"])
    assert rows[1]["synthesis_s_median"] == "" and rows[1]["vs_ig_floor"] == ""
    # The share of its floor FreqReX reaches: the floor over its own wall, below 1 by the bookkeeping.
    share = (float(freqrex["model_s_median"]) + float(freqrex["synthesis_s_median"])) / float(freqrex["wall_s_median"])
    assert 0 < float(freqrex["floor_share"]) < 1 and float(freqrex["floor_share"]) == pytest.approx(share, abs=0.05)
    assert rows[1]["floor_share"] == ""
    # One round: the paired ratio is the ratio of the two runs, its range that one value. The
    # table's walls are rounded to 1 ms, so the ratio read from them is known to within that.
    low, high = freqrex["vs_ig_paired_range"].split("-")
    assert low == high == f"{float(freqrex['vs_ig_paired']):.2f}" and rows[1]["vs_ig_paired"] == ""
    wall, ig_wall = float(freqrex["wall_s_median"]), float(rows[1]["wall_s_median"])
    rounding = wall / ig_wall * (0.0005 / wall + 0.0005 / ig_wall) + 0.005
    assert float(freqrex["vs_ig_paired"]) == pytest.approx(wall / ig_wall, abs=rounding)


def test_perf_measures_each_runs_peak_memory_alone():
    perf = _load("perf")
    if not perf.reset_peak_rss():
        pytest.skip("the peak resident set cannot be reset here (not Linux)")
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    big.add_(1.0)
    del big
    before = perf.peak_rss_mib()
    assert perf.reset_peak_rss()
    # Reset to the current size: the freed 64 MiB no longer count.
    assert perf.peak_rss_mib() < before - 32


def test_perf_runs_the_methods_in_rounds_and_pairs_their_ratios_by_round():
    perf = _load("perf")
    asked = []

    def run(name, budget):
        asked.append((name, budget))
        return {"queries": 40 + len(asked)}

    runs = perf.interleaved_runs(["FreqReX", "IntegratedGradients", "KernelShap"], 2, run)
    # Every method once per round; the sampling methods get FreqReX's first run's queries.
    assert asked == [("FreqReX", 0), ("IntegratedGradients", 41), ("KernelShap", 41),
                     ("FreqReX", 41), ("IntegratedGradients", 41), ("KernelShap", 41)]
    assert [r["queries"] for r in runs["FreqReX"]] == [41, 44]
    # Round by round: 2/1, 3/2 and 8/2; the median is the middle ratio, not the ratio of medians (3/2).
    assert perf.paired_ratios([2.0, 3.0, 8.0], [1.0, 2.0, 2.0]) == (2.0, "1.50-4.00")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error given where CUDA is absent")
def test_perf_benchmark_names_the_fix_when_cuda_is_absent(tmp_path):
    perf = _load("perf")
    with pytest.raises(SystemExit, match=r"--device cuda: CUDA is not available.*use --device cpu"):
        perf.main(["--device", "cuda", "--lengths", "0.5", "--repeats", "1", "--out", str(tmp_path)])
    assert not (tmp_path / "perf.csv").exists()


# ----------------------------------------------------------------------------- memory.py


def test_memory_benchmark_smoke(tmp_path):
    memory = _load("memory")
    assert memory.main(["--minutes", "0.05", "--max-queries", "30", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "memory.md").read_text()
    header, _, row = text.splitlines()[2:5]
    record = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
    assert record["samples"] == "48000" and record["max_queries"] == "30"
    peak, estimate = float(record["peak_rss_mib"]), float(record["estimate_mib"])
    assert 100 < peak < 4096 and float(record["estimate_over_peak"]) == pytest.approx(estimate / peak, abs=1e-3)
    assert float(record["output_mb"]) < 1 and record["largest_file"].endswith((".flac", ".png"))


# ----------------------------------------------------------------------------- flip_rates.py --split


def _write_percussion_test_split(root, n=5, offset=0):
    """A tiny data set in load_split's layout: n 1 s clips (decaying tones and noise bursts)."""
    from captum_freqrex import zoo
    from captum_freqrex.datasets._store import save_split, to_int16, write_manifest

    names = list(zoo.load("percussion").class_names)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    waves = []
    for i in range(n):
        decay = torch.exp(-t * (8 + 6 * i))
        body = torch.sin(2 * torch.pi * (60 + 400 * i) * t) if i % 2 == 0 else torch.randn(16000, generator=g)
        waves.append(0.5 * decay * body)
    task = root / "percussion"
    write_manifest(str(task), {"task": "percussion", "class_names": names, "sample_rate": 16000,
                               "splits": {"test": {"n": n, "seconds": 1.0}}})
    save_split(str(task), "test", to_int16(torch.stack(waves).numpy()), [(i + offset) % len(names) for i in range(n)],
               [f"synthetic {i + offset}" for i in range(n)])
    return root


def test_flip_rates_over_a_held_out_split(tmp_path, monkeypatch):
    flip = _load("flip_rates")
    data, out = _write_percussion_test_split(tmp_path / "data"), tmp_path / "out"
    args = ["--split", "test", "--data", str(data), "--models", "percussion", "--methods", "FeatureAblation",
            "band_screening", "--bands", "80", "--threads", "1", "--out", str(out)]
    assert flip.main(args) == 0
    rows = list(csv.DictReader(open(out / "flip_rates_test.csv")))
    assert [(r["model"], r["clips"], r["method"]) for r in rows] == [
        ("percussion", "all 5", "FeatureAblation"), ("percussion", "all 5", "band_screening (necessary)")]
    records = [json.loads(line) for line in open(out / "flip_rates_test_percussion.jsonl")]
    assert sorted((r["method"], r["clip"]) for r in records) == sorted(
        (m, i) for m in ("FeatureAblation", "band_screening (necessary)") for i in range(5))
    by_method = {m: [r for r in records if r["method"] == m] for m in ("FeatureAblation", "band_screening (necessary)")}
    budget = {r["clip"]: r["queries"] for r in by_method["FeatureAblation"]}
    assert set(budget.values()) == {81}  # 80 log bands (all non-empty at 1 Hz bins) plus one
    assert all(r["queries"] <= budget[r["clip"]] for r in by_method["band_screening (necessary)"])
    for row, method in zip(rows, by_method):
        recs = by_method[method]
        assert int(row["n"]) == 5 and int(row["correct"]) == sum(r["target"] == r["label"] for r in recs)
        for j, k in enumerate([1, 5]):
            assert int(row[f"flip@{k}"]) == sum(r["flipped"][j] for r in recs) <= 5
            assert float(row[f"flip@{k}_pct"]) == pytest.approx(100 * int(row[f"flip@{k}"]) / 5, abs=0.05)
            assert int(row[f"flip@{k}_correct"]) <= min(int(row["correct"]), int(row[f"flip@{k}"]))
            assert (row[f"snr_db@{k}"] == "") == (int(row[f"flip@{k}"]) == 0)
    text = (out / "flip_rates_test.md").read_text().splitlines()
    assert "--split test" in text[0] and "1 threads" in text[0]
    assert text[2].startswith("| model | clips | method | queries / clip | flip@1 (all) | flip@5 (all) |")
    assert "correctly classified | flip@1 (correct) | flip@5 (correct) | s / clip |" in text[2]
    assert len([line for line in text if line.startswith("| percussion |")]) == 2

    # Resumed: every record is reused (no model is explained again) and a subset is summarised.
    def no_new_work(*args, **kwargs):
        raise AssertionError("a finished clip was explained again")

    monkeypatch.setattr(flip, "_clip_record", no_new_work)
    assert flip.main(args[:-2] + ["--stride", "2", "--limit", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "flip_rates_test.csv")))
    assert {r["clips"] for r in rows} == {"2 of 5 (every 2nd, first 2)"} and {r["n"] for r in rows} == {"2"}
    assert len(open(out / "flip_rates_test_percussion.jsonl").readlines()) == 10
    with pytest.raises(SystemExit, match=r"made with .*'ks': \[1, 5\].*another --out folder"):
        flip.main(args[:-2] + ["--ks", "1", "--out", str(out)])
    assert flip.main(args + ["--summarize"]) == 0  # the records cover every clip
    _write_percussion_test_split(tmp_path / "other", n=5, offset=1)  # the same rows, other clips
    with pytest.raises(SystemExit, match=r"record of clip 0 is of another clip.*the data set changed"):
        flip.main(args + ["--data", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match=r"percussion: 5 of the 5 selected clips have no records.*--summarize"):
        flip.main(args[:-2] + ["--out", str(tmp_path / "empty"), "--summarize"])


def test_records_resume_past_a_line_cut_short(tmp_path, capsys):
    """Every benchmark resumes from its JSON lines through one reader: a record cut short by a run
    killed mid-write is skipped (that clip is redone), the next record appended starts a line of
    its own, and a file not written yet holds no records."""
    flip = _load("flip_rates")
    path = tmp_path / "records.jsonl"
    assert flip.read_records(str(path)) == []
    flip.append_record(str(path), {"clip": 0})
    with open(path, "a") as handle:
        handle.write('{"clip": 1, "se')  # killed mid-write
    flip.append_record(str(path), {"clip": 2})
    assert flip.read_records(str(path)) == [{"clip": 0}, {"clip": 2}]
    assert "records.jsonl:2: skipped an unreadable record" in capsys.readouterr().err


def test_flip_rate_summary_counts_known_records():
    flip = _load("flip_rates")

    def rec(label, target, flipped, snr):
        return {"label": label, "target": target, "flipped": flipped, "snr_db": snr, "queries": 10, "seconds": 1.0}

    records = [rec(0, 0, [True, True], [30.0, 20.0]), rec(1, 1, [False, True], [35.0, 25.0]),
               rec(2, 0, [True, False], [10.0, 5.0]), rec(1, 1, [False, False], [40.0, 31.0])]
    row = flip.summarize("m", "all 4", "x", records, [1, 5])
    assert (row["n"], row["correct"]) == (4, 3)
    assert (row["flip@1"], row["flip@5"], row["flip@1_correct"], row["flip@5_correct"]) == (2, 2, 1, 2)
    assert (row["flip@1_pct"], row["flip@5_pct"]) == (50.0, 50.0)
    assert (row["snr_db@1"], row["snr_db@5"]) == (20.0, 22.5)  # medians over the flipped clips only
    with pytest.raises(SystemExit, match="--stride takes K or MODEL=K"):
        flip._strides(["speech=0"])
    assert flip._strides(["3", "speech=2"]) == {"*": 3, "speech": 2}
    # Coarse to fine: a run stopped anywhere has finished every L-th clip for some power of two L.
    order = flip._coarse_to_fine(20)
    assert sorted(order) == list(range(20)) and order[:5] == [0, 16, 8, 4, 12]
    for stop in range(1, 21):
        finished = set(order[:stop])
        assert any(set(range(0, 20, step)) <= finished for step in (1, 2, 4, 8, 16, 32))


# ----------------------------------------------------------------------------- single_bin_limit.py


def _tones(*parts, seconds=0.25):
    """A (1, T) clip of sines ``(Hz, amplitude)`` at 8 kHz, each exactly on one rfft bin."""
    from known_models import tone

    return sum(tone(hz, seconds, amplitude) for hz, amplitude in parts).unsqueeze(0)


def test_single_bin_limit_finds_exactly_the_known_bins():
    from known_models import ToneDetector, bin_of

    from captum_freqrex.metrics import perturbation_success_rate

    limit = _load("single_bin_limit")
    # Class 1 when |440 Hz| + |1000 Hz| > 0.9: removing either tone alone flips it, removing the
    # louder 2000 Hz tone (ignored by the model) or any empty bin does not.
    clip = _tones((440, 0.6), (1000, 0.4), (2000, 1.0))
    model = ToneDetector([440, 1000], threshold=0.9)
    record = limit.single_bin_flips(model, clip, 8000, batch_rows=64)
    bins = clip.shape[-1] // 2 + 1
    assert (record["target"], record["bins"], record["flips"], record["ties"]) == (1, bins, 2, 0)
    assert record["queries"] == model.rows == bins + 1  # the clip, then every bin once
    assert record["forward_calls"] == model.calls == 1 + -(-bins // 64)  # batched: 64 removals per call
    energy = 0.6**2 + 0.4**2 + 1.0**2  # sines on bins: energy T/2 * amplitude^2 each
    assert record["loudest"]["bin"] == bin_of(440, 2000) and record["loudest"]["hz"] == 440.0
    assert record["quietest"]["bin"] == bin_of(1000, 2000) and record["quietest"]["to"] == 0
    assert record["loudest"]["snr_db"] == pytest.approx(10 * math.log10(energy / 0.6**2), abs=0.01)
    assert record["quietest"]["snr_db"] == pytest.approx(10 * math.log10(energy / 0.4**2), abs=0.01)
    assert 0 <= record["model_seconds"] <= record["seconds"]
    # The project's own mutants agree: removing each bin alone through the metric flips the same two.
    one_hot = torch.eye(bins)[[bin_of(f, 2000) for f in (440, 1000, 2000, 3000)]]
    flips = perturbation_success_rate(model, clip.expand(4, -1), one_hot, k=1)
    assert flips.flipped.tolist() == [True, True, False, False]


def test_single_bin_limit_never_counts_ties():
    from known_models import ToneDetector

    limit = _load("single_bin_limit")
    # |440| + |1000| = 1.0 > 0.5, and removing either tone leaves exactly 0.5: a tie, not a flip.
    clip = _tones((440, 0.5), (1000, 0.5))
    model = ToneDetector([440, 1000], threshold=0.5)
    outputs = model(clip - _tones((440, 0.5)))
    assert float((outputs[0, 1] - outputs[0, 0]).abs()) < 1e-4  # the model's own scores tie
    record = limit.single_bin_flips(model, clip, 8000)
    assert (record["flips"], record["ties"], record["loudest"], record["quietest"]) == (0, 2, None, None)


def test_single_bin_limit_beside_methods_on_known_clips(tmp_path, monkeypatch):
    from known_models import ToneDetector

    from captum_freqrex.datasets import DatasetSplit

    limit = _load("single_bin_limit")
    clips = torch.cat([_tones((440, 0.6), (1000, 0.4), (2000, 1.0)),  # two bins flip alone
                       _tones((440, 0.5), (1000, 0.5)),                # ties only
                       _tones((440, 0.2), (3000, 1.0))])               # class 0: removals cannot raise it
    data = DatasetSplit(clips, torch.tensor([1, 1, 0]), ("off", "on"), 8000, ["a", "b", "c"])
    # Threshold 0.5: removing 440 Hz from clip a leaves 0.4 (flips), removing 1000 Hz leaves 0.6
    # (keeps); clip b's removals leave exactly 0.5 (ties); clip c is below it whatever is removed.
    model = ToneDetector([440, 1000], threshold=0.5)
    path = str(tmp_path / "records.jsonl")
    settings = {"split": "known", "ks": [1, 5], "seed": 0, "max_queries": 100}
    methods = ["FeatureAblation", "band_screening (necessary)"]
    done = limit.run_clips("tones", model, data, [0, 1, 2], path, settings, methods, [1, 5], 0, 100, 128)
    assert [done[(limit.LIMIT, i)]["flips"] for i in range(3)] == [1, 0, 0]
    assert [done[(limit.LIMIT, i)]["ties"] for i in range(3)] == [0, 2, 0]
    assert done[(limit.LIMIT, 0)]["loudest"]["hz"] == 440.0  # removing 440 Hz leaves 0.4 < 0.5
    for i in range(3):
        budget = done[("FeatureAblation", i)]["queries"]
        assert budget <= 100 and done[("band_screening (necessary)", i)]["queries"] <= budget
    rows = limit.summarize("tones", "all 3", [done[(limit.LIMIT, i)] for i in range(3)],
                           {m: [done[(m, i)] for i in range(3)] for m in methods}, [1, 5])
    assert [r["method"] for r in rows] == [limit.LIMIT, "FeatureAblation", limit.LABELS["band_screening (necessary)"]]
    assert (rows[0]["flip@1"], rows[0]["share_of_limit"], rows[0]["ties"]) == (1, 1.0, 2)
    for row in rows[1:]:
        assert row["flip@1"] <= rows[0]["flip@1"] and row["flip@1_beyond_limit"] == 0
        assert row["share_of_limit"] == row["flip@1"] / 1
    assert rows[1]["flip@1"] == rows[2]["flip@1"] == 1  # both find the 440 Hz bin within 100 queries
    table = limit._markdown(rows, [1, 5]).splitlines()
    assert table[0].startswith("| model | clips | method | queries / clip | flip@1 | flip@5 | share of the limit (flip@1) |")
    assert table[2].startswith(f"| tones | all 3 | {limit.LIMIT} | ") and "| 1/3 | - | 100% |" in table[2]

    # Resumed: nothing is run again.
    def no_new_work(*args, **kwargs):
        raise AssertionError("a finished clip was run again")

    monkeypatch.setattr(limit, "single_bin_flips", no_new_work)
    monkeypatch.setattr(limit.flip_rates, "_clip_record", no_new_work)
    assert limit.run_clips("tones", model, data, [0, 1, 2], path, settings, methods, [1, 5], 0, 100, 128) == done

    # --redo: one method's records are dropped and made again, the exhaustive pass's are kept.
    assert limit.drop_records(path, ["band_screening (necessary)"]) == 3
    assert limit.drop_records(str(tmp_path / "none.jsonl"), ["FeatureAblation"]) == 0
    monkeypatch.undo()
    monkeypatch.setattr(limit, "single_bin_flips", no_new_work)
    again = limit.run_clips("tones", model, data, [0, 1, 2], path, settings, methods, [1, 5], 0, 100, 128)
    timeless = lambda records: {key: {k: v for k, v in r.items() if k != "seconds"} for key, r in records.items()}  # noqa: E731
    assert timeless(again) == timeless(done)  # deterministic: the same records again, but for the wall time


def test_single_bin_limit_summary_of_known_records():
    limit = _load("single_bin_limit")

    def exhaustive(clip, flips, quiet=None, loud=None):
        spot = lambda snr: None if snr is None else {"bin": 1, "hz": 1.0, "snr_db": snr, "to": 0}  # noqa: E731
        return {"clip": clip, "flips": flips, "ties": 1, "quietest": spot(quiet), "loudest": spot(loud),
                "queries": 9, "seconds": 2.0, "model_seconds": 1.5}

    def method(clip, flipped, snr):
        return {"clip": clip, "flipped": flipped, "snr_db": snr, "queries": 5, "seconds": 1.0}

    records = [exhaustive(0, 3, 40.0, 20.0), exhaustive(1, 0), exhaustive(2, 1, 30.0, 30.0), exhaustive(3, 0)]
    found = [method(0, [True, True], [35.0, 25.0]), method(1, [False, True], [50.0, 21.0]),
             method(2, [False, False], [60.0, 40.0]), method(3, [False, False], [50.0, 40.0])]
    rows = limit.summarize("m", "all 4", records, {"refinement (necessary)": found}, [1, 5])
    assert rows[0]["flip@1"] == 2 and rows[0]["snr_db@1"] == 35.0  # median quietest flip of clips 0 and 2
    assert (rows[0]["flipping_bins_median"], rows[0]["loudest_flip_snr_db_median"], rows[0]["ties"]) == (2.0, 25.0, 4)
    assert rows[0]["model_share"] == pytest.approx(0.75)
    assert rows[1]["method"] == limit.LABELS["refinement (necessary)"]
    assert (rows[1]["flip@1"], rows[1]["flip@5"], rows[1]["share_of_limit"]) == (1, 2, 0.5)
    assert (rows[1]["snr_db@1"], rows[1]["snr_db@5"], rows[1]["flip@1_beyond_limit"]) == (35.0, 23.0, 0)
    # A flip at k = 1 where no single bin flips would be a contradiction: it is counted, not hidden.
    found[1]["flipped"][0] = True
    assert limit.summarize("m", "all 4", records, {"x": found}, [1, 5])[1]["flip@1_beyond_limit"] == 1
    # No clip within reach: no share to report.
    assert limit.summarize("m", "all 1", [exhaustive(1, 0)], {"x": found[1:2]}, [1, 5])[1]["share_of_limit"] is None


def test_single_bin_limit_pairs_each_method_with_feature_ablation():
    """A method's SNR is compared with FeatureAblation's on the clips where both flip at k only:
    its own median (over its flips, a loud hard clip included) says it is louder, the pairs say it
    is quieter on both clips they share."""
    limit = _load("single_bin_limit")
    records = [{"clip": c, "flips": 1, "ties": 0, "quietest": {"snr_db": 40.0}, "loudest": {"snr_db": 20.0},
                "queries": 9, "seconds": 2.0, "model_seconds": 1.5} for c in range(3)]

    def method(clip, flipped, snr):
        return {"clip": clip, "flipped": [flipped, False], "snr_db": [snr, 0.0], "queries": 5, "seconds": 1.0}

    ablation = [method(0, True, 30.0), method(1, True, 33.0), method(2, False, 50.0)]
    screening = [method(0, True, 31.0), method(1, True, 34.0), method(2, True, 10.0)]  # clip 2: hard and loud
    rows = limit.summarize("m", "all 3", records, {"FeatureAblation": ablation, "band_screening (necessary)": screening}, [1, 5])
    mine = rows[2]
    assert mine["snr_db@1"] == 31.0 < rows[1]["snr_db@1"] == 31.5  # its own median, pulled down by clip 2
    assert (mine["paired@1"], mine["snr_db@1_minus_ablation"], mine["quieter@1"], mine["louder@1"]) == (2, 1.0, 2, 0)
    assert (mine["paired@5"], mine["snr_db@5_minus_ablation"]) == (0, None)
    assert rows[1]["paired@1"] is None and rows[0]["paired@1"] is None  # no pairing for the baseline rows
    table = limit._markdown(rows, [1, 5])
    assert "| m | band_screening (necessary; the default now) | 1 | 2 | +1.00 | 2 | 0 |" in table


def test_single_bin_limit_refuses_bad_options(capsys):
    limit = _load("single_bin_limit")
    for args, message in ((["--limit", "speech=0"], "--limit takes N or MODEL=N"), (["--ks", "5"], "--ks must start with 1"),
                          (["--methods", "KernelShap"], "unknown methods"), (["--redo", "KernelShap"], "unknown methods"),
                          (["--redo", "FeatureAblation", "--summarize"], "cannot go with --summarize")):
        with pytest.raises(SystemExit):
            limit.main(args + ["--out", "/nonexistent"])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--queries must be at least 2"):
        limit.bands_within(16000, 16000, 1)
    # FeatureAblation's bands fit the queries: one per non-empty band plus one, as many as fit.
    bands = limit.bands_within(16000, 16000, 1000)
    assert int(bands.unique().numel()) + 1 == 1000


def test_sn_sets_benchmark_records_both_extractions():
    """benchmarks/sn_sets.py on the tone task: the sufficient set's removal flips the decision, so the
    default's searched sets are that one bin, found for fewer queries than the three prefix
    searches; both extractions return the same certified sets; the 5% bands over 440 Hz flip the
    decision and, with the bin (and with the ranking's top added), keep it alone (the
    physical-limit check)."""
    from known_models import ToneDetector, tone

    sn_sets = _load("sn_sets")
    clip = (tone(440) + 0.5 * tone(1000)).unsqueeze(0)
    record = sn_sets.clip_record(ToneDetector([440], threshold=0.5), clip, 0)
    assert record["joint_queries"] < 0 and record["n_features"] == clip.shape[-1] // 2 + 1
    for kind in sn_sets.KINDS:
        assert record["default"][kind]["size"] == record["prefix"][kind]["size"] == 1
        assert record["default"][kind]["certified"]
        assert record["default"][kind]["searched"] == (kind != "sufficient")
    bands = record["bands"]
    assert bands["width"] == int(0.05 * record["n_features"]) and 0 < bands["both"] <= bands["flips"] < bands["bands"]
    assert 0 < bands["grown"] <= bands["flips"]
    rows = sn_sets.summarize("tone", "1 clip", [record])
    assert [r["set"] for r in rows] == ["sufficient", "sufficient-and-necessary", "complete"]
    assert all(r["found (default)"] == "1/1" and r["<= 5% (default)"] == "1/1" for r in rows)
    assert [r["searched"] for r in rows] == ["0/1", "1/1", "1/1"]
    assert rows[1]["5% band flips (clips)"] == rows[1]["5% band S&N (clips)"] == "1/1"
    assert rows[1]["5% band + S + top 1% S&N (clips)"] == "1/1"


def test_harmonics_soundfont_measures_against_f0_and_the_peak():
    """``harmonics.py --soundfont``'s measures on one rendered note: "within 1% of n * f0" and the
    reference set (the loudest bin, alone or with one harmonic's), queried and kept."""
    spec = importlib.util.spec_from_file_location("harmonics_benchmark", ROOT / "benchmarks" / "harmonics.py")
    harmonics = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harmonics  # its dataclasses look their module up there
    spec.loader.exec_module(harmonics)
    near = harmonics.near_harmonic(torch.tensor([100.0, 199.0, 203.0, 991.0, 40.0]), 100.0)
    assert near.tolist() == [True, True, False, True, False]  # 1% of 2 * f0 = 2 Hz; 40 Hz: n = 1
    model = harmonics.FrameNormalisedPitch.for_midi(16000).eval()
    clips, misses = harmonics.soundfont_notes(model)
    assert len(clips) == 24 and misses == []
    piano = next(c for c in clips if c.name == "piano_57")
    reference = harmonics.peak_reference(model, piano, "harmonics")
    assert (reference.certified, reference.size, reference.at_harmonic, reference.loudest_db) == (True, 1, True, 0.0)
    assert reference.meets_both and reference.queries == 12
    # Without f0: the partners are spectral peaks at least 10 Hz (10 bins) from any louder bin.
    magnitude = torch.fft.rfft(piano.waveform[0].double()).abs()
    peaks = harmonics.partner_bins(magnitude, piano, "peaks")
    assert len(peaks) == 12 and int(magnitude.argmax()) not in peaks
    assert all(magnitude[b] == magnitude[max(b - 10, 0) : b + 11].max() for b in peaks)
    assert harmonics.peak_reference(model, piano, "peaks").queries == 13


# ----------------------------------------------------------------------------- held_out_defaults.py
def test_held_out_defaults_records_and_summary_on_known_clips():
    """The default on a tone the detector hears (one loud peak: the whole answer) and on a quiet
    tone it hears 30 dB below a louder one it ignores (a set flagged below the clip's level): the
    records say which way each took, and the summary counts the flagged set."""
    from known_models import SAMPLE_RATE, ToneDetector, tone

    module = _load("held_out_defaults")
    loud = module.explain_record(ToneDetector([440], threshold=0.5), tone(440).unsqueeze(0), seed=0)
    assert loud["strategy"] == "loud peak" and loud["stopped_by"] == "minimal" and loud["search_queries"] <= 4
    assert loud["sets"]["sufficient"] == {"size": 1, "share": 1 / (SAMPLE_RATE // 2 + 1), "level_db": 0.0}
    quiet_clip = (tone(440) + 0.03 * tone(3000)).unsqueeze(0)
    quiet = module.explain_record(ToneDetector([3000], threshold=0.02), quiet_clip, seed=0)
    assert quiet["sets"]["sufficient"]["size"] == 1 and quiet["sets"]["sufficient"]["level_db"] < -20
    rows = module.summarize([{"clip": 0, "seed": 0, **loud}, {"clip": 1, "seed": 0, **quiet}])
    sufficient = rows[0]
    assert (sufficient["set"], sufficient["found"], sufficient["below_clip_level"], sufficient["over_half"]) == ("sufficient", 2, 1, 0)
    assert sufficient["median_queries"] == (loud["queries"] + quiet["queries"]) / 2


def test_held_out_defaults_explains_files_as_users_bring_them_and_records_what_fails(tmp_path):
    """--files: a stereo 44.1 kHz clip is mixed down, resampled and padded to the zoo model as the
    command line does, and explained (its record says whether every set was certified, and its
    flags); a file that is not audio is recorded with its error and the run goes on."""
    import soundfile as sf

    module = _load("held_out_defaults")
    t = torch.arange(22050) / 44100
    stereo = torch.stack([torch.sin(2 * math.pi * 200 * t), 0.5 * torch.sin(2 * math.pi * 3000 * t)], dim=1)
    (tmp_path / "kit").mkdir()
    sf.write(str(tmp_path / "kit" / "hit.wav"), (0.5 * stereo).numpy(), 44100)
    (tmp_path / "kit" / "broken.wav").write_text("not audio")
    out = tmp_path / "out"
    argv = ["--model", "percussion", "--files", str(tmp_path / "kit" / "hit.wav"), str(tmp_path / "kit" / "broken.wav"),
            "--out", str(out)]
    assert module.main(argv) == 0
    records = {r["clip"]: r for r in map(json.loads, (out / "held_out_defaults_percussion_files.jsonl").read_text().splitlines())}
    assert set(records) == {"kit/hit.wav", "kit/broken.wav"}
    assert "error" in records["kit/broken.wav"] and "broken.wav" in records["kit/broken.wav"]["error"]
    hit = records["kit/hit.wav"]
    assert isinstance(hit["certified"], bool) and isinstance(hit["flags"], list) and hit["queries"] > 0
    table = (out / "held_out_defaults_percussion_files.md").read_text()
    assert "of 1; failed: 1" in table and "error:" in table
    assert table.splitlines()[0].startswith("`benchmarks/held_out_defaults.py --model percussion --files <2 files in 1 folders under ")
    assert module.main(argv) == 0  # resumed: the explained file is not asked again, the failed one is
    again = [json.loads(line)["clip"] for line in (out / "held_out_defaults_percussion_files.jsonl").read_text().splitlines()]
    assert sorted(again) == ["kit/broken.wav", "kit/broken.wav", "kit/hit.wav"]


def test_next_steps_table_counts_the_sets_each_option_brought_under_half():
    next_steps = _load("next_steps")
    options = list(next_steps.OPTIONS)
    records = [
        {"clip": "a", "model": "m", "kind": "complete", "default": 0.9, **{o: 0.9 for o in options}},
        {"clip": "b", "model": "m", "kind": "complete", "default": 0.7, **{o: 0.7 for o in options}},
    ]
    records[0]["--complete-tolerance 0.2"] = 0.1
    records[1]["--complete-tolerance 0.2"] = None  # not found with it: counted as the whole input
    lines = next_steps.table(records)
    row = next(line for line in lines if "`--complete-tolerance 0.2`" in line)
    assert row == "| complete | 2 | `--complete-tolerance 0.2` | 1/2 | 80.0% | 55.0% |"
    assert not any(line.startswith("| sufficient-and-necessary") for line in lines)
    assert next(line for line in lines if "`--bands 64`" in line).endswith("| 0/2 | 80.0% | 80.0% |")


def test_necessary_answers_counts_all_zero_wide_and_loud_run_answers_on_known_clips():
    """A tone classifier (a single-bin flip: the answer is that bin), a detector that only a removal
    of more than a tenth of the bins fools (the wide fallback's eighth), one that only removing
    more than 60% fools (an all-zero answer, though the baseline alone flips it; the answer set is
    the sufficient-and-necessary set) and ScatteredKeyPartials (the loud runs' answer: its six key
    partials)."""
    from known_models import (SAMPLE_RATE, ScatteredKeyPartials, SpectrumCoverageDetector, ToneClassifier, impulse,
                              scattered_key_partials_clip, tone)

    module = _load("necessary_answers")
    single = module.answer_record(ToneClassifier([440, 1000]), (tone(440) + 0.5 * tone(1000)).unsqueeze(0))
    assert single["smallest"] == 1 and single["flipped"][0] and single["wide_flip"] is None
    clip = impulse(SAMPLE_RATE // 2).unsqueeze(0)
    n = SAMPLE_RATE // 4 + 1
    wide = module.answer_record(SpectrumCoverageDetector(share=0.9), clip)
    assert wide["baseline_flips"] and abs(wide["wide_flip"] - n / 8) <= 1 and wide["credited"] == n
    none = module.answer_record(SpectrumCoverageDetector(share=0.4), clip)
    assert none["baseline_flips"] and none["credited"] == 0 and none["smallest"] is None
    key = scattered_key_partials_clip()  # only removing its six scattered key partials flips it
    runs = module.answer_record(ScatteredKeyPartials(key), key)
    assert runs["loud_run_flip"] == 6 and runs["smallest"] == 6 and runs["wide_flip"] is None
    row = module.summarize("known", [single, wide, none, runs])
    assert (row["clips"], row["all_zero"], row["all_zero_baseline_flips"], row["wide"], row["flip@1"]) == (4, 1, 1, 1, 1)
    assert (row["flip_known"], row["answered"], row["loud_runs"]) == (4, 3, 1)
    assert row["median_smallest"] == 6  # of 1, 6 and an eighth of the bins
    # The answer as a set: the search's own where it has one (the wide eighth shrunk toward the
    # tenth of the bins that any removal needs; the loud runs' six partials shrunk already); where
    # it answers all zeros, the certified sufficient-and-necessary set (over 60% of the bins: only
    # such a removal fools it).
    assert [single["manipulation"], runs["manipulation"]] == [1, 6]
    assert 0.1 * n < wide["manipulation"] < wide["wide_flip"]
    assert none["manipulation_from_sn"] and none["manipulation"] > 0.6 * n
    assert all(r["manipulation_certified"] for r in (single, wide, none, runs))
    assert (row["certified_answers"], row["answers_from_sn"]) == (4, 1)
    assert single["queries"] < single["explain_queries"]
    # The answer that removes most of the spectrum is flagged, and so is the tone classifier's 440 Hz
    # bin (80% of the clip's energy), not the six key partials; the next step, STFT cells, flips
    # the detector with a certified removal of a few cells, no longer flagged.
    assert none["manipulation_flags"] == ["most_of_spectrum", "most_of_sound"]
    assert single["manipulation_flags"] == ["most_of_sound"] and runs["manipulation_flags"] == []
    step = module.next_step_record(SpectrumCoverageDetector(share=0.4), clip, none["target"])
    assert step["stft_certified"] and not step["stft_flags"] and step["stft_answer"] < 0.1 * step["stft_cells"]
    row = module.summarize_next_step("known", [{"clip": 0, **none}, {"clip": 1, **single}], {0: step})
    assert (row["flagged"], row["tried"], row["certified"], row["unflagged"]) == (2, 1, 1, 1)
    assert row["median_stft_snr"] > row["median_snr"]


# ----------------------------------------------------------------------------- white_box_sets.py


def test_white_box_witnesses_of_a_tone_detector_are_its_tones():
    """ToneDetector([440, 1000], require_all): class 1 while both tones are present, so removing
    either alone flips it and only the pair, kept alone, keeps it. The optimised masks rank the
    decisive bins first: the flipping removal is one bin, the set holding both claims the pair
    (checked on real decisions), as is the complete witness (the pair kept alone is the input's
    confidence), and a model that no removal flips has no witness."""
    from known_models import ToneDetector

    white_box = _load("white_box_sets")
    clip = _tones((440, 0.6), (1000, 0.6), (2000, 1.0), seconds=1.0)
    both_tones = ToneDetector([440, 1000], threshold=0.3, require_all=True)
    assert both_tones(clip).argmax(1).item() == 1
    assert white_box.smallest_witness(both_tones, clip, 1, "flip") == 1
    assert white_box.smallest_witness(both_tones, clip, 1, "both") == 2
    assert white_box.smallest_witness(both_tones, clip, 1, "complete") == 2
    deaf = ToneDetector([3000], threshold=-1.0)  # class 1 whatever is removed
    assert white_box.smallest_witness(deaf, clip, 1, "flip") is None


def test_white_box_summary_counts_the_clips_each_set_was_found_on():
    white_box = _load("white_box_sets")
    records = [{"flip": 0.001, "both": 0.3, "search": 0.2, "complete": 0.6, "search_complete": 0.7},
               {"flip": 0.002, "both": None, "search": 0.04, "complete": 0.02, "search_complete": 0.03},
               {"flip": None, "both": 0.5, "search": None}]  # a record from before the complete goal
    row = white_box.summarize("m", "3 of 9", records)
    assert row["white-box complete: found"] == "2/3" and row["white-box complete: median share"] == "31.00%"
    assert row["FreqReX default complete: <= 5%"] == "1/2"
    assert row["white-box flipping removal: found"] == "2/3" and row["white-box flipping removal: <= 5%"] == "2/2"
    assert row["white-box both claims: median share"] == "40.00%" and row["white-box both claims: <= 5%"] == "0/2"
    assert row["FreqReX default (searched): median share"] == "12.00%"
