"""Any model: Hugging Face-style outputs, dicts, tuples and ``output=``; ``--model module:callable``;
query-level progress (issue #14)."""

from __future__ import annotations

import csv
import json
from collections import OrderedDict

import pytest
import torch
from known_models import SAMPLE_RATE, ToneDetector, bin_of, tone
from torch import Tensor

from captum_freqrex import FreqReX, metrics
from captum_freqrex._core.model.outputs import check_model_outputs, select_output

BIN_440 = bin_of(440, SAMPLE_RATE)


def clip() -> Tensor:
    """1 s at 8 kHz: the decisive 440 Hz tone (ToneDetector([440])) and a 1 kHz distractor."""
    return (tone(440) + 0.5 * tone(1000)).unsqueeze(0)


class FakeModelOutput(OrderedDict):
    """Like transformers' ModelOutput: a mapping whose entries are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_tuple(self):
        return tuple(self.values())


class HasLogits:
    """Not a mapping: just an object with a tensor ``.logits``."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits


DETECTOR = ToneDetector([440], threshold=0.3)
WRAPPED = {
    "model_output": lambda w: FakeModelOutput(logits=DETECTOR(w), hidden_states=w),
    "logits_attribute": lambda w: HasLogits(DETECTOR(w)),
    "dict_logits": lambda w: {"hidden": w, "logits": DETECTOR(w)},
    "tuple": lambda w: (DETECTOR(w), w),
    "nested_tuple": lambda w: (FakeModelOutput(logits=DETECTOR(w)), None),
}


@pytest.mark.parametrize("kind", sorted(WRAPPED))
def test_containers_are_unwrapped_to_the_same_responsibility(kind):
    x = clip()
    expected = FreqReX(DETECTOR).attribute(x, max_queries=200)
    got = FreqReX(WRAPPED[kind]).attribute(x, max_queries=200)
    assert torch.equal(got, expected)
    assert got[0, BIN_440] == got[0].max() > 0


@pytest.mark.parametrize(
    "model, output",
    [
        (lambda w: {"scores": DETECTOR(w), "hidden": w}, "scores"),
        (lambda w: FakeModelOutput(hidden_states=w, scores=DETECTOR(w)), "scores"),
        (lambda w: FakeModelOutput(hidden_states=w, scores=DETECTOR(w)), 1),
        (lambda w: (w, DETECTOR(w)), 1),
        (lambda w: (w, DETECTOR(w)), -1),
        (lambda w: {"out": [DETECTOR(w)]}, lambda out: out["out"][0]),
        (lambda w: HasLogits(DETECTOR(w)), "logits"),
    ],
)
def test_the_output_selector_picks_the_scores(model, output):
    x = clip()
    expected = FreqReX(DETECTOR).attribute(x, max_queries=200)
    assert torch.equal(FreqReX(model, output=output).attribute(x, max_queries=200), expected)


def test_explanations_of_a_wrapped_model_are_certified_by_the_model():
    x = clip()
    model = lambda w: {"scores": DETECTOR(w), "hidden": w}  # noqa: E731
    expl = FreqReX(model, output="scores").explain(x, max_queries=200)[0]
    assert expl.sufficient is not None and expl.sufficient.certified
    # Re-queried by the test: the set kept alone still gets class 1.
    assert int(DETECTOR(expl.waveform("sufficient").reshape(1, -1)).argmax(1)) == 1


def test_metrics_unwrap_the_same_containers():
    x = clip()
    keep = torch.zeros(1, SAMPLE_RATE // 2 + 1)
    keep[0, BIN_440] = 1
    for model in WRAPPED.values():
        result = metrics.sufficiency(model, x, keep)
        assert bool(result.sufficient[0])  # the 440 Hz bin alone: magnitude 1 > threshold 0.3
    with pytest.raises(TypeError, match=r"keys \['scores'\] and no 'logits'"):
        metrics.sufficiency(lambda w: {"scores": DETECTOR(w)}, x, keep)


@pytest.mark.parametrize(
    "outputs, output, message",
    [
        (
            {"scores": torch.zeros(1, 2), "hidden": torch.zeros(1, 3)}, None,
            r"dict with keys \['scores', 'hidden'\] and no 'logits'.*output=\"logits\"",
        ),
        (
            FakeModelOutput(last_hidden_state=torch.zeros(1, 3)), None,
            r"FakeModelOutput with keys \['last_hidden_state'\] and no 'logits'",
        ),
        ({"logits": torch.zeros(1, 2)}, "scores", r"output='scores' selects nothing: .*keys \['logits'\]"),
        ((torch.zeros(1, 2),), 3, r"output=3 selects nothing: the model returned a tuple of 1"),
        (HasLogits(torch.zeros(1, 2)), "scores", "output='scores' selects nothing: the model returned a HasLogits"),
        ([0.0], None, "must return a tensor of scores, got list"),
        ({"logits": [0.0]}, None, r"got list of 1 \(float\) \(selected from a dict"),
        ((), None, "must return a tensor of scores, got tuple of 0"),
    ],
)
def test_outputs_without_clear_scores_are_refused_with_the_fix(outputs, output, message):
    with pytest.raises(TypeError, match=message):
        check_model_outputs(outputs, 1, output)


@pytest.mark.parametrize("output", [1.5, True, object()])
def test_a_bad_selector_is_refused_at_construction(output):
    with pytest.raises(TypeError, match="output must be None, a key or attribute name"):
        FreqReX(DETECTOR, output=output)


def test_select_output_keeps_the_graph():
    w = torch.ones(1, 4, requires_grad=True)
    selected = select_output({"logits": w * 2})
    selected.sum().backward()
    assert torch.equal(w.grad, torch.full((1, 4), 2.0))


def test_compare_takes_the_selector():
    from captum_freqrex.compare import compare_methods

    x = torch.stack([tone(440) + 0.5 * tone(1000), 0.6 * tone(440) + tone(1000)])
    model = lambda w: {"scores": DETECTOR(w), "hidden": w}  # noqa: E731
    options = dict(methods=["FreqReX", "FeatureAblation"], sample_rate=SAMPLE_RATE, ks=[1], n_bands=16,
                   max_queries=100, strict=True)
    with pytest.raises(TypeError, match="and no 'logits'"):
        compare_methods(model, x, **options)
    table = compare_methods(model, x, output="scores", **options)
    assert [row["method"] for row in table.rows] == ["FreqReX", "FeatureAblation"]


# ----------------------------------------------------------------------------- --model module:callable

MODULE = '''
import torch
from torch import nn

sample_rate = 8000


class Tones(nn.Module):
    """Class 0 (a440) or 1 (a1000), whichever tone is louder; 2 (quiet) below 0.05. Returns a dict."""

    class_names = ("a440", "a1000", "quiet")

    def forward(self, x):
        n = x.shape[-1]
        spectrum = torch.fft.rfft(x).abs() / (n / 2)
        e = spectrum[:, [round(440 * n / 8000), round(1000 * n / 8000)]]
        return {"logits": 10 * torch.cat([e, torch.full_like(e[:, :1], 0.05)], 1), "hidden": x}


def make():
    return Tones()


def tones_function(x):
    return Tones()(x)["logits"]


instance = Tones()


def one_at_a_time(x):
    if x.shape[0] != 1:
        raise ValueError(f"one waveform at a time, got {x.shape[0]}")
    return Tones()(x)["logits"]


def peak_normalised(x):
    # The tones of the peak-normalised input, as many front ends do: silence divides by zero.
    return Tones()(x / x.abs().amax(dim=-1, keepdim=True))["logits"]


def broken():
    raise RuntimeError("no weights here")


def not_a_model():
    return 42


value = 3


class BadRate(Tones):
    sample_rate = -3


bad_rate = BadRate()


class FixedLength(Tones):
    num_samples = 16000  # 2 s at the module's 8 kHz


class AnyLength(FixedLength):
    pad_short_clips = False


fixed_length, any_length = FixedLength(), AnyLength()


class BadPadding(Tones):
    pad_short_clips = "no"


bad_padding = BadPadding()
'''


@pytest.fixture
def module_name(tmp_path, monkeypatch):
    """A tiny model module ``freqrex_any_model_test`` on ``sys.path`` (removed afterwards)."""
    import sys

    name = "freqrex_any_model_test"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / "freqrex_broken_import.py").write_text("import torch\nraise ImportError('missing weights file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for stale in (name, "freqrex_broken_import"):
        monkeypatch.delitem(sys.modules, stale, raising=False)
    yield name
    for stale in (name, "freqrex_broken_import"):
        sys.modules.pop(stale, None)


@pytest.fixture
def wav(tmp_path):
    import soundfile as sf

    path = tmp_path / "clip.wav"
    sf.write(str(path), (0.5 * tone(1000) + 0.2 * tone(440)).numpy(), SAMPLE_RATE)
    return str(path)


def run_cli(argv, capsys):
    from captum_freqrex.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("attribute", ["make", "instance", "tones_function", "Tones"])
def test_a_module_callable_model_is_explained_with_its_class_names(module_name, attribute, wav, tmp_path, capsys):
    import json

    out = tmp_path / "out"
    code, stdout, err = run_cli(
        ["explain", wav, "--model", f"{module_name}:{attribute}", "--max-queries", "200", "--out", out], capsys
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == f"{module_name}:{attribute}"
    assert summary["sample_rate"] == SAMPLE_RATE  # the module's sample_rate
    # A plain function has no class_names (nor has the module): the class number is printed.
    name = 1 if attribute == "tones_function" else "a1000"
    assert summary["original_class"] == 1 and summary["original_class_name"] == name
    assert f"decision {name} " in stdout



def test_a_model_that_takes_any_length_explains_a_short_clip_at_its_own(module_name, wav, tmp_path, capsys):
    """num_samples (2 s) and pad_short_clips=False on the model: the 1 s clip is not zero-padded to
    2 s but explained as it is, and the command says so; the same model without the attribute
    pads it."""
    import json

    for attribute, samples, note in (("any_length", SAMPLE_RATE, "kept at its own 1.00 s"),
                                     ("fixed_length", 2 * SAMPLE_RATE, "zero-padded 1.00 s to the model's 2.00 s")):
        out = tmp_path / attribute
        code, _, err = run_cli(["explain", wav, "--model", f"{module_name}:{attribute}", "--max-queries", "100",
                                "--out", out], capsys)
        assert code == 0, err
        assert json.loads((out / "summary.json").read_text())["n_features"] == samples // 2 + 1
        assert note in err

def test_target_by_name_bands_mode_and_search(module_name, wav, tmp_path, capsys):
    import json

    out = tmp_path / "bands"
    argv = ["explain", wav, "--model", f"{module_name}:make", "--max-queries", "200", "--target", "a440",
            "--bands", "12", "--search", "interleaved", "--out", out]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == 0 and summary["target_name"] == "a440"
    assert "explained target a440" in stdout
    assert summary["n_features"] == 12 and summary["settings"]["feature_mask"] == "tensor of shape (4001,)"
    assert "order='interleaved'" in summary["settings"]["search"]
    sufficient = summary["sets"]["sufficient"]
    assert sufficient["features"] < sufficient["bins"]  # bands of bins, not single bins

    out = tmp_path / "necessary"
    code, stdout, err = run_cli(
        ["explain", wav, "--model", f"{module_name}:make", "--max-queries", "200", "--mode", "necessary",
         "--search", "band_screening", "--out", out], capsys,
    )
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["settings"]["mode"] == "necessary"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("freqrex_no_such_module:make", "no module named 'freqrex_no_such_module'; is its folder on PYTHONPATH?"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:broken", "calling broken() failed (RuntimeError: no weights here)"),
        ("{module}:not_a_model", "not_a_model() returned an object of type int, not a model"),
        ("{module}:value", "value is of type int, not a model"),
        ("{module}:bad_rate", "its sample_rate -3 is invalid (expected a positive integer)"),
        ("{module}:bad_padding", "its pad_short_clips 'no' is invalid (expected True or False)"),
        (
            "freqrex_broken_import:make",
            "importing freqrex_broken_import failed (ImportError: missing weights file)",
        ),
    ],
)
def test_a_bad_module_or_callable_is_one_line_and_status_2(module_name, spec, fragment, wav, tmp_path, capsys):
    code, _, err = run_cli(["explain", wav, "--model", spec.format(module=module_name), "--out", tmp_path / "o"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("freqrex: error: --model "), err
    assert fragment in lines[0]


def test_a_model_that_returns_nan_on_silence_is_one_line_with_the_fix_and_status_2(module_name, wav, tmp_path, capsys):
    """A model dividing by its input's peak returns NaN on the silent baseline: the run ends on one
    line that says so and how to go on, with status 2 (the model's failing, not the library's);
    against a noise baseline the same model is explained."""
    spec = f"{module_name}:peak_normalised"
    code, _, err = run_cli(["explain", wav, "--model", spec, "--out", tmp_path / "o"], capsys)
    errors = [line for line in err.strip().splitlines() if line.startswith("freqrex: error:")]
    assert code == 2 and len(errors) == 1 and err.strip().endswith(errors[0]), err
    assert errors[0].startswith(f"freqrex: error: --model {spec}: the model returned NaN or Inf on 1 of the 2 waveforms")
    assert "each of them silent" in errors[0] and "--baseline noise" in errors[0]
    code, out, _ = run_cli(["explain", wav, "--model", spec, "--baseline", "noise", "--max-queries", "200",
                            "--out", tmp_path / "n"], capsys)
    assert code == 0 and "certified" in out


def test_a_model_that_takes_one_waveform_at_a_time_needs_rows_per_call_1(module_name, wav, tmp_path, capsys):
    """The model's own error on a batch is the user's to fix: one line with FreqReX's note, status 2
    (a library failure is status 1); with --rows-per-call 1 every call is one row and the clip is
    explained."""
    spec = f"{module_name}:one_at_a_time"
    code, _, err = run_cli(["explain", wav, "--model", spec, "--out", tmp_path / "o"], capsys)
    errors = [line for line in err.strip().splitlines() if line.startswith("freqrex: error:")]
    assert code == 2 and len(errors) == 1 and err.strip().endswith(errors[0]), err
    assert errors[0].startswith("freqrex: error: the model failed on FreqReX's waveforms: ValueError: one "
                                "waveform at a time, got 2; the model failed on a batch of 2 waveforms and runs on one of them alone")
    assert "--rows-per-call 1 on the command line" in errors[0]
    out = tmp_path / "one"
    code, stdout, _ = run_cli(["explain", wav, "--model", spec, "--rows-per-call", "1", "--max-queries", "200",
                               "--out", out], capsys)
    assert code == 0 and "certified" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["perturbations_per_eval"] == 1 and summary["forward_calls"] == summary["queries"]


@pytest.mark.parametrize("argv", [["--bands", "0"], ["--mode", "both"], ["--search", "random"]])
def test_bad_search_options_are_usage_errors(module_name, argv, wav, tmp_path, capsys):
    code, _, err = run_cli(["explain", wav, "--model", f"{module_name}:make", *argv, "--out", tmp_path / "o"], capsys)
    assert code == 2 and err.startswith("freqrex: error: ") and len(err.strip().splitlines()) == 1


FACTORIES = MODULE + '''

import os


def make_annotated(channels: int = 3) -> nn.Module:
    return Tones()


def scores_annotated(x: torch.Tensor = None, gain: float = 1.0) -> torch.Tensor:
    return gain * Tones()(x)["logits"]


def scores_unannotated(x=None, gain=1.0):
    return gain * Tones()(x)["logits"]


def make_builtin():
    return os.getcwd


class Short(Tones):
    class_names = ("a440", "a1000")


short = Short()
'''


@pytest.fixture
def factories_module(tmp_path, monkeypatch):
    """``freqrex_factories_test``: the module above plus functions with only defaulted parameters."""
    import sys

    name = "freqrex_factories_test"
    (tmp_path / f"{name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("attribute", ["make_annotated", "scores_annotated"])
def test_only_defaulted_parameters_follow_the_return_annotation(factories_module, attribute, wav, tmp_path, capsys):
    # -> nn.Module: a factory, called once; -> Tensor: the model itself, called with the waveforms
    # (scores_annotated was called without arguments as a factory, and failed on x=None).
    import json

    out = tmp_path / "out"
    argv = ["explain", wav, "--model", f"{factories_module}:{attribute}", "--max-queries", "200", "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["original_class"] == 1  # 1 kHz is the louder tone


@pytest.mark.parametrize(
    "spec, fragments",
    [
        ("{module}:scores_unannotated", ["--model {module}:scores_unannotated: scores_unannotated(x=None, gain=1.0) "
                                         "could be a factory or the model itself", "-> torch.nn.Module"]),
        ("os:getcwd", ["--model os:getcwd: getcwd takes (), so it cannot be called as model(waveforms)"]),
        ("{module}:make_builtin", ["what make_builtin() returned takes ()", "model(waveforms)"]),
        ("{module}:short", ["--model {module}:short: its class_names has 2 names but the model returns 3 scores"]),
    ],
)
def test_a_callable_that_is_no_model_is_one_line_naming_model_and_the_rule(
    factories_module, spec, fragments, wav, tmp_path, capsys
):
    spec = spec.format(module=factories_module)
    code, _, err = run_cli(["explain", wav, "--model", spec, "--out", tmp_path / "o"], capsys)
    # class_names are checked on the first model call, after the line naming the clip
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and last.startswith(f"freqrex: error: --model {spec}"), err
    for fragment in fragments:
        assert fragment.format(module=factories_module) in last, err
    assert not (tmp_path / "o").exists()


def test_a_module_in_the_current_folder_is_found_by_the_console_script(tmp_path, wav):
    # docs/any_model.md: "freqrex explain clip.wav --model my_models:wav2vec2" with my_models.py here. The
    # freqrex console script has its own folder, not the current one, as sys.path[0] (python -m has the
    # current one); a launcher script elsewhere reproduces that.
    import json
    import subprocess
    import sys

    launcher = tmp_path / "bin" / "freqrex_launcher.py"
    launcher.parent.mkdir()
    launcher.write_text("import sys\nfrom captum_freqrex.cli import main\nsys.exit(main())\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_models.py").write_text(MODULE)
    argv = [sys.executable, str(launcher), "explain", wav, "--model", "my_models:make", "--max-queries", "200",
            "--out", "out"]
    done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((work / "out" / "summary.json").read_text())["original_class_name"] == "a1000"


def test_a_removed_current_folder_leaves_the_module_error_one_line(tmp_path, monkeypatch, wav, capsys):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # os.getcwd() now raises FileNotFoundError
    code, _, err = run_cli(["explain", wav, "--model", "freqrex_nowhere:make", "--out", tmp_path / "o"], capsys)
    assert code == 2 and err.strip() == (
        "freqrex: error: --model freqrex_nowhere:make: no module named 'freqrex_nowhere'; is its folder on PYTHONPATH?"
    ), err


# ----------------------------------------------------------------------------- query-level progress


class SlowDetector(ToneDetector):
    """ToneDetector([440], 0.3) that takes 2 ms per call, so that elapsed time and the ETA move."""

    def forward(self, x):
        import time

        time.sleep(0.002)
        return super().forward(x)


def test_progress_reports_every_model_call_and_ends_with_one_summary(monkeypatch, capsys):
    import re

    from captum_freqrex._utils import progress

    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # a line per model call (stderr is no terminal)
    model = SlowDetector([440], threshold=0.3)
    x = torch.cat([clip(), clip()])
    FreqReX(model).explain(x, max_queries=200, show_progress=True)
    # tqdm rewrites the line with "\r" (splitlines splits there) and pads a shorter line with spaces.
    lines = [line.rstrip() for line in capsys.readouterr().err.strip().splitlines()]
    updates = [line for line in lines if re.match(r"FreqReX: example [12]/2, \d+/200 queries", line)]
    assert len(updates) >= model.calls  # one line per call (plus one as each example starts)
    assert updates[0].startswith("FreqReX: example 1/2, 2/200 queries")  # the first call: the two anchors
    assert all(re.search(r"elapsed, ETA \d+\.\d s$", line) for line in updates)
    assert any("in all" in line for line in updates if line.startswith("FreqReX: example 2/2"))
    assert lines[-1] == f"FreqReX: 2/2 examples, {model.rows:,} queries in {lines[-1].split(' in ')[-1]}"
    assert lines.count(lines[-1]) == 1


def test_progress_is_off_by_default_and_throttled(monkeypatch, capsys):
    from captum_freqrex._utils import progress

    FreqReX(ToneDetector([440], 0.3)).attribute(clip(), max_queries=200)
    assert capsys.readouterr().err == ""
    # The default log interval (5 s) keeps a fast run to its first line and the summary.
    FreqReX(ToneDetector([440], 0.3)).attribute(clip(), max_queries=200, show_progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("FreqReX: 2/200 queries") and "1/1 examples" in lines[1]
    assert progress.LOG_INTERVAL_S == 5.0


def test_progress_on_a_terminal_rewrites_one_line_and_ends_it(monkeypatch):
    import io

    from captum_freqrex._utils import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(progress, "TTY_INTERVAL_S", 0.0)
    monkeypatch.setattr(progress.sys, "stderr", terminal)
    # The refinement (many calls): the default would ask the loud 440 Hz peak alone, in one call.
    FreqReX(ToneDetector([440], 0.3), search="refinement").attribute(clip(), max_queries=200, show_progress=True)
    text = terminal.getvalue()
    assert text.startswith("\rFreqReX: 2/200 queries") and text.endswith("\n") and text.count("\n") == 1
    assert text.count("\r") > 3 and "\rFreqReX: 1/1 examples" in text


def test_progress_is_a_tqdm_bar_that_fills_as_the_examples_finish(monkeypatch):
    from tqdm.auto import tqdm

    from captum_freqrex._utils import progress

    bars = []
    opened = progress.QueryProgress.show

    def show(self):
        opened(self)
        bars.append((self.bar, self.bar.n))

    monkeypatch.setattr(progress.QueryProgress, "show", show)
    x = torch.cat([clip(), clip()])
    FreqReX(ToneDetector([440], 0.3)).attribute(x, max_queries=200, show_progress=True)
    assert all(isinstance(bar, tqdm) for bar, _ in bars) and len({id(bar) for bar, _ in bars}) == 1
    positions = [n for _, n in bars]
    assert positions == sorted(positions) and 0 < positions[-1] <= 2  # examples done + the current one's share
    bar = bars[0][0]
    assert bar.total == 2 and bar.n == 2 and bar.disable  # closed full after the summary line


def test_progress_ends_cleanly_when_the_model_fails(monkeypatch, capsys):
    from captum_freqrex._utils import progress

    calls = []

    def failing(w):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("model crashed")
        return DETECTOR(w)

    with pytest.raises(RuntimeError, match="model crashed"):
        FreqReX(failing, search="refinement").attribute(clip(), max_queries=200, show_progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("FreqReX: stopped after 0/1 examples")
    assert progress.ACTIVE_PROGRESS.get() is None  # no stale line catches later runs' queries


def test_compare_takes_a_module_callable_model(module_name, wav, tmp_path, capsys):
    out = tmp_path / "compare"
    code, stdout, err = run_cli(
        ["compare", wav, wav, "--model", f"{module_name}:make", "--methods", "FreqReX", "magnitude",
         "--ks", "1", "--max-queries", "100", "--out", out], capsys,
    )
    assert code == 0, err
    assert (out / "compare.md").is_file() and "FreqReX" in stdout
    code, _, err = run_cli(["compare", "--model", f"{module_name}:make", "--out", tmp_path / "c2"], capsys)
    assert code == 2 and "a model outside the zoo has no shipped clips" in err


def test_every_metric_takes_the_output_selector():
    """One selector, the same as FreqReX's, for every metric that calls the model."""
    from captum_freqrex import metrics as m

    clip = tone(440, 0.25).unsqueeze(0)
    detector = ToneDetector([440], 0.3)

    def boxed(w):
        return {"scores": detector(w), "hidden": w}

    keep = torch.zeros(1, clip.shape[-1] // 2 + 1, dtype=torch.bool)
    keep[0, bin_of(440, clip.shape[-1])] = True
    scores = keep.double()
    assert bool(m.sufficiency(boxed, clip, keep, output="scores").sufficient[0])
    assert bool(m.necessity(boxed, clip, keep, output="scores").necessary[0])
    assert float(m.perturbation_success_rate(boxed, clip, scores, k=1, output="scores").success_rate) == 1.0
    assert m.minimal_sufficient_prefix(boxed, clip, scores, output="scores").size.tolist() == [1]
    assert m.insertion_curve(boxed, clip, scores, n_steps=4, output="scores").auc.shape == (1,)
    assert m.deletion_curve(boxed, clip, scores, n_steps=4, output="scores").auc.shape == (1,)
    with pytest.raises(TypeError, match="scores"):
        m.sufficiency(boxed, clip, keep)


# ----------------------------------------------------------------------------- FrequencyForward, any output

CAPTUM_METHODS = ("IntegratedGradients", "FeatureAblation", "KernelShap")
LIME_WARNING = "ignore:You are providing multiple inputs for Lime"  # Captum's advice, not a problem


def captum_attribution(method: str, model, x: Tensor, output=None) -> Tensor:
    """``method`` through FrequencyForward over 16 linear bands (IG: over single bins), seeded."""
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap

    from captum_freqrex import FrequencyForward, linear_bands

    wrapped = FrequencyForward(model, x, output=output)
    common = dict(baselines=wrapped.zeros(), target=1, additional_forward_args=wrapped.example_index())
    if method == "IntegratedGradients":
        return IntegratedGradients(wrapped).attribute(wrapped.ones(), n_steps=8, **common)
    bands = linear_bands(x.shape[-1], 16, sample_rate=SAMPLE_RATE).unsqueeze(0)
    if method == "FeatureAblation":
        return FeatureAblation(wrapped).attribute(wrapped.ones(), feature_mask=bands, **common)
    with torch.random.fork_rng(devices=[]):  # KernelShap samples from torch's global generator
        torch.manual_seed(0)
        return KernelShap(wrapped).attribute(wrapped.ones(), feature_mask=bands, n_samples=48, **common)


def two_clips() -> Tensor:
    """The 440 Hz tone decides both (ToneDetector([440], 0.3)); the distractor differs."""
    return torch.stack([tone(440) + 0.5 * tone(1000), 0.6 * tone(440) + tone(1500)])


@pytest.mark.filterwarnings(LIME_WARNING)
@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize("kind", sorted(WRAPPED))
def test_captum_methods_through_frequency_forward_unwrap_the_same_containers(method, kind):
    x = two_clips()
    expected = captum_attribution(method, DETECTOR, x)
    got = captum_attribution(method, WRAPPED[kind], x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # Not two zero tensors: every method points at the decisive 440 Hz (its bin, or the band holding it).
    for row in got:
        assert row[BIN_440] == row.max() > 0


@pytest.mark.filterwarnings(LIME_WARNING)
@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize(
    "model, output",
    [
        (lambda w: {"scores": DETECTOR(w), "other_head": -DETECTOR(w)}, "scores"),
        (lambda w: (w, DETECTOR(w)), 1),
        (lambda w: FakeModelOutput(hidden_states=w, scores=DETECTOR(w)), 1),
        (lambda w: {"heads": [DETECTOR(w)]}, lambda out: out["heads"][0]),
    ],
)
def test_frequency_forward_takes_the_output_selector(method, model, output):
    x = two_clips()
    expected = captum_attribution(method, DETECTOR, x)
    torch.testing.assert_close(captum_attribution(method, model, x, output=output), expected, rtol=0, atol=0)


def test_frequency_forward_keeps_the_graph_through_the_unwrapping():
    from captum_freqrex import FrequencyForward

    x = clip()
    plain, boxed = (FrequencyForward(m, x) for m in (DETECTOR, lambda w: {"logits": DETECTOR(w), "hidden": w}))
    grads = []
    for wrapped in (plain, boxed):
        coefficients = wrapped.ones().requires_grad_()
        wrapped(coefficients)[0, 1].backward()
        grads.append(coefficients.grad)
    assert grads[1] is not None and torch.equal(grads[1], grads[0])
    assert grads[1][0, BIN_440] == grads[1][0].abs().max() > 0  # d(score)/d(keep 440 Hz) dominates


def test_frequency_forward_refuses_a_bad_selector_with_the_fix():
    from captum_freqrex import FrequencyForward

    x = clip()
    for bad in (1.5, True, object()):
        with pytest.raises(TypeError, match="output must be None, a key or attribute name"):
            FrequencyForward(DETECTOR, x, output=bad)
    two_heads = lambda w: {"scores": DETECTOR(w), "names": ["no", "yes"]}  # noqa: E731
    wrapped = FrequencyForward(two_heads, x)
    with pytest.raises(TypeError, match=r"keys \['scores', 'names'\] and no 'logits'.*FrequencyForward\(model, inputs, output=\.\.\.\)"):
        wrapped(wrapped.ones())
    wrapped = FrequencyForward(two_heads, x, output="logit")
    with pytest.raises(TypeError, match=r"output='logit' selects nothing: the model returned a dict with keys"):
        wrapped(wrapped.ones())
    wrapped = FrequencyForward(two_heads, x, output="names")
    with pytest.raises(TypeError, match=r"needs the model's scores as a tensor for Captum, got list \(output='names'\)"):
        wrapped(wrapped.ones())
    wrapped = FrequencyForward(lambda w: (DETECTOR(w),), x, output=2)
    with pytest.raises(TypeError, match="output=2 selects nothing: the model returned a tuple of 1"):
        wrapped(wrapped.ones())


HUB_MODULE = '''
import types

import torch
from torch import nn


class HubStyle(nn.Module):
    """Like a Hugging Face audio classifier: labels in config.id2label, the rate in its feature extractor."""

    def __init__(self, id2label):
        super().__init__()
        self.config = types.SimpleNamespace(id2label=id2label)
        self.feature_extractor = types.SimpleNamespace(sampling_rate=8000)

    def forward(self, x):
        n = x.shape[-1]
        spectrum = torch.fft.rfft(x).abs() / (n / 2)
        e = spectrum[:, [round(440 * n / 8000), round(1000 * n / 8000)]]
        return 10 * torch.cat([e, torch.full_like(e[:, :1], 0.05)], 1)


hub = HubStyle({2: "hub-quiet", 0: "hub-440", 1: "hub-1000"})
gaps = HubStyle({0: "hub-440", 2: "hub-quiet"})
'''


def test_hugging_face_labels_and_rate_are_read_from_config_and_feature_extractor(wav, tmp_path, capsys, monkeypatch):
    import json
    import sys

    (tmp_path / "freqrex_hub_test.py").write_text(HUB_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "freqrex_hub_test", raising=False)
    out = tmp_path / "hub"
    code, stdout, err = run_cli(
        ["explain", wav, "--model", "freqrex_hub_test:hub", "--max-queries", "200", "--out", out], capsys
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sample_rate"] == SAMPLE_RATE != 16000  # the feature extractor's, not the default
    assert summary["original_class_name"] == "hub-1000"  # id2label in index order, not dict order
    code, _, err = run_cli(["explain", wav, "--model", "freqrex_hub_test:gaps", "--out", tmp_path / "g"], capsys)
    assert code == 2 and "--model freqrex_hub_test:gaps: its id2label" in err and "indices 0..1" in err


def test_compare_runs_a_model_that_takes_one_waveform_at_a_time_with_rows_per_call_1(module_name, wav, tmp_path, capsys):
    """Without the option each method's row holds the model's error and what to do; ``compare
    --rows-per-call 1`` caps every model call of the comparison (Captum's methods, the metrics,
    FreqReX) at one waveform, so a model that refuses batches is compared: every row a result."""
    spec = f"{module_name}:one_at_a_time"
    methods = ["FreqReX", "IntegratedGradients", "FeatureAblation", "KernelShap"]
    refused = tmp_path / "refused"
    with pytest.warns(UserWarning, match="failed"):
        code, _, err = run_cli(["compare", wav, "--model", spec, "--methods", *methods, "--max-queries", "100",
                                "--out", refused], capsys)
    assert code == 0, err
    errors = [row["error"] for row in csv.DictReader((refused / "compare.csv").open())]
    assert len(errors) == 4 and all("one waveform at a time, got" in e and "--rows-per-call 1" in e for e in errors)
    out = tmp_path / "cmp"
    code, _, err = run_cli(["compare", wav, "--model", spec, "--methods", *methods, "--rows-per-call", "1",
                            "--max-queries", "100", "--out", out], capsys)
    assert code == 0, err
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [row["method"] for row in rows] == methods
    assert all(not row.get("error") for row in rows), rows
    assert all(row["flip@1"] != "" for row in rows), rows
