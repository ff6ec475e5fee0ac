"""Smoke version of benchmarks/perf.py on tiny clips: the table is complete and sane."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

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
    assert [r["method"] for r in rows] == ["FreqReX", "IntegratedGradients", "KernelShap", "FeatureAblation"]
    for row in rows:
        assert int(row["queries"]) > 0 and int(row["forward_calls"]) > 0
        assert 0 <= float(row["overhead_share"]) <= 1
        assert float(row["model_s_median"]) <= float(row["wall_s_median"])
    freqrex = rows[0]
    assert freqrex["certified"] == "True" and freqrex["contains_tone_bin"] == "True"
    assert int(freqrex["queries"]) <= 1000 + 64 + 1
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
    assert int(rows[0]["queries"]) <= 1000 + 64 + 1 and int(rows[1]["queries"]) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error given where CUDA is absent")
def test_perf_benchmark_names_the_fix_when_cuda_is_absent(tmp_path):
    perf = _load("perf")
    with pytest.raises(SystemExit, match=r"--device cuda: CUDA is not available.*use --device cpu"):
        perf.main(["--device", "cuda", "--lengths", "0.5", "--repeats", "1", "--out", str(tmp_path)])
    assert not (tmp_path / "perf.csv").exists()


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
