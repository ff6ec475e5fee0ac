"""The sufficient set at the clip's level: a quiet one gives way to the sufficient-and-necessary set.

Known answers by construction (:class:`EnergyShareDetector`): a clip holds a loud 440 Hz tone, two
other tones and a faint 3 kHz tone 60 dB down; the model decides class 1 when 440 Hz or 3 kHz holds
over 30% of the input's energy. Both single bins are sufficient (3 kHz alone is all of a
near-silent input's energy); only 440 Hz is at the clip's level, and only its removal flips the
decision. A ranking that puts the faint bin first makes it the sufficient prefix: the explanation
must return 440 Hz as the sufficient set and keep the 3 kHz bin as ``quiet_sufficient``. With
1000 Hz also read (over 20% of the energy), the decision flips only without both loud tones: the
sufficient-and-necessary set is {440, 1000 Hz}, and the sufficient set in the quiet one's place is
that set shrunk while it keeps the decision alone, its loudest member kept: {440 Hz}.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from captum_freqrex import Explanation, FreqReX
from captum_freqrex._core.certify.clip_level import CLIP_LEVEL_START, quiet_to_replace, replace_quiet
from captum_freqrex.cli import result_files
from known_models import SAMPLE_RATE, EnergyShareDetector, bin_of, tone

LENGTH = 800  # 0.1 s at 8 kHz: 401 rfft bins, one per 10 Hz
LOUD, FAINT = bin_of(440, LENGTH), bin_of(3000, LENGTH)


@pytest.fixture(scope="module")
def model():
    return EnergyShareDetector([440, 3000])


@pytest.fixture(scope="module")
def clip():
    parts = tone(440, 0.1) + 0.5 * tone(1000, 0.1) + 0.5 * tone(2000, 0.1) + 0.001 * tone(3000, 0.1)
    return parts.unsqueeze(0)


def _faint_first():
    """Scores that rank the faint bin first, then the loud one."""
    scores = torch.zeros(1, LENGTH // 2 + 1)
    scores[0, FAINT], scores[0, LOUD] = 2.0, 1.0
    return scores


@pytest.fixture(scope="module")
def faint_first(model, clip):
    """Explained from a ranking that puts the faint bin first, then the loud one."""
    return FreqReX(model).explain(clip, attributions=_faint_first(), seed=0)[0]


def _ids(chosen):
    return chosen.mask.nonzero().reshape(-1).tolist()


def _decides(model, wave):
    return int(model(wave.reshape(1, -1)).argmax(1))


def test_a_quiet_sufficient_set_gives_way_to_the_loud_sufficient_and_necessary_one(model, faint_first):
    expl = faint_first
    assert _ids(expl.sufficient) == [LOUD] and expl.sufficient.certified
    assert expl.sufficient.level_db == pytest.approx(0.0, abs=1e-6) and expl.sufficient.flags == []
    assert _ids(expl.sufficient_necessary) == [LOUD]
    quiet = expl.quiet_sufficient
    assert quiet is not None and _ids(quiet) == [FAINT] and quiet.certified
    assert quiet.level_db == pytest.approx(-60.0, abs=0.1)
    assert "chosen over a 1-feature sufficient set 60 dB below it" in expl.sufficient.certificate.note
    # Re-queried here: both sets kept alone keep the decision; removing the loud one flips it.
    assert _decides(model, expl.waveform("sufficient")) == expl.target == 1
    assert _decides(model, expl.waveform("quiet_sufficient")) == 1
    assert _decides(model, expl.waveform("sufficient", removed=True)) == 0
    assert _decides(model, expl.waveform("quiet_sufficient", removed=True)) == 1  # not necessary


def test_a_larger_sufficient_and_necessary_set_is_shrunk_to_what_keeps_the_decision_at_the_clips_level():
    model = EnergyShareDetector([440, 1000, 3000], share=0.2)
    parts = tone(440, 0.1) + 0.9 * tone(1000, 0.1) + 0.5 * tone(2000, 0.1) + 0.5 * tone(2500, 0.1)
    x = (parts + 0.001 * tone(3000, 0.1)).unsqueeze(0)
    expl = FreqReX(model).explain(x, attributions=_faint_first(), seed=0)[0]
    assert _ids(expl.sufficient_necessary) == [LOUD, bin_of(1000, LENGTH)]
    assert _ids(expl.sufficient) == [LOUD] and expl.sufficient.certified and not expl.sufficient.flags
    assert _ids(expl.quiet_sufficient) == [FAINT]
    report = expl.sufficient.certificate.shrink
    assert (report.start, report.start_size, report.size, report.one_minimal) == (CLIP_LEVEL_START, 2, 1, True)
    assert "shrunk from the sufficient-and-necessary set (2 features" in expl.sufficient.certificate.note
    assert _decides(model, expl.waveform("sufficient")) == 1  # re-queried here
    assert _decides(model, expl.waveform("sufficient", removed=True)) == 1  # sufficient, not necessary
    # Without a shrink budget the sufficient-and-necessary set itself takes the quiet set's place.
    unshrunk = FreqReX(model).explain(x, attributions=_faint_first(), seed=0, shrink=False)[0]
    assert unshrunk.quiet_sufficient is not None
    assert torch.equal(unshrunk.sufficient.mask, unshrunk.sufficient_necessary.mask)


def test_the_default_search_finds_the_loud_bin_and_keeps_no_quiet_set(model, clip):
    expl = FreqReX(model).explain(clip, seed=0)[0]
    assert _ids(expl.sufficient) == [LOUD] and expl.quiet_sufficient is None
    with pytest.raises(ValueError, match="no quiet_sufficient set: its sufficient set was not replaced"):
        expl.waveform("quiet_sufficient")


def test_the_quiet_set_is_reported_beside_the_sets_not_among_them(faint_first, tmp_path):
    summary = faint_first.summary(SAMPLE_RATE)
    assert summary["quiet_sufficient"]["frequencies_hz"] == [3000.0]
    assert summary["quiet_sufficient"]["flags"][0]["flag"] == "below_clip_level"
    assert summary["flags"] == [] and summary["sets"]["sufficient"]["frequencies_hz"] == [440.0]
    text = faint_first.describe(sample_rate=SAMPLE_RATE)
    assert "quiet sufficient" in text and "at 3000 Hz" in text and "near-silent input" in text
    assert "FLAGGED" not in text  # the headline sets are informative
    assert "quiet_sufficient=1 features" in repr(faint_first)
    assert "quiet sufficient         1 feature (1 bin), loudest bin -60 dB" in text
    assert list(faint_first.named_sets)[-1] == "quiet_sufficient"
    assert "quiet_sufficient.wav" in result_files() and "quiet_sufficient.listen.flac" in result_files()


def test_the_report_shows_the_quiet_set_and_lets_it_be_heard(faint_first, tmp_path):
    pytest.importorskip("matplotlib")
    page = open(faint_first.to_html(str(tmp_path / "r.html"), sample_rate=SAMPLE_RATE), encoding="utf-8").read()
    assert 'data-set="quiet_sufficient"' in page and 'data-signal="quiet_sufficient"' in page


def test_the_bins_csv_marks_the_quiet_set_in_a_column_of_its_own(faint_first, model, clip, tmp_path):
    import csv

    with open(faint_first.to_csv(str(tmp_path / "bins.csv"), SAMPLE_RATE), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-2:] == ["complete", "quiet_sufficient"]
    assert [i for i, r in enumerate(rows) if r["quiet_sufficient"] == "1"] == [FAINT]
    assert [i for i, r in enumerate(rows) if r["sufficient"] == "1"] == [LOUD]
    # Without a quiet set the columns are the three sets' alone.
    with open(FreqReX(model).explain(clip, seed=0)[0].to_csv(str(tmp_path / "plain.csv")), newline="") as handle:
        assert next(csv.reader(handle))[-3:] == ["sufficient", "sufficient_necessary", "complete"]


def test_the_figures_draw_the_quiet_set_beside_the_others(faint_first):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        top = faint_first.plot(sample_rate=SAMPLE_RATE).axes[0]
        marked = {c.get_label(): c for c in top.collections}
        assert [float(x) for x in marked["quiet sufficient (1)"].get_offsets()[:, 0]] == [3000.0]
        assert [float(x) for x in marked["sufficient (1)"].get_offsets()[:, 0]] == [440.0]
        fig = faint_first.plot_spectrograms(sample_rate=SAMPLE_RATE)
        strip = next(ax for ax in fig.axes if ax.get_title() == "sets")
        assert [t.get_text() for t in strip.get_xticklabels()][-1] == "Q"
        quiet = [ax for ax in fig.axes if ax.get_title().startswith("quiet sufficient kept alone (1 feature)")]
        assert len(quiet) == 1 and "peak -60 dBFS (-65 dB vs the clip)" in quiet[0].get_title()  # 0.001 against 1.8
        # Its one bin is pointed at on the panel's edge, in the quiet set's colour.
        (mark,) = [line for line in quiet[0].get_lines() if line.get_label() == "frequencies of the set"]
        assert list(mark.get_ydata()) == [3000.0] and mark.get_color() == "#756bb1"
        # A line at the quiet set's frequency over the original's spectrogram, beside the loud one's.
        assert {3000.0, 440.0} <= {line.get_ydata()[0] for line in fig.axes[0].get_lines()}
    finally:
        plt.close("all")


def test_save_and_load_keep_the_quiet_set(faint_first, clip, tmp_path):
    loaded = Explanation.load(faint_first.save(str(tmp_path / "q.pt")), inputs=clip)
    assert _ids(loaded.quiet_sufficient) == [FAINT]
    assert loaded.summary(SAMPLE_RATE)["quiet_sufficient"] == faint_first.summary(SAMPLE_RATE)["quiet_sufficient"]
    assert torch.equal(loaded.waveform("quiet_sufficient"), faint_first.waveform("quiet_sufficient"))


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda r: r["quiet_sufficient"]["certificate"].update(certified=False), "quiet_sufficient is not a certified"),
        (lambda r: r["sets"].update(sufficient=None), "quiet_sufficient is stored without the sufficient set"),
        (lambda r: r["quiet_sufficient"].update(mask=torch.ones(3, dtype=torch.bool)), r"quiet_sufficient\.mask has shape"),
    ],
    ids=["uncertified", "no sufficient set", "mask shape"],
)
def test_a_tampered_quiet_set_is_refused(faint_first, tmp_path, tamper, message):
    record = torch.load(faint_first.save(str(tmp_path / "q.pt")), weights_only=True)
    tamper(record)
    torch.save(record, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match=rf"^this saved explanation is damaged: {message}"):
        Explanation.load(str(tmp_path / "tampered.pt"))


def _as_found(expl):
    """The sets as certification found them, before the replacement."""
    return [expl.quiet_sufficient, expl.sufficient_necessary, expl.complete]


def _with_certificate(chosen, **changes):
    return dataclasses.replace(chosen, certificate=dataclasses.replace(chosen.certificate, **changes))


def test_the_replacement_rule(faint_first):
    found = _as_found(faint_first)
    quiet, both, complete = found
    assert quiet_to_replace(found) is quiet
    # Not where the sufficient-and-necessary set is below the clip's level too, nor uncertified.
    assert quiet_to_replace([quiet, quiet, complete]) is None
    assert quiet_to_replace([quiet, _with_certificate(both, certified=False), complete]) is None
    # One that is most of the spectrum qualifies, but replaces the quiet set only where its shrink
    # brings it under half the features: unshrunk (no budget) it is no better an answer.
    broad = dataclasses.replace(both, mask=torch.ones_like(both.mask),
                                certificate=dataclasses.replace(both.certificate, size=both.mask.numel()))
    assert [f["flag"] for f in broad.flags] == ["most_of_spectrum"] and quiet_to_replace([quiet, broad, complete]) is quiet
    sets = [quiet, broad, complete]
    assert replace_quiet(None, faint_first.ranking, 1, sets, None, 0, 0) == (None, 0) and sets[0] is quiet
    # Nor where it is the ranking's prefix (explain(max_joint_queries=0)), which holds the quiet set.
    assert quiet_to_replace([quiet, _with_certificate(both, shrink=None), complete]) is None
    # Not where the sufficient set is at the clip's level already, nor where it is not certified.
    assert quiet_to_replace([both, both, complete]) is None
    assert quiet_to_replace([_with_certificate(quiet, certified=False), both, complete]) is None
    assert quiet_to_replace([None, both, complete]) is None and quiet_to_replace([quiet, None, None]) is None
