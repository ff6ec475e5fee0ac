"""Smoke version of benchmarks/perf.py on tiny clips: the table is complete and sane."""

import csv
import importlib.util
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
