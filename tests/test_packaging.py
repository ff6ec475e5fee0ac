"""Packaging: one version source, ``--version``, ``python -m``, py.typed, the extras' error messages,
and the torch-only resampler used when torchaudio cannot be imported."""

import importlib.abc
import importlib.metadata
import importlib.resources
import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
import torch

import captum_freqrex
from captum_freqrex import audio
from captum_freqrex.cli import main
from captum_freqrex.compare import compare_methods
from known_models import SAMPLE_RATE, ToneClassifier, tone

ROOT = Path(__file__).resolve().parents[1]
INSTALL_LINE = 'pip install "captum_freqrex[compare]"'


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


# ----------------------------------------------------------------------------- version and entry points


def test_one_version_source_and_the_metadata_agree():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "captum_freqrex._version.__version__"
    from captum_freqrex._version import __version__

    assert captum_freqrex.__version__ == __version__
    # the installed metadata was generated from the same source (reinstall after a bump: make setup)
    assert importlib.metadata.version("captum_freqrex") == __version__


def test_freqrex_version_prints_name_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"freqrex {captum_freqrex.__version__}\n"


def test_python_m_captum_freqrex_runs_the_same_cli():
    version = subprocess.run(
        [sys.executable, "-m", "captum_freqrex", "--version"], capture_output=True, text=True, timeout=120
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"freqrex {captum_freqrex.__version__}\n"
    usage = subprocess.run([sys.executable, "-m", "captum_freqrex"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("freqrex: error:")  # no subcommand: the CLI's error


def test_py_typed_is_in_the_installed_package():
    assert importlib.resources.files("captum_freqrex").joinpath("py.typed").is_file()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["captum_freqrex"]


def test_wheel_ships_py_typed_main_and_the_compare_extra(tmp_path):
    """Build a wheel from a copy of the sources (no network, no build isolation) and read it."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "captum_freqrex", source / "captum_freqrex", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    build = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))",
         str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = tmp_path / "dist" / build.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    assert {"captum_freqrex/py.typed", "captum_freqrex/__main__.py", "captum_freqrex/_version.py"} <= names
    assert any(n.startswith("captum_freqrex/zoo/weights/") for n in names)
    assert f"\nVersion: {captum_freqrex.__version__}\n" in metadata
    assert "Provides-Extra: compare" in metadata
    assert any(line.startswith("Requires-Dist: scikit-learn") and 'extra == "compare"' in line
               for line in metadata.splitlines())
    torch_requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch_requirements == ["Requires-Dist: torch>=2.1"]  # the core's only torch line; pins live in constraints.txt


def test_torch_stays_out_of_the_build_system_and_extras():
    project = _pyproject()
    assert not any(req.startswith("torch") for req in project["build-system"]["requires"])
    for extra, requirements in project["project"]["optional-dependencies"].items():
        assert not any(req.split(">")[0].split("=")[0].strip() in ("torch", "torchaudio") for req in requirements), extra
    dev = set(project["project"]["optional-dependencies"]["dev"])
    assert set(project["project"]["optional-dependencies"]["compare"]) <= dev  # the test env covers the compare extra


# ----------------------------------------------------------------------------- scikit-learn missing


@pytest.fixture
def no_sklearn(monkeypatch):
    """Make ``import sklearn`` (and its submodules) raise ImportError, as when it is not installed."""
    for name in [n for n in sys.modules if n == "sklearn" or n.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("sklearn", "sklearn.linear_model", "sklearn.svm"):
        monkeypatch.setitem(sys.modules, name, None)


def _compare_inputs():
    return ToneClassifier([440, 1000]), (tone(440, 0.1) + 0.5 * tone(1000, 0.1)).unsqueeze(0)


@pytest.mark.parametrize("method", ["KernelShap", "Lime"])
def test_missing_sklearn_names_the_extra_before_any_work(no_sklearn, method):
    model, clips = _compare_inputs()
    with pytest.raises(ImportError, match=r'pip install "captum_freqrex\[compare\]"') as error:
        compare_methods(model, clips, methods=["FreqReX", method], sample_rate=SAMPLE_RATE, strict=True)
    assert method in str(error.value) and "scikit-learn" in str(error.value)
    assert model.detector.calls == 0  # raised before FreqReX ran


def test_missing_sklearn_is_reported_in_the_row_with_the_extra(no_sklearn):
    model, clips = _compare_inputs()
    with pytest.warns(UserWarning, match=r"Lime failed: ImportError: .*captum_freqrex\[compare\]"):
        table = compare_methods(model, clips, methods=["magnitude", "Lime"], sample_rate=SAMPLE_RATE, n_steps=4)
    assert table.row("magnitude")["error"] is None
    assert INSTALL_LINE in table.row("Lime")["error"]


# ----------------------------------------------------------------------------- resampling without torchaudio


class _BrokenTorchaudio(importlib.abc.MetaPathFinder):
    """``import torchaudio`` fails as PyPI's CUDA build does on a CPU torch: its .so files do not load."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchaudio" or name.startswith("torchaudio."):
            raise OSError(f"Could not load this library: /site-packages/torchaudio/lib/_torchaudio.abi3.so ({name})")
        return None


@pytest.fixture(params=["not installed", "compiled parts fail"])
def no_torchaudio(request, monkeypatch):
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        monkeypatch.delitem(sys.modules, name)
    if request.param == "not installed":
        monkeypatch.setitem(sys.modules, "torchaudio", None)
    else:
        monkeypatch.setattr(sys, "meta_path", [_BrokenTorchaudio()] + sys.meta_path)
    assert audio._torchaudio_resample() is None
    return request.param


def _spectrum_peak_hz(wave: torch.Tensor, rate: int) -> float:
    return float(torch.fft.rfft(wave.double()).abs().argmax()) * rate / wave.shape[-1]


def test_load_audio_resamples_44k1_without_torchaudio(no_torchaudio, tmp_path):
    rate = 44100
    t = torch.arange(rate, dtype=torch.float64) / rate
    path = tmp_path / "tone_44k1.wav"
    sf.write(str(path), (0.5 * torch.sin(2 * math.pi * 1000 * t)).numpy(), rate, subtype="FLOAT")
    loaded = audio.load_audio(str(path), 16000, 16000)
    assert "resampled 44100 Hz -> 16000 Hz" in loaded.notes
    assert loaded.sample_rate == 16000 and loaded.waveform.shape == (16000,)
    assert loaded.waveform.dtype == torch.float32
    assert _spectrum_peak_hz(loaded.waveform, 16000) == 1000.0
    assert loaded.waveform.pow(2).mean().item() == pytest.approx(0.125, rel=0.01)  # 0.5 ** 2 / 2


def _tone(hz: float, rate: int, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * hz * t)


@pytest.mark.parametrize("orig, new", [(44100, 16000), (8000, 16000), (48000, 44100)])
def test_sinc_resample_keeps_a_tone_and_its_energy(orig, new):
    wave = _tone(1000, orig)
    out = audio.sinc_resample(wave, orig, new)
    assert out.shape == (new,) and out.dtype == torch.float64
    assert _spectrum_peak_hz(out, new) == 1000.0
    assert out.pow(2).mean().item() == pytest.approx(0.5, rel=0.01)


def test_sinc_resample_removes_what_the_new_rate_cannot_hold():
    """A 10 kHz tone is above 16 kHz's Nyquist frequency: it must not alias back in."""
    out = audio.sinc_resample(_tone(10000, 44100), 44100, 16000)
    assert out.pow(2).mean().item() < 1e-3 * 0.5


def _torchaudio_or_skip():
    resample = audio._torchaudio_resample()
    if resample is None:
        pytest.skip("torchaudio cannot be imported here")
    return resample


RATE_PAIRS = [(44100, 16000), (16000, 8000), (8000, 48000), (48000, 44100), (22050, 16000), (16000, 44100), (3, 7)]


@pytest.mark.parametrize("orig, new", RATE_PAIRS)
def test_sinc_resample_matches_torchaudio(orig, new):
    reference = _torchaudio_or_skip()
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(2, 3, 1001, generator=g, dtype=torch.float64)
    ours, theirs = audio.sinc_resample(wave, orig, new), reference(wave, orig, new)
    assert ours.shape == theirs.shape == (2, 3, math.ceil(1001 * new / orig))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)  # float64: the same filter
    # float32: torchaudio builds its kernel in float32, ours in float64 (closer to the float64 result)
    torch.testing.assert_close(audio.sinc_resample(wave.float(), orig, new), theirs.float(), rtol=0, atol=2e-4)


def test_resample_uses_torchaudio_when_it_imports_and_agrees_with_the_fallback():
    reference = _torchaudio_or_skip()
    wave = torch.randn(4410, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(audio.resample(wave, 44100, 16000), reference(wave, 44100, 16000), rtol=0, atol=0)
    torch.testing.assert_close(audio.resample(wave, 44100, 16000), audio.sinc_resample(wave, 44100, 16000), rtol=0, atol=1e-10)


def test_resample_falls_back_to_sinc_resample(no_torchaudio, monkeypatch):
    calls = []
    real = audio.sinc_resample
    monkeypatch.setattr(audio, "sinc_resample", lambda *args: calls.append(args[1:]) or real(*args))
    wave = torch.randn(2, 4410, generator=torch.Generator().manual_seed(2))
    out = audio.resample(wave, 44100, 16000)
    assert calls == [(44100, 16000)] and out.shape == (2, 1600)
    assert audio.resample(wave, 16000, 16000) is wave  # equal rates: nothing to do


def test_sinc_resample_blocks_do_not_change_the_result(monkeypatch):
    wave = torch.randn(3, 5000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    whole = audio.sinc_resample(wave, 44100, 16000)
    monkeypatch.setattr(audio, "_RESAMPLE_BLOCK", 1)  # one frame of outputs per block
    torch.testing.assert_close(audio.sinc_resample(wave, 44100, 16000), whole, rtol=0, atol=1e-12)


def test_sinc_resample_shapes_and_errors():
    assert audio.sinc_resample(torch.zeros(2, 0), 44100, 16000).shape == (2, 0)
    assert audio.sinc_resample(torch.ones(5), 16000, 8000).shape == (3,)
    assert audio.sinc_resample(torch.ones(2, 3, 100), 8000, 16000).shape == (2, 3, 200)
    with pytest.raises(TypeError, match="floating-point"):
        audio.sinc_resample(torch.ones(10, dtype=torch.int16), 16000, 8000)
    with pytest.raises(ValueError, match="orig_rate must be positive"):
        audio.sinc_resample(torch.ones(10), 0, 8000)
    with pytest.raises(TypeError, match="whole number"):
        audio.sinc_resample(torch.ones(10), 16000, 8000.5)
    with pytest.raises(ValueError, match="rolloff"):
        audio.sinc_resample(torch.ones(10), 16000, 8000, rolloff=0.0)
