"""Informativeness is said, not only certification (issue 22 item 3).

Known answers by construction: a detector that needs most of the spectrum (every sufficient set
holds over 75% of the bins), a tone detector on a quiet tone under a louder one (its set sits
26 dB below the clip's peak), and a tone detector on the loudest tone (a 1-bin set at 0 dB).
"""

import html
import json
import re

import pytest
import torch

from captum_freqrex import FreqReX
from captum_freqrex._explanation.informative import (
    MAX_FEATURE_SHARE, MIN_LEVEL_DB, NEXT_STEPS, format_level_db, result_hints,
)
from captum_freqrex._explanation.text import describe
from known_models import SAMPLE_RATE, SpectrumCoverageDetector, ToneDetector, bin_of, impulse, tone

LENGTH = 800  # 0.1 s at 8 kHz: 401 rfft bins


@pytest.fixture(scope="module")
def broad():
    """An impulse through a detector that needs over 75% of the bins: most of the spectrum."""
    model = SpectrumCoverageDetector(0.75)
    return model, FreqReX(model).explain(impulse(LENGTH).unsqueeze(0), max_queries=200, seed=0)[0]


@pytest.fixture(scope="module")
def quiet():
    """A 440 Hz tone 26 dB below a 1 kHz tone; the detector reads only 440 Hz."""
    x = (0.05 * tone(440, 0.1) + tone(1000, 0.1)).unsqueeze(0)
    return FreqReX(ToneDetector([440], 0.03)).explain(x, max_queries=200, seed=0)[0]


@pytest.fixture(scope="module")
def ordinary():
    x = (tone(440, 0.1) + 0.1 * tone(1000, 0.1)).unsqueeze(0)
    return FreqReX(ToneDetector([440], 0.3)).explain(x, max_queries=200, seed=0)[0]


def _kinds(flags):
    return [flag["flag"] for flag in flags]


def test_thresholds_are_the_documented_ones():
    assert MAX_FEATURE_SHARE == 0.5 and MIN_LEVEL_DB == -20.0


@pytest.mark.parametrize(
    "level_db, decimals, text",
    [(-0.0004, 0, "+0 dB"), (-0.04, 1, "+0.0 dB"), (0.0, 0, "+0 dB"), (-0.6, 0, "-1 dB"), (-12.04, 1, "-12.0 dB"),
     (float("-inf"), 0, "silent")],
)
def test_a_level_that_rounds_to_zero_reads_as_the_clips_level_not_just_below_it(level_db, decimals, text):
    # The zoo's strings clip's sufficient-and-necessary set has its loudest bin at the clip's
    # loudest up to float rounding (-0.0004 dB): the CLI printed "loudest bin -0 dB".
    assert format_level_db(level_db, decimals) == text


def test_the_described_sets_never_show_a_negative_zero_level(ordinary):
    summary = ordinary.summary(SAMPLE_RATE)
    summary["sets"]["sufficient"]["level_db"] = -1e-4  # the clip's level, up to float rounding
    text = describe(summary)
    assert "loudest bin +0 dB" in text and "-0 dB" not in text


def test_a_set_that_is_most_of_the_spectrum_is_flagged_with_the_next_step(broad):
    model, expl = broad
    chosen = expl.sufficient
    # Re-queried here: kept alone, the set keeps class 1, and by construction it holds > 75% of the bins.
    assert chosen.certified and int(model(expl.waveform("sufficient").reshape(1, -1)).argmax()) == 1
    assert chosen.size > 0.75 * (LENGTH // 2 + 1) and chosen.feature_share == chosen.size / (LENGTH // 2 + 1)
    assert _kinds(chosen.flags) == ["most_of_spectrum"]
    summary = expl.summary(SAMPLE_RATE)
    entry = summary["sets"]["sufficient"]
    assert entry["feature_share"] == pytest.approx(chosen.size / (LENGTH // 2 + 1), abs=1e-6)
    assert entry["level_db"] == pytest.approx(0.0, abs=1e-6)  # a flat spectrum: loud, yet uninformative
    assert [(f["set"], f["flag"]) for f in summary["flags"]][0] == ("sufficient", "most_of_spectrum")
    flag = entry["flags"][0]
    assert "most of the spectrum" in flag["reason"] and f"{100 * chosen.feature_share:.0f}%" in flag["reason"]
    for step in ("log_bands(", "--bands", "max_queries=", 'search="interleaved"', "baseline"):
        assert step in flag["next_step"]


def test_a_set_far_below_the_clips_level_is_flagged(quiet):
    chosen = quiet.sufficient
    assert chosen.certified and chosen.size == 1 and chosen.mask[bin_of(440, 800)]
    assert chosen.level_db == pytest.approx(20 * torch.log10(torch.tensor(0.05)).item(), abs=1e-3)  # -26 dB
    assert _kinds(chosen.flags) == ["below_clip_level"]
    flag = quiet.summary(SAMPLE_RATE)["sets"]["sufficient"]["flags"][0]
    assert "far below the clip's level" in flag["reason"] and "-26 dB" in flag["reason"]
    assert 'search="energy"' in flag["next_step"] and "--bands" in flag["next_step"]
    # The quiet tone is the cause: its set is as quiet as the sufficient-and-necessary one, so it stays.
    assert quiet.quiet_sufficient is None and _kinds(quiet.sufficient_necessary.flags) == ["below_clip_level"]


def test_the_named_next_steps_exist():
    x = (0.05 * tone(440, 0.1) + tone(1000, 0.1)).unsqueeze(0)
    for search in ("energy", "interleaved"):
        expl = FreqReX(ToneDetector([440], 0.03), search=search).explain(x, max_queries=4000)[0]
        assert expl.sufficient.mask[bin_of(440, 800)]
    assert 'search="energy"' in NEXT_STEPS["below_clip_level"]
    assert 'search="interleaved"' in NEXT_STEPS["most_of_spectrum"] and "max_queries=4000" in NEXT_STEPS["most_of_spectrum"]


def test_each_sets_flag_names_the_options_its_own_search_answers_to(broad):
    model, expl = broad
    steps = {name: chosen.flags[0]["next_step"] for name, chosen in expl.sets.items()}
    assert "max_queries=4000" in steps["sufficient"] and 'search="interleaved"' in steps["sufficient"]
    # The sufficient-and-necessary and complete searches stop on their own: no "more queries".
    for name in ("sufficient_necessary", "complete"):
        assert "max_queries" not in steps[name] and "interleaved" not in steps[name]
        assert "log_bands(" in steps[name] and "--baseline noise" in steps[name]
    assert steps["complete"].startswith("let it stop further below the clip's confidence (explain(..., complete_tolerance=0.2)")
    # One hint per set, each with its own step.
    hints = result_hints(expl.summary(SAMPLE_RATE), "1")
    assert [h.split(" is most")[0] for h in hints] == ["the sufficient set", "the sufficient & necessary set", "the complete set"]
    # The step does what it says: by construction the confidence grows with every bin kept, so a
    # larger tolerance stops the complete set earlier (re-queried here).
    looser = FreqReX(model).explain(impulse(LENGTH).unsqueeze(0), max_queries=200, seed=0, complete_tolerance=0.2)[0]
    assert looser.complete.size < expl.complete.size and looser.complete.certified
    kept = torch.softmax(model(looser.waveform("complete").reshape(1, -1)), 1)[0, 1]
    assert expl.original.confidence - 0.2 <= float(kept) < expl.original.confidence - 0.05


def test_sets_sharing_a_step_share_one_hint():
    flag = {"flag": "most_of_spectrum", "reason": "r", "next_step": NEXT_STEPS["most_of_spectrum"]}
    summary = {"flags": [{"set": "sufficient", **flag}, {"set": "alternative_1", **flag}], "sets": {}}
    assert result_hints(summary, "1") == [
        f"the sufficient and alternative 1 sets are most of the spectrum: {NEXT_STEPS['most_of_spectrum']}"
    ]


def test_an_ordinary_one_bin_set_at_the_peak_is_not_flagged(ordinary):
    chosen = ordinary.sufficient
    assert chosen.size == 1 and chosen.level_db == pytest.approx(0.0, abs=1e-6) and chosen.flags == []
    assert chosen.feature_share == pytest.approx(1 / 401)
    summary = ordinary.summary(SAMPLE_RATE)
    assert summary["flags"] == [] and summary["sets"]["sufficient"]["flags"] == []
    assert result_hints(summary, "1") == []


def _status(text):
    return re.search(r'<span class="(\w+)" id="status" data-status="([\w-]+)">(.*?)</span>', text).groups()


def test_the_html_headline_is_amber_for_a_flagged_set_and_shows_the_hints(broad, quiet):
    from captum_freqrex.report import explanation_html

    for expl, words in ((broad[1], "most of the spectrum"), (quiet, "far below the clip's level")):
        text = explanation_html(expl, SAMPLE_RATE)
        css, status, said = _status(text)
        assert (css, status) == ("flagged", "flagged") and said.startswith("certified but not informative: ")
        assert "every set certified" not in text
        hints = re.search(r'<ul class="hints" id="hints">(.*?)</ul>', text, re.S).group(1)
        assert html.escape(words, quote=True) in hints and "hint: " in hints
        for hint in result_hints(expl.summary(SAMPLE_RATE), "1"):
            assert html.escape(hint, quote=True) in hints
        assert 'data-flags="0"' not in text.split('data-set="sufficient"')[1].split("</tr>")[0]


def test_the_html_headline_stays_green_for_an_informative_result(ordinary):
    from captum_freqrex.report import explanation_html

    text = explanation_html(ordinary, SAMPLE_RATE)
    assert _status(text) == ("ok", "certified", "every set certified")
    assert 'id="hints"' not in text


def test_saved_explanations_load_and_keep_their_flags(quiet, tmp_path):
    from captum_freqrex import Explanation

    path = quiet.save(str(tmp_path / "quiet.pt"))
    loaded = Explanation.load(path)
    assert loaded.summary(SAMPLE_RATE)["flags"] == quiet.summary(SAMPLE_RATE)["flags"] != []


def test_the_cli_prints_the_flag_and_the_report_carries_its_hints(tmp_path, capsys):
    sf = pytest.importorskip("soundfile")
    pytest.importorskip("matplotlib")
    from captum_freqrex.cli import main

    model_path = tmp_path / "broad.pt"
    torch.jit.trace(SpectrumCoverageDetector(0.75).eval(), torch.randn(2, LENGTH)).save(str(model_path))
    audio = tmp_path / "click.wav"
    sf.write(str(audio), (0.9 * impulse(LENGTH)).numpy(), SAMPLE_RATE, subtype="FLOAT")
    out = tmp_path / "out"
    argv = ["explain", str(audio), "--model", str(model_path), "--sample-rate", str(SAMPLE_RATE)]
    assert main([*argv, "--max-queries", "200", "--out", str(out), "--html"]) == 0
    printed = capsys.readouterr().out.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert ("sufficient", "most_of_spectrum") in [(f["set"], f["flag"]) for f in summary["flags"]]
    assert any("% of the features" in line for line in printed)
    assert any(line.strip().startswith("FLAGGED, not informative: covers") for line in printed)
    hints = [line[len("  hint: "):] for line in printed if line.startswith("  hint: ")]
    assert hints and "most of the spectrum" in hints[0] and "--bands N" in hints[0]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert _status(page)[1] == "flagged"
    for hint in hints:  # the same text in the report as on the terminal
        assert f"<li>hint: {html.escape(hint, quote=True)}</li>" in page


def test_a_baseline_that_decides_gets_its_hint_on_the_command_line_and_in_the_report():
    from captum_freqrex import FreqReXWarning
    from captum_freqrex.report import explanation_html

    said = {"sets": {}, "baseline_decides": True}
    assert result_hints(said, "dog", "noise") == [
        "the baseline (noise) alone already makes the model decide dog, so these sets say little about the "
        "clip; run again with --baseline pink (or an audio FILE)"
    ]
    assert "baselines=..." in result_hints(said, "dog")[0] and result_hints({"sets": {}}, "dog") == []
    # From Python the kind is not passed: the summary's settings say whether explain's default
    # (silence, recorded as no baselines) or the caller's own baseline was used.
    assert result_hints(said, "dog")[0].startswith("the baseline (given) alone")
    assert result_hints({**said, "settings": {"baselines": None}}, "dog")[0].startswith("the baseline (silence) alone")
    assert result_hints({**said, "settings": {"baselines": "tensor of shape (1, 800)"}}, "dog")[0].startswith(
        "the baseline (given) alone")
    # The baseline is the clip itself: alone it already decides class 1.
    x = tone(440, 0.1).unsqueeze(0)
    with pytest.warns(FreqReXWarning, match="baseline alone"):
        expl = FreqReX(ToneDetector([440], 0.3)).explain(x, baselines=x, max_queries=50)[0]
    text = explanation_html(expl, SAMPLE_RATE, class_names=["no", "yes"])
    hints = re.search(r'<ul class="hints" id="hints">(.*?)</ul>', text, re.S).group(1)
    assert html.escape(result_hints(expl.summary(SAMPLE_RATE), "yes (1)")[0], quote=True) in hints
    assert "alone already makes the model decide yes (1)" in hints


def test_a_necessary_mode_answer_is_flagged_when_it_removes_most_of_the_spectrum_or_of_the_sound():
    from captum_freqrex._explanation.informative import MANIPULATION_NEXT_STEP, manipulation_flags

    assert manipulation_flags(0.01, 30.0) == []
    assert manipulation_flags(0.5, 3.02) == []  # half the features, just under half the energy
    assert [f["flag"] for f in manipulation_flags(0.51, 3.02)] == ["most_of_spectrum"]
    loud = manipulation_flags(0.01, 3.0)
    assert [f["flag"] for f in loud] == ["most_of_sound"] and "SNR 3.0 dB" in loud[0]["reason"]
    assert all(f["next_step"] == MANIPULATION_NEXT_STEP for f in manipulation_flags(0.9, 0.0))
    assert manipulation_flags(0.01, float("nan")) == []
