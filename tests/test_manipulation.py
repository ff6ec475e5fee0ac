"""The necessary-mode answer as a set (Explanation.manipulation): known answers, ties, fallbacks,
misbehaving models, files, text, report and command line, and a real drum recording."""

import json
import math
import warnings
from typing import Optional

import pytest
import soundfile as sf
import torch
from torch import Tensor, nn

from captum_freqrex import Explanation, FreqReX, SearchResult, zoo
from captum_freqrex._core.certify import manipulation as manipulation_module
from captum_freqrex.cli import main
from captum_freqrex.metrics import perturbation_success_rate
from known_models import (
    SAMPLE_RATE, Drifting, ScatteredKeyPartials, SpectrumCoverageDetector, ToneDetector, bin_of, scattered_key_partials_clip,
    tone,
)


def _explain(model, x: Tensor, **options) -> Explanation:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FreqReX(model, **{k: options.pop(k) for k in ("search",) if k in options}).explain(x, **options)[0]


def _members(mask: Tensor) -> list:
    return mask.nonzero().squeeze(1).tolist()


@pytest.fixture
def tone_clip() -> Tensor:
    return (tone(440) + tone(1000, amplitude=0.5)).unsqueeze(0)


def test_the_one_bin_the_detector_reads_is_the_answer_with_the_snr_of_its_removal(tone_clip):
    """ToneDetector reads only 440 Hz: removing that one bin flips it, and nothing else does."""
    model = ToneDetector([440], 0.3)
    expl = _explain(model, tone_clip, mode="necessary")
    found = expl.manipulation
    assert found is not None and found.certified
    assert _members(found.mask) == [bin_of(440, SAMPLE_RATE)]
    assert found.size == 1 and found.n_bins == 1 and found.flip_class == 0
    # The SNR is perturbation_success_rate's at k = 1, and by hand: all energy over the 440 Hz sine's (4/5 of 1.25).
    rate = perturbation_success_rate(model, tone_clip, expl.feature_responsibility.unsqueeze(0), k=[1])
    assert bool(rate.flipped[0, 0])
    assert found.snr_db == pytest.approx(float(rate.snr_db[0, 0]), abs=1e-6)
    assert found.snr_db == pytest.approx(10 * math.log10(1.25 / 1.0), abs=1e-3)
    # The manipulated clip is what the certificate was asked on: the model decides otherwise there.
    manipulated = expl.waveform("manipulation", removed=True)
    assert model(manipulated.unsqueeze(0)).argmax(1).item() == 0
    assert "the smallest removal the necessary-mode search saw change the decision" in found.note


def test_the_scattered_key_partials_are_the_answer():
    """ScatteredKeyPartials: the six key partials, whose removal alone flips it (the loud runs' answer)."""
    clip = scattered_key_partials_clip()
    model = ScatteredKeyPartials(clip)
    found = _explain(model, clip, mode="necessary").manipulation
    assert found is not None and found.certified
    assert _members(found.mask) == list(ScatteredKeyPartials.KEY)


class PairedCauses(nn.Module):
    """Class 1 while each pair, (300, 700) Hz and (500, 900) Hz, keeps one of its tones: a
    removal flips it only with both tones of a pair."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([300, 700, 500, 900], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        e = self.detector.energies(x)
        margin = torch.minimum(e[:, :2].max(1).values, e[:, 2:].max(1).values) - 0.1
        return torch.stack([-margin, margin], dim=1)


class Credits:
    """A custom necessary-mode search crediting the given bins with the given values (and naming
    its answer in ``details["answer"]``, as band screening does, where given)."""

    def __init__(self, credited: dict, answer: Optional[list] = None) -> None:
        self.credited, self.answer = credited, answer

    def run(self, context) -> SearchResult:
        values = torch.zeros(context.n_features, dtype=torch.float64)
        for feature, value in self.credited.items():
            values[feature] = value
        return SearchResult(values, 0, "searches", {} if self.answer is None else {"answer": self.answer})


def _paired_clip() -> Tensor:
    # Louder first: 300 > 500 > 700 > 900 Hz, so tied credits rank 300, 500, 700, 900.
    return (tone(300) + tone(500, amplitude=0.8) + tone(700, amplitude=0.6) + tone(900, amplitude=0.4)).unsqueeze(0)


def test_tied_removals_that_the_ranking_mixes_are_searched_past_the_size_named():
    """Two pairs each credited 1/2: the ranking's top two (300 and 500 Hz, one of each pair) do not
    flip it, so the prefix search goes on to the top three, which hold a whole pair; the shrink
    then drops 500 Hz, which that removal does not need, and leaves the pair (300, 700 Hz)."""
    bins = [bin_of(f, SAMPLE_RATE) for f in (300, 500, 700, 900)]
    expl = _explain(PairedCauses(), _paired_clip(), mode="necessary", search=Credits({b: 0.5 for b in bins}))
    found = expl.manipulation
    assert found is not None and found.certified
    assert _members(found.mask) == [bins[0], bins[2]]
    assert "shortest probed prefix" in found.note and "shrunk from 3 to 2 features" in found.note


class ToneOverNoise(nn.Module):
    """Class 1 while 440 Hz is present and over half the bins carry sound: removing 440 Hz alone
    flips it, while a set kept alone keeps it only with half the spectrum (so the
    sufficient-and-necessary set is no smaller than a band around 440 Hz)."""

    def __init__(self) -> None:
        super().__init__()
        self.tone, self.coverage = ToneDetector([440], 0.3), SpectrumCoverageDetector(share=0.5, floor=0.5)

    def forward(self, x: Tensor) -> Tensor:
        margin = torch.minimum(self.tone(x)[:, 1], self.coverage(x)[:, 1])
        return torch.stack([-margin, margin], dim=1)


def test_a_flipping_band_is_shrunk_to_what_its_removal_needs():
    """A search that names a band of nine bins (440 Hz among them) as its answer: its removal flips
    the decision, and the shrink leaves 440 Hz alone, certified by re-query."""
    noise = torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    x = (tone(440) + noise).unsqueeze(0)
    decisive = bin_of(440, SAMPLE_RATE)
    band = list(range(decisive - 4, decisive + 5))
    expl = _explain(ToneOverNoise(), x, mode="necessary", search=Credits({b: 1 / 9 for b in band}, answer=band))
    assert expl.sufficient_necessary is None or expl.sufficient_necessary.size > len(band)
    found = expl.manipulation
    assert found is not None and found.certified and _members(found.mask) == [decisive]
    assert ToneOverNoise()(expl.waveform("manipulation", removed=True).unsqueeze(0)).argmax(1).item() == 0
    assert "shrunk from 9 to 1 features while its removal still changed it" in found.note


def test_a_search_that_shrank_its_answer_already_is_not_asked_again(monkeypatch):
    """Band screening shrinks its loud-run removals itself (details["answer_shrunk"]): the six key
    partials of ScatteredKeyPartials are removed and re-queried, nothing more."""
    clip = scattered_key_partials_clip()
    shrinks = []
    real = manipulation_module._shrunk
    monkeypatch.setattr(manipulation_module, "_shrunk", lambda *args: shrinks.append(args) or real(*args))
    explainer = FreqReX(ScatteredKeyPartials(clip))
    found = explainer.explain(clip, mode="necessary", max_joint_queries=0)[0].manipulation
    assert explainer.last_search[0].details["answer_shrunk"] is True
    assert found is not None and found.certified and _members(found.mask) == list(ScatteredKeyPartials.KEY)
    assert not shrinks


def test_two_features_each_removed_alone_without_a_flip_are_not_asked_again(monkeypatch):
    """Either of two tones keeps the decision, so only removing both flips it. Band screening
    removed each alone (no flip), then the two together (the flip it names): neither can go, so the
    manipulation re-queries the pair and asks none of its single removals again."""
    x = (tone(300) + tone(700)).unsqueeze(0)
    bins = [bin_of(300, SAMPLE_RATE), bin_of(700, SAMPLE_RATE)]
    shrinks = []
    real = manipulation_module._shrunk
    monkeypatch.setattr(manipulation_module, "_shrunk", lambda *args: shrinks.append(args) or real(*args))
    explainer = FreqReX(ToneDetector([300, 700], threshold=0.5))
    found = explainer.explain(x, mode="necessary")[0].manipulation
    details = explainer.last_search[0].details
    assert details["answer"] == bins and details["answer_shrunk"] is True
    assert found is not None and found.certified and _members(found.mask) == bins
    assert not shrinks


def test_the_answer_a_search_names_is_removed_in_place_of_the_mixed_prefix(monkeypatch):
    """The same tie, with the search naming its answer (the pair 500 and 900 Hz): that pair is
    removed, one query and its re-query, and no prefix is searched."""
    bins = [bin_of(f, SAMPLE_RATE) for f in (300, 500, 700, 900)]
    asked = []
    monkeypatch.setattr(manipulation_module, "_smallest_flipping_prefix", lambda *args: asked.append(args) or (None, 0))
    search = Credits({b: 0.5 for b in bins}, answer=[bins[1], bins[3]])
    found = _explain(PairedCauses(), _paired_clip(), mode="necessary", search=search).manipulation
    assert found is not None and found.certified and _members(found.mask) == [bins[1], bins[3]] and not asked
    assert found.note.startswith("the smallest removal the necessary-mode search saw change the decision")


def test_band_screenings_answer_is_its_smallest_flipping_set():
    """Band screening names the smallest set it saw flip: ScatteredKeyPartials' six key partials."""
    clip = scattered_key_partials_clip()
    explainer = FreqReX(ScatteredKeyPartials(clip))
    explainer.attribute(clip, mode="necessary")
    assert explainer.last_search[0].details["answer"] == list(ScatteredKeyPartials.KEY)


def test_given_attributions_are_searched_from_one_feature():
    """Attributions say nothing of a removal's size: their prefixes are searched from one feature."""
    x = _paired_clip()
    order = [bin_of(f, SAMPLE_RATE) for f in (300, 700, 500, 900)]
    scores = torch.zeros(1, x.shape[-1] // 2 + 1)
    scores[0, order] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    found = _explain(PairedCauses(), x, mode="necessary", attributions=scores).manipulation
    assert found is not None and found.certified and _members(found.mask) == sorted(order[:2])


def test_a_smaller_certified_sufficient_and_necessary_set_is_the_answer(tone_clip):
    """A custom search credits nine bins at 1/9 (440 Hz among them): removing them flips the
    detector, but the sufficient-and-necessary set, 440 Hz alone, flips it with one."""
    decisive = bin_of(440, SAMPLE_RATE)
    credited = {decisive: 1 / 9, **{b: 1 / 9 for b in range(100, 108)}}
    expl = _explain(ToneDetector([440], 0.3), tone_clip, mode="necessary", search=Credits(credited))
    found = expl.manipulation
    assert found is not None and found.certified and _members(found.mask) == [decisive]
    assert "the sufficient-and-necessary set" in found.note and "(9 features)" in found.note


def test_a_sufficient_and_necessary_answer_is_shrunk_while_its_removal_alone_flips():
    """Both tones keep the detector's decision, so the sufficient-and-necessary set is the pair;
    removing either tone alone flips it. A search that credits nothing leaves that pair as the
    answer, which the shrink, holding only the removal's claim, cuts to one tone."""
    x = (tone(440) + tone(1000) + tone(2000, amplitude=0.5)).unsqueeze(0)
    expl = _explain(ToneDetector([440, 1000], 0.3, require_all=True), x, mode="necessary", search=Credits({}))
    pair = sorted(bin_of(f, SAMPLE_RATE) for f in (440, 1000))
    assert _members(expl.sufficient_necessary.mask) == pair
    found = expl.manipulation
    assert found is not None and found.certified and found.size == 1 and _members(found.mask)[0] in pair
    assert "shrunk from 2 to 1 features while its removal still changed it" in found.note


def test_no_answer_without_a_flipping_removal_and_none_in_sufficient_mode(tone_clip):
    """A model that ignores its input has no removal that flips it; sufficient mode searches for none."""
    deaf = _explain(lambda w: torch.tensor([[0.0, 1.0]]).repeat(w.shape[0], 1), tone_clip, mode="necessary")
    assert deaf.manipulation is None
    assert "manipulation" not in repr(deaf) and deaf.summary()["manipulation"] is None
    with pytest.raises(ValueError, match="no manipulation"):
        deaf.waveform("manipulation", removed=True)
    assert _explain(ToneDetector([440], 0.3), tone_clip).manipulation is None


def test_a_model_whose_output_drifts_between_calls_gets_no_certified_answer(tone_clip):
    found = _explain(Drifting(), tone_clip, mode="necessary", max_queries=200).manipulation
    assert found is None or (not found.certified and "not certified" in found.note)


def test_the_prefix_search_is_bounded_and_falls_back_to_the_sufficient_and_necessary_set(tone_clip, monkeypatch):
    """Where no prefix of the credited features flips, the search stops within its queries."""
    calls = []
    real = manipulation_module._smallest_flipping_prefix

    def counted(*args):
        size, spent = real(*args)
        calls.append(spent)
        return size, spent

    monkeypatch.setattr(manipulation_module, "_smallest_flipping_prefix", counted)
    credited = {b: 1.0 for b in range(50, 150)}  # 100 bins the detector ignores
    expl = _explain(ToneDetector([440], 0.3), tone_clip, mode="necessary", search=Credits(credited))
    assert calls and calls[0] <= 1 + manipulation_module.QUERIES
    # The sufficient-and-necessary set (440 Hz alone) flips it: the answer falls back to it.
    found, sn = expl.manipulation, expl.sufficient_necessary
    assert found is not None and found.certified and torch.equal(found.mask, sn.mask)
    assert "no prefix of the search's ranking did" in found.note


def test_the_answer_survives_save_and_load_and_a_damaged_record_is_refused(tone_clip, tmp_path):
    expl = _explain(ToneDetector([440], 0.3), tone_clip, mode="necessary")
    path = str(tmp_path / "expl.pt")
    expl.save(path)
    loaded = Explanation.load(path)
    assert loaded.manipulation is not None
    assert torch.equal(loaded.manipulation.mask, expl.manipulation.mask)
    assert loaded.manipulation.snr_db == expl.manipulation.snr_db
    assert loaded.summary()["manipulation"] == expl.summary()["manipulation"]
    record = torch.load(path, weights_only=True)
    record["manipulation"]["n_bins"] = 7
    torch.save(record, path)
    with pytest.raises(ValueError, match="manipulation.n_bins is 7"):
        Explanation.load(path)


def test_describe_and_the_report_lead_with_the_answer(tone_clip, tmp_path):
    expl = _explain(ToneDetector([440], 0.3), tone_clip, mode="necessary")
    expl.sample_rate = SAMPLE_RATE
    text = expl.describe()
    line = next(line for line in text.splitlines() if "fewest to remove" in line)
    assert "1 feature (1 bin)" in line and "SNR 1.0 dB" in line and "removing it flips the decision to class 0" in line
    assert text.index("fewest to remove") < text.index("sufficient ")
    # The 440 Hz sine is 80% of the clip's energy: removing it is flagged, with the next step.
    assert "FLAGGED, not a small manipulation: it is a change at SNR 1.0 dB: over 50% of the clip's energy" in text
    assert "hint: the necessary-mode answer is no small manipulation: search time-frequency cells" in text
    assert [flag["flag"] for flag in expl.manipulation.flags] == ["most_of_sound"]
    summary = expl.summary()
    assert summary["manipulation"]["frequencies_hz"] == [440.0]
    assert summary["manipulation"]["removed_class"] == 0 and summary["manipulation"]["certified"] is True
    html = open(expl.to_html(str(tmp_path / "report.html")), encoding="utf-8").read()
    assert 'data-set="manipulation" data-certified="true"' in html
    assert "Removing 1 feature (SNR 1.0 dB) flips it to" in html
    assert 'id="manipulation-flags"' in html


def test_the_command_prints_the_answer_and_writes_the_manipulated_clip(tmp_path, capsys):
    """freqrex explain --mode necessary on the shipped kick clip (a real drum recording)."""
    clip = zoo.load_clip("percussion", 0)
    wav = tmp_path / "kick.wav"
    sf.write(str(wav), clip.waveform.numpy(), clip.sample_rate)
    out = tmp_path / "out"
    argv = ["explain", str(wav), "--model", "percussion", "--mode", "necessary", "--out", str(out), "--audio-files", "all"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fewest to remove" in printed and "removing it flips the decision to" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manipulation"]["certified"] and summary["manipulation_class_name"] != "kick"
    assert "manipulation_removed.wav" in summary["file_notes"]
    manipulated, rate = sf.read(str(out / "manipulation_removed.wav"), dtype="float32")
    model = zoo.load("percussion").model
    with torch.no_grad():
        decided = int(model(torch.from_numpy(manipulated).unsqueeze(0)).argmax(1))
    assert decided == summary["manipulation"]["removed_class"]


def test_real_drum_recordings_get_a_certified_quiet_answer():
    """The shipped percussion clips (real drum samples): every decision flips with a certified
    removal, at the SNR perturbation_success_rate measures for the same removal."""
    loaded = zoo.load("percussion")
    for index in range(len(zoo.sample_clips("percussion"))):
        x = zoo.load_clip("percussion", index).waveform.unsqueeze(0)
        expl = _explain(loaded.model, x, mode="necessary")
        found = expl.manipulation
        assert found is not None and found.certified, index
        with torch.no_grad():
            decided = int(loaded.model(expl.waveform("manipulation", removed=True).unsqueeze(0)).argmax(1))
        assert decided == found.flip_class != expl.target, index
        assert found.snr_db > 10, (index, found.snr_db)
        assert not found.flags, index
