"""Multiple explanations: explain(..., n_explanations=k) returns pairwise-disjoint certified sufficient sets.

Known answer: EitherCause([[440], [880, 1320]]) fires on a 440 Hz tone, or on the 880 Hz + 1320 Hz
pair; on a clip holding the three tones (and distractors) the two causes are disjoint, each
sufficient alone, and keeping everything outside both fails, so there is no third.
"""

import pytest
import torch

from captum_freqrex import Explanation, FreqReX, FreqReXOptions, FreqReXWarning
from captum_freqrex._core.search.base import RefinementOptions, SearchContext, SetVerdicts
from captum_freqrex._core.search.restricted import restrict_context
from captum_freqrex._core.spectral.synthesis import StepQuery
from known_models import SAMPLE_RATE, EitherCause, bin_of, tone

SEED = 5
QUERIES = 1000  # the search budget of each set (the default): enough to refine to single bins here
CAUSES = ({bin_of(440, SAMPLE_RATE)}, {bin_of(880, SAMPLE_RATE), bin_of(1320, SAMPLE_RATE)})


@pytest.fixture
def model():
    return EitherCause([[440], [880, 1320]], threshold=0.5)


@pytest.fixture
def clip():
    g = torch.Generator().manual_seed(1)
    noise = 0.02 * torch.randn(SAMPLE_RATE, generator=g)
    return (tone(440) + tone(880) + tone(1320) + 0.5 * tone(2000) + noise).unsqueeze(0)


def _ids(chosen):
    return set(chosen.mask.nonzero().squeeze(1).tolist())


def _explain(model, clip, k, **options):
    return FreqReX(model).explain(clip, n_explanations=k, max_queries=QUERIES, seed=SEED, **options)[0]


def test_two_requested_returns_both_disjoint_causes_each_certified_by_requery(model, clip):
    expl = _explain(model, clip, 2)
    assert len(expl.alternatives) == 1
    found = [_ids(s) for s in expl.sufficient_sets]
    assert sorted(found, key=len) == sorted(CAUSES, key=len)  # both causes, exactly
    assert not (found[0] & found[1])
    for number, chosen in enumerate(expl.sufficient_sets):
        assert chosen.certified and chosen.certificate.kept.passes
        which = "sufficient" if number == 0 else f"alternative_{number}"
        kept = model(expl.waveform(which).unsqueeze(0))  # the model, asked again here
        assert int(kept.argmax(dim=1)) == 1
    report = expl.alternatives_report
    assert report.requested == 2 and report.stopped == "" and len(report.queries) == 1
    assert expl.certified and not expl.warnings


def test_three_requested_returns_two_and_says_why_not_a_third(model, clip):
    expl = _explain(model, clip, 3)
    assert len(expl.sufficient_sets) == 2
    report = expl.alternatives_report
    assert "does not keep the decision" in report.stopped and "no further disjoint sufficient set" in report.stopped
    assert report.stop_queries == 1  # the root check alone: keeping everything else fails
    summary = expl.summary(sample_rate=SAMPLE_RATE)
    assert summary["alternatives_report"]["stopped"] == report.stopped
    hz = sorted(summary["alternatives"][0]["frequencies_hz"] + summary["sets"]["sufficient"]["frequencies_hz"])
    assert hz == [440.0, 880.0, 1320.0]
    assert summary["settings"]["n_explanations"] == 3


def test_one_explanation_is_todays_result_bit_for_bit(model, clip):
    plain = FreqReX(model).explain(clip, max_queries=QUERIES, seed=SEED)[0]
    one = _explain(model, clip, 1)
    two = _explain(model, clip, 2)
    for expl in (one, two):  # asking for more never changes the first explanation
        assert torch.equal(expl.feature_responsibility, plain.feature_responsibility)
        assert torch.equal(expl.ranking, plain.ranking)
        for name, chosen in plain.sets.items():
            assert torch.equal(expl.sets[name].mask, chosen.mask)
    assert one.stats.queries == plain.stats.queries and one.extraction_queries == plain.extraction_queries
    assert one.alternatives == [] and one.alternatives_report is None
    assert two.stats.queries == plain.stats.queries + sum(two.alternatives_report.queries)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_a_bad_count_is_refused_naming_the_option(model, clip, bad, error):
    with pytest.raises(error, match=r"n_explanations must be .*an int >= 1"):
        FreqReX(model).explain(clip, n_explanations=bad)
    with pytest.raises(error, match="n_explanations"):
        FreqReXOptions(n_explanations=bad)


def test_necessary_mode_is_refused_with_the_fix(model, clip):
    with pytest.raises(ValueError, match=r"n_explanations=2 needs mode='sufficient'.*n_explanations=1"):
        FreqReX(model).explain(clip, n_explanations=2, mode="necessary")


def test_each_further_set_stays_within_its_documented_budget(model, clip):
    expl = _explain(model, clip, 3, shrink=True, max_extraction_queries=32, max_shrink_queries=16)
    bound = 1 + QUERIES + 32 + 16
    assert expl.alternatives_report.queries and all(q <= bound for q in expl.alternatives_report.queries)
    assert expl.alternatives_report.stop_queries <= bound
    assert all(s.certified for s in expl.sufficient_sets)


@pytest.mark.parametrize("shrink", [True, False])
def test_three_loud_tones_each_sufficient_give_three_one_bin_sets_in_a_few_queries_each(shrink):
    # Each tone alone suffices. The search over the features left asks their loudest peaks first,
    # and the extraction starts from that passing peak (the top of its ranking): each further set
    # is the next tone alone, found and certified in a handful of queries, with or without the shrink.
    from known_models import ToneDetector

    g = torch.Generator().manual_seed(0)
    x = (tone(440) + 0.5 * tone(1000) + 0.3 * tone(2500) + 0.05 * torch.randn(SAMPLE_RATE, generator=g)).unsqueeze(0)
    model = ToneDetector([440, 1000, 2500], threshold=0.25)
    expl = FreqReX(model).explain(x, n_explanations=3, shrink=shrink)[0]
    assert [sorted(_ids(s)) for s in expl.sufficient_sets] == [[bin_of(f, SAMPLE_RATE)] for f in (440, 1000, 2500)]
    assert all(s.certified for s in expl.sufficient_sets)
    assert all(q <= 8 for q in expl.alternatives_report.queries), expl.alternatives_report.queries
    for chosen in expl.sufficient_sets:  # re-queried: each tone alone keeps the decision
        alone = torch.fft.irfft(torch.fft.rfft(x) * chosen.mask.float(), n=x.shape[-1])
        assert model(alone).argmax(1).item() == 1


def test_given_attributions_rank_the_features_left_without_a_search(model, clip):
    scores = torch.fft.rfft(clip).abs()  # loudness as the attribution: no query to rank
    expl = FreqReX(model).explain(clip, attributions=scores, n_explanations=2, seed=SEED)[0]
    first, second = (_ids(s) for s in expl.sufficient_sets)
    assert not (first & second) and all(s.certified for s in expl.sufficient_sets)
    assert expl.alternatives_report.queries[0] <= 1 + 64  # root check + extraction, no search


def test_no_further_set_without_a_certified_first_one(model):
    silent = torch.zeros(1, SAMPLE_RATE)  # the model decides class 0: the explained target 1 is not decided
    with pytest.warns(FreqReXWarning, match="not the model's decision"):
        expl = FreqReX(model).explain(silent, target=1, n_explanations=2, max_queries=60, seed=SEED)[0]
    assert expl.alternatives == [] and expl.alternatives_report.stopped.startswith("no sufficient set was found")


def test_save_and_load_keep_the_alternatives(model, clip, tmp_path):
    expl = _explain(model, clip, 3)
    loaded = Explanation.load(expl.save(str(tmp_path / "two.pt")))
    assert [_ids(s) for s in loaded.alternatives] == [_ids(s) for s in expl.alternatives]
    assert loaded.alternatives_report == expl.alternatives_report
    assert loaded.summary()["alternatives"] == expl.summary()["alternatives"]


@pytest.mark.parametrize(
    "tamper, field",
    [
        (lambda r: r["alternatives"][0].update(mask=r["alternatives"][0]["mask"] | r["sets"]["sufficient"]["mask"]),
         r"alternatives\[0\]\.n_bins|alternatives\[0\] overlaps"),
        (lambda r: r["alternatives"][0]["certificate"].update(certified=False), r"alternatives\[0\] is not a certified"),
        (lambda r: r["alternatives_report"].update(queries=[]), r"alternatives_report\.queries"),
        (lambda r: r["alternatives_report"].update(requested=1), r"alternatives_report\.requested"),
        (lambda r: r.update(alternatives_report=None), "alternatives_report is missing"),
        (lambda r: r["alternatives"][0].update(mask=torch.ones(3, dtype=torch.bool)), r"alternatives\[0\]\.mask has shape"),
    ],
    ids=["overlapping", "uncertified", "queries per set", "requested", "no report", "mask shape"],
)
def test_a_tampered_file_is_refused(model, clip, tmp_path, tamper, field):
    record = torch.load(_explain(model, clip, 2).save(str(tmp_path / "two.pt")), weights_only=True)
    tamper(record)
    torch.save(record, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match=rf"^this saved explanation is damaged: (?:{field})"):
        Explanation.load(str(tmp_path / "tampered.pt"))


def test_an_overlap_with_consistent_counts_is_refused(model, clip, tmp_path):
    # The overlapping mask with its bin count and size made consistent: only disjointness catches it.
    record = torch.load(_explain(model, clip, 2).save(str(tmp_path / "two.pt")), weights_only=True)
    alternative = record["alternatives"][0]
    alternative["mask"] = alternative["mask"] | record["sets"]["sufficient"]["mask"]
    alternative["n_bins"] = int(alternative["mask"].sum())
    alternative["certificate"]["size"] = int(alternative["mask"].sum())
    torch.save(record, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match=r"alternatives\[0\] overlaps the sufficient set"):
        Explanation.load(str(tmp_path / "tampered.pt"))


def test_the_report_shows_every_set_and_why_not_more(model, clip, tmp_path):
    pytest.importorskip("matplotlib")
    expl = _explain(model, clip, 3)
    html = open(expl.to_html(str(tmp_path / "r.html"), sample_rate=SAMPLE_RATE), encoding="utf-8").read()
    assert 'data-set="alternative_1"' in html and 'data-signal="alternative_1"' in html
    assert 'id="alternatives" data-found="2" data-requested="3"' in html and "no further disjoint" in html


def test_a_restricted_context_maps_sets_and_steps_onto_the_allowed_features():
    n = 10
    allowed = torch.ones(n, dtype=torch.bool)
    allowed[[0, 3, 4, 8]] = False  # allowed ids 1 2 5 6 7 9
    seen = {}

    def steps(queries):
        seen["steps"] = torch.cat([q.keep_masks(n, torch.device("cpu")) for q in queries])
        return torch.zeros(seen["steps"].shape[0], dtype=torch.bool)

    def masks(sets):
        seen["masks"] = sets
        return SetVerdicts(torch.zeros(sets.shape[0], dtype=torch.bool), torch.zeros(sets.shape[0]))

    energy = torch.arange(n, dtype=torch.float64)
    full = SearchContext(steps, masks, n, True, RefinementOptions(), torch.Generator(), torch.device("cpu"), energy)
    small = restrict_context(full, allowed, RefinementOptions(max_queries=40))
    assert small.n_features == 6 and small.root_passes and torch.equal(small.energy, energy[allowed])
    ids = allowed.nonzero().squeeze(1)
    query = StepQuery([[(0, 4)], [(4, 6)]], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    small.evaluate([query])
    expected = torch.zeros(3, n)
    expected[:, ids] = query.keep_masks(6, torch.device("cpu"))
    assert torch.equal(seen["steps"], expected) and small.queries == 3
    sets = torch.eye(6)
    small.evaluate_sets(sets)
    assert torch.equal(seen["masks"][:, ids], sets) and not bool(seen["masks"][:, ~allowed].any())


def test_a_batch_explains_as_each_example_alone(model, clip):
    batch = torch.cat([clip, 0.9 * clip])
    together = FreqReX(model).explain(batch, n_explanations=2, max_queries=QUERIES, seed=SEED)
    for example, expl in enumerate(together):
        alone = _explain(model, batch[example : example + 1], 2)
        assert [_ids(s) for s in expl.sufficient_sets] == [_ids(s) for s in alone.sufficient_sets]
        assert expl.alternatives_report == alone.alternatives_report


@pytest.mark.parametrize("kind", ["bands", "stft"])
def test_band_and_stft_features_give_disjoint_certified_sets_that_load(model, clip, tmp_path, kind):
    from captum_freqrex import StftDomain, linear_bands

    if kind == "bands":  # 40 Hz bands: 440, 880 and 1320 Hz fall in three different bands
        expl = FreqReX(model).explain(clip, feature_mask=linear_bands(SAMPLE_RATE, 100), n_explanations=2, seed=SEED)[0]
    else:
        expl = FreqReX(model, domain=StftDomain(256)).explain(clip, n_explanations=2, max_queries=QUERIES, seed=SEED)[0]
    assert len(expl.sufficient_sets) == 2 and all(s.certified for s in expl.sufficient_sets)
    assert not (expl.sufficient.mask & expl.alternatives[0].mask).any()
    loaded = Explanation.load(expl.save(str(tmp_path / "e.pt")))
    assert torch.equal(loaded.alternatives[0].mask, expl.alternatives[0].mask)


def test_the_bins_csv_has_a_column_per_alternative(model, clip, tmp_path):
    import csv

    expl = _explain(model, clip, 2)
    with open(expl.to_csv(str(tmp_path / "bins.csv"), SAMPLE_RATE), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-4:] == ["sufficient", "sufficient_necessary", "complete", "alternative_1"]
    assert {i for i, r in enumerate(rows) if r["alternative_1"] == "1"} == _ids(expl.alternatives[0])
    assert {i for i, r in enumerate(rows) if r["sufficient"] == "1"} == _ids(expl.sufficient)
