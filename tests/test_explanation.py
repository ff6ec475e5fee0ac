"""Readable results of an Explanation: summary in Hz, settings, CSV, save/load, repr, listening WAVs.

Known answers: ToneDetector([440]) reads only the 440 Hz bin of a 1 s clip at 8 kHz (bin 440 sits
at exactly 440 Hz), so the sufficient set is that bin, and the test computes every expected Hz and
rank from the clip length and the explanation's own ranking, never from a pasted result.
"""

import csv
import dataclasses
import json

import pytest
import torch

from captum_freqrex import Explanation, FeatureSpace, FreqReX, StftDomain, linear_bands
from captum_freqrex._explanation.file import FILE_SCHEMA_VERSION
from captum_freqrex._explanation.records import SUMMARY_SCHEMA_VERSION
from captum_freqrex._utils.validation import format_baselines, format_waveforms
from known_models import SAMPLE_RATE, ToneDetector, bin_of, tone

SEED = 3


@pytest.fixture
def explanation(detector, tone_clip):
    return FreqReX(detector).explain(tone_clip, max_queries=200, seed=SEED)[0]


def test_summary_lists_each_set_in_hz_with_seed_settings_versions_and_schema(explanation, tone_clip):
    import captum

    import captum_freqrex

    summary = explanation.summary(sample_rate=SAMPLE_RATE)
    assert summary["schema"] == "captum_freqrex.summary" and summary["schema_version"] == SUMMARY_SCHEMA_VERSION
    assert summary["versions"] == {
        "captum_freqrex": captum_freqrex.__version__, "torch": torch.__version__, "captum": captum.__version__,
    }
    assert summary["seed"] == SEED and summary["settings"]["seed"] == SEED
    assert summary["settings"]["max_queries"] == 200 and summary["settings"]["domain"] == "RfftDomain()"
    assert summary["sample_rate"] == SAMPLE_RATE and summary["domain"]["name"] == "rfft"
    sufficient = summary["sets"]["sufficient"]
    n_samples = tone_clip.shape[-1]
    k = bin_of(440, n_samples)
    assert sufficient["frequency_bins"] == [k] and sufficient["frequencies_hz"] == [440.0]
    assert sufficient["frequency_span_hz"] == [440.0, 440.0] and sufficient["n_frequencies"] == 1
    assert sufficient["bands"] is None and sufficient["cells"] is None
    for name, entry in summary["sets"].items():
        chosen = explanation.sets[name]
        bins = chosen.mask.nonzero().squeeze(1).tolist()  # one feature per bin here
        assert entry["frequency_bins"] == bins
        assert entry["frequencies_hz"] == [round(b * SAMPLE_RATE / n_samples, 3) for b in bins]
    json.dumps(summary)  # JSON-safe


def test_summary_without_a_sample_rate_gives_bins_and_no_hz(explanation):
    entry = explanation.summary()["sets"]["sufficient"]
    assert entry["frequency_bins"] == [bin_of(440, SAMPLE_RATE)]
    assert entry["frequencies_hz"] is None and entry["frequency_span_hz"] is None
    explanation.sample_rate = SAMPLE_RATE  # the explanation's own rate is the default
    assert explanation.summary()["sets"]["sufficient"]["frequencies_hz"] == [440.0]


@pytest.mark.parametrize("declared, expected", [(SAMPLE_RATE, float(SAMPLE_RATE)), (None, None), ("8k", None),
                                                 (True, None), (float("nan"), None), (-SAMPLE_RATE, None)])
def test_the_models_own_sample_rate_attribute_gives_the_hz(detector, tone_clip, declared, expected):
    """A model that declares its rate (``model.sample_rate``, as the zoo's do) gets explanations in
    Hz without options; anything but a positive finite number there is not a rate and gives bins only."""
    detector.sample_rate = declared
    explanation = FreqReX(detector).explain(tone_clip, max_queries=200, seed=SEED)[0]
    assert explanation.sample_rate == expected
    entry = explanation.summary()["sets"]["sufficient"]
    assert entry["frequencies_hz"] == ([440.0] if expected else None)


@pytest.mark.parametrize("declared, expected", [(("quiet", "A4"), ("quiet", "A4")), (["quiet", "A4"], ("quiet", "A4")),
                                                 (("A4",), None), ("A4", None), (("quiet", 4), None), (None, None)])
def test_the_models_own_class_names_name_the_classes(detector, tone_clip, declared, expected, tmp_path):
    """A model that names its classes (``model.class_names``, as the zoo's do) gets explanations
    that name them without options: ``describe``, ``print`` and the report; anything but one string
    per output is not a list of names and is ignored."""
    detector.class_names = declared
    explanation = FreqReX(detector).explain(tone_clip, max_queries=200, seed=SEED)[0]
    assert explanation.class_names == expected
    first = str(explanation).splitlines()[0]
    assert first.startswith("decision: class 1 'A4'" if expected else "decision: class 1 (")
    assert explanation.describe(class_names=["no", "yes"]).startswith("decision: class 1 'yes'")  # given names win
    loaded = Explanation.load(explanation.save(str(tmp_path / "named.pt")))
    assert loaded.class_names == expected


def test_a_zoo_model_names_its_classes_in_the_explanation(tmp_path):
    from captum_freqrex import zoo

    loaded = zoo.load("percussion")
    assert loaded.model.class_names == loaded.class_names
    clip = zoo.load_clip("percussion", 0)
    explanation = FreqReX(loaded.model).explain(clip.waveform[: loaded.num_samples].unsqueeze(0), seed=SEED)[0]
    assert explanation.class_names == loaded.class_names
    name = loaded.class_names[explanation.target]
    assert str(explanation).splitlines()[0].startswith(f"decision: class {explanation.target} '{name}'")
    pytest.importorskip("matplotlib")
    page = open(explanation.to_html(str(tmp_path / "r.html")), encoding="utf-8").read()
    assert f"{name} ({explanation.target})" in page  # the report names the class too


def test_large_sets_list_their_most_responsible_frequencies(explanation):
    complete = explanation.summary(SAMPLE_RATE)["sets"]["complete"]
    everything = explanation.summary(SAMPLE_RATE, max_listed=None)["sets"]["complete"]
    assert not everything["frequencies_truncated"] and everything["n_frequencies"] == explanation.complete.n_bins
    limited = explanation.summary(SAMPLE_RATE, max_listed=1)["sets"]["complete"]
    assert limited["n_frequencies"] == complete["n_frequencies"]
    if complete["n_frequencies"] > 1:
        assert limited["frequencies_truncated"]
    assert limited["frequency_bins"] == [int(explanation.ranking[0])]  # the most responsible bin


def test_band_features_list_their_band_edges(detector, tone_clip):
    mask = linear_bands(SAMPLE_RATE, 64, sample_rate=SAMPLE_RATE)
    expl = FreqReX(detector).explain(tone_clip, feature_mask=mask, max_queries=200)[0]
    entry = expl.summary(SAMPLE_RATE)["sets"]["sufficient"]
    band = int(mask[bin_of(440, SAMPLE_RATE)])
    members = (mask == band).nonzero().squeeze(1)
    lo, hi = int(members.min()), int(members.max())
    assert [lo, hi] in entry["bands"] and [float(lo), float(hi)] in entry["bands_hz"]  # 1 Hz per bin
    assert lo <= bin_of(440, SAMPLE_RATE) <= hi


def test_stft_sets_list_their_cells_in_hz_and_seconds():
    half = SAMPLE_RATE // 2
    clip = torch.cat([torch.zeros(half), tone(1000, 0.5)])

    def late_tone(x):
        energy = torch.fft.rfft(x[:, -half:]).abs()[:, bin_of(1000, half)] / (half / 2)
        return torch.stack([0.5 - energy, energy - 0.5], 1)

    domain = StftDomain(n_fft=256, hop_length=64)
    # A budget the search settles within: cut short, a set keeps a cell it does not need (one
    # frame before the tone's half at 200 queries, since the default's loud bands take 7).
    expl = FreqReX(late_tone, domain=domain).explain(clip.unsqueeze(0), max_queries=300)[0]
    entry = expl.summary(SAMPLE_RATE)["sets"]["sufficient"]
    row = round(1000 * 256 / SAMPLE_RATE)  # 1 kHz sits on STFT row 32
    assert row in entry["frequency_bins"]
    times = domain.frame_times(SAMPLE_RATE, SAMPLE_RATE)
    for (f, t), (hz, seconds) in zip(entry["cells"], entry["cells_hz_s"]):
        assert hz == pytest.approx(f * SAMPLE_RATE / 256) and seconds == pytest.approx(float(times[t]), abs=1e-4)
    assert all(float(times[t]) >= 0.5 - 256 / SAMPLE_RATE for _, t in entry["cells"])  # the tone's half


def test_class_confidences_are_the_models_probabilities(classifier, tone_clip):
    expl = FreqReX(classifier).explain(tone_clip, max_queries=200)[0]
    expected = classifier(tone_clip).softmax(-1)[0].double()
    assert torch.allclose(expl.class_confidences, expected, atol=1e-6)
    assert expl.summary()["class_confidences"] == pytest.approx(expected.tolist(), abs=1e-6)


def test_settings_reproduce_the_explanation(detector, tone_clip):
    generator = torch.Generator().manual_seed(11)
    first = FreqReX(detector).explain(tone_clip, max_queries=200, generator=generator)[0]
    seed = first.settings["seed"]
    assert first.settings["generator"] is True
    again = FreqReX(detector).explain(tone_clip, max_queries=200, seed=seed)[0]
    assert torch.equal(first.ranking, again.ranking)


def test_repr_is_short_and_says_what_matters(explanation):
    text = repr(explanation)
    assert len(text) < 400 and "tensor(" not in text
    assert f"sufficient={explanation.sufficient.size} features (certified)" in text
    assert repr(explanation.sufficient).startswith("CausalSet('sufficient', 1 features")


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_bin_with_hz_rank_and_sets(explanation, tmp_path):
    path = explanation.to_csv(str(tmp_path / "bins.csv"), SAMPLE_RATE)
    rows = _rows(path)
    assert list(rows[0]) == [
        "bin", "hz", "feature", "responsibility", "rank", "sufficient", "sufficient_necessary", "complete",
    ]
    assert len(rows) == SAMPLE_RATE // 2 + 1
    k = bin_of(440, SAMPLE_RATE)
    assert float(rows[k]["hz"]) == 440.0 and rows[k]["sufficient"] == "1"
    ranks = explanation.feature_ranks()
    assert [int(r["rank"]) for r in rows] == ranks.tolist()
    assert int(rows[int(explanation.ranking[0])]["rank"]) == 1
    for name, chosen in explanation.sets.items():
        assert sum(r[name] == "1" for r in rows) == chosen.n_bins
    resp = explanation.feature_responsibility
    assert float(rows[k]["responsibility"]) == pytest.approx(float(resp[k]), rel=1e-5)
    with pytest.raises(FileExistsError):
        explanation.to_csv(path, SAMPLE_RATE, overwrite=False)


def _clips(n):
    g = torch.Generator().manual_seed(11)
    return torch.stack([tone(440) + 0.5 * tone(1000 + 100 * i) + 0.05 * torch.randn(SAMPLE_RATE, generator=g) for i in range(n)])


def test_explanations_of_a_batch_rebuild_the_batch_spaces_waveforms_bit_for_bit(detector):
    clips = _clips(3)
    explanations = FreqReX(detector).explain(clips, max_queries=200, seed=SEED)
    # The batch's space, as explain builds it: each explanation's waveforms must be this space's.
    waves, _ = format_waveforms(clips)
    space = FeatureSpace(waves, format_baselines(None, waves))
    for example, expl in enumerate(explanations):
        assert torch.equal(expl.original_waveform(), space.mutants(example, torch.ones(1, space.n_features))[0][0])
        for name, chosen in expl.sets.items():
            keep = chosen.mask.float().view(1, -1)
            assert torch.equal(expl.waveform(name), space.mutants(example, keep)[0][0]), name
            assert torch.equal(expl.waveform(name, removed=True), space.mutants(example, 1 - keep)[0][0]), name


def test_an_explanation_keeps_only_its_own_examples_spectra(detector):
    clips = _clips(4)
    explanations = FreqReX(detector).explain(clips, max_queries=200, seed=SEED)
    for expl in explanations:
        own = expl._space
        assert own.batch_size == 1
        for part in own._inputs:
            for coefficients in (part.delta, part.base):
                assert coefficients.shape[0] == 1  # not the batch of 4
                assert coefficients.untyped_storage().nbytes() == coefficients.numel() * coefficients.element_size()


def test_saved_explanation_loads_with_masks_summary_and_a_clear_limit(explanation, tmp_path):
    explanation.sample_rate = SAMPLE_RATE
    path = explanation.save(str(tmp_path / "expl.pt"))
    raw = torch.load(path, weights_only=True)
    assert raw["schema"] == "captum_freqrex.explanation" and raw["schema_version"] == FILE_SCHEMA_VERSION
    loaded = Explanation.load(path)
    assert torch.equal(loaded.responsibility, explanation.responsibility.cpu())
    assert torch.equal(loaded.ranking, explanation.ranking.cpu())
    for name, chosen in explanation.sets.items():
        assert torch.equal(loaded.sets[name].mask, chosen.mask.cpu())
        assert loaded.sets[name].certificate == chosen.certificate
    drop = ("versions",)
    assert {k: v for k, v in loaded.summary().items() if k not in drop} == {
        k: v for k, v in explanation.summary().items() if k not in drop
    }
    assert not loaded.has_waveforms
    with pytest.raises(ValueError, match="loaded without its inputs.*inputs="):
        loaded.waveform("sufficient")
    loaded.to_csv(str(tmp_path / "loaded.csv"))
    assert _rows(tmp_path / "loaded.csv") == _rows(explanation.to_csv(str(tmp_path / "fresh.csv")))


def test_loaded_with_its_inputs_rebuilds_certified_waveforms(detector, explanation, tone_clip, tmp_path):
    path = explanation.save(str(tmp_path / "expl.pt"))
    loaded = Explanation.load(path, inputs=tone_clip)
    kept = loaded.waveform("sufficient")
    assert torch.allclose(kept, explanation.waveform("sufficient"), atol=1e-6)
    # The certificate holds on the rebuilt waveforms: query the model again.
    assert detector(kept.unsqueeze(0)).argmax(-1).item() == explanation.target
    removed = loaded.waveform("sufficient_necessary", removed=True)
    assert detector(removed.unsqueeze(0)).argmax(-1).item() == explanation.flip_class
    embedded = Explanation.load(explanation.save(str(tmp_path / "full.pt"), include_inputs=True))
    assert embedded.has_waveforms and torch.allclose(embedded.waveform("sufficient"), kept, atol=1e-6)
    with pytest.raises(ValueError, match="does not match the explained example"):
        Explanation.load(path, inputs=tone_clip[:, :100])


def test_a_loaded_explanation_rebuilds_waveforms_with_the_synthesis_it_was_made_with(detector, tone_clip, tmp_path):
    base = 0.1 * tone(2000).unsqueeze(0)
    expl = FreqReX(detector, synthesis="reference").explain(tone_clip, baselines=base, max_queries=200)[0]
    assert expl.settings["synthesis"] == "reference" and expl.summary()["settings"]["synthesis"] == "reference"
    loaded = Explanation.load(expl.save(str(tmp_path / "expl.pt"), include_inputs=True))
    assert loaded.settings["synthesis"] == "reference"
    # The plain formula, as the certificate was computed: X and Xb mixed by the set's keep-mask.
    keep = loaded.sufficient.mask.double()[loaded.layout.ids[0]]  # per bin
    X, Xb = torch.fft.rfft(tone_clip[0].double()), torch.fft.rfft(base[0].double())
    expected = torch.fft.irfft(keep * X + (1 - keep) * Xb, n=tone_clip.shape[-1]).float()
    torch.testing.assert_close(loaded.waveform("sufficient"), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded.waveform("sufficient"), expl.waveform("sufficient"), atol=1e-6, rtol=0)


def test_a_non_silent_baseline_must_come_with_the_inputs(detector, tone_clip, tmp_path):
    base = 0.1 * tone(2000).unsqueeze(0)
    expl = FreqReX(detector).explain(tone_clip, baselines=base, max_queries=200)[0]
    path = expl.save(str(tmp_path / "expl.pt"))
    with pytest.raises(ValueError, match="baseline was not silence"):
        Explanation.load(path, inputs=tone_clip)
    loaded = Explanation.load(path, inputs=tone_clip, baselines=base)
    assert torch.allclose(loaded.waveform("sufficient"), expl.waveform("sufficient"), atol=1e-6)


def test_load_refuses_other_files_and_newer_schemas(explanation, tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not an explanation saved by Explanation.save"):
        Explanation.load(str(other))
    record = torch.load(explanation.save(str(tmp_path / "e.pt")), weights_only=True)
    record["schema_version"] = FILE_SCHEMA_VERSION + 1
    torch.save(record, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="newer than this captum_freqrex reads"):
        Explanation.load(str(tmp_path / "newer.pt"))


def test_listening_copies_sit_beside_true_level_wavs(tmp_path):
    sf = pytest.importorskip("soundfile")
    from captum_freqrex.audio import LISTEN_PEAK_DBFS

    clip = (tone(440) + 1e-3 * tone(100)).unsqueeze(0)  # a quiet 100 Hz decides: a quiet sufficient set
    model = ToneDetector([100], threshold=5e-4)
    expl = FreqReX(model).explain(clip, max_queries=200)[0]
    written = expl.save_wavs(str(tmp_path), SAMPLE_RATE)
    true, _ = sf.read(written["sufficient"], dtype="float32")
    loud, rate = sf.read(written["sufficient_listen"], dtype="float32")
    assert written["sufficient_listen"].endswith("sufficient.listen.wav") and rate == SAMPLE_RATE
    assert sf.info(written["sufficient"]).subtype == "FLOAT" and sf.info(written["sufficient_listen"]).subtype == "PCM_16"
    expected = expl.waveform("sufficient")
    assert torch.allclose(torch.from_numpy(true), expected, atol=1e-7)  # the true level, untouched
    peak = 10 ** (LISTEN_PEAK_DBFS / 20)
    assert float(abs(loud).max()) == pytest.approx(peak, abs=1e-3)
    scale = peak / float(expected.abs().max())
    assert torch.allclose(torch.from_numpy(loud), expected * scale, atol=2 / 32768)  # same sound, louder
    assert float(expected.abs().max()) < 0.01  # the true-level file really is quiet
    assert set(written) >= {f"{n}{r}{copy}" for n in expl.sets for r in ("", "_removed") for copy in ("", "_listen")}


def test_a_shrunk_sufficient_set_reports_and_saves_its_shrink(detector, tone_clip, tmp_path):
    # A random ranking (seeded) puts 440 Hz deep in the ranking: a long prefix for the shrink to cut.
    attributions = torch.rand(1, tone_clip.shape[-1] // 2 + 1, generator=torch.Generator().manual_seed(5))
    expl = FreqReX(detector).explain(tone_clip, attributions=attributions, shrink=True, seed=SEED)[0]
    entry = expl.summary(SAMPLE_RATE)["sets"]["sufficient"]
    report = expl.sufficient.certificate.shrink
    assert report is not None and report.size < report.prefix_size
    assert entry["shrink"]["size"] == report.size == expl.sufficient.size
    assert entry["shrink"]["one_minimal"] == report.one_minimal
    assert 440.0 in entry["frequencies_hz"]
    assert expl.settings["shrink"] is True and "search" in expl.settings
    loaded = Explanation.load(expl.save(str(tmp_path / "e.pt")))
    assert loaded.sufficient.certificate == expl.sufficient.certificate


# ------------------------------------------------------------------ damaged files


def _set_index(key, index, value):
    def tamper(record):
        record[key][index] = value

    return tamper


def _in(path, value=None, delete=False):
    """Set (or delete) the entry at ``path`` (a tuple of keys) of the record."""

    def tamper(record):
        *parents, last = path
        for key in parents:
            record = record[key]
        if delete:
            del record[last]
        else:
            record[last] = value(record[last]) if callable(value) else value

    return tamper


#: (what is changed, the change, the field the message must name). The first seven load silently
#: without the checks; "missing ..." and the ids out of range failed with KeyError or IndexError.
TAMPERINGS = [
    ("target 99", _in(("target",), 99), "target is 99"),
    ("NaN responsibility", _set_index("feature_responsibility", 5, float("nan")), "feature_responsibility holds NaN"),
    ("ranking out of range", _set_index("ranking", 0, 10**6), "ranking is not an ordering"),
    ("7-entry mask", _in(("sets", "sufficient", "mask"), torch.ones(7, dtype=torch.bool)), r"sets.sufficient.mask has shape \(7,\)"),
    ("shapes (99,)", _in(("example_shapes",), [[99]]), r"feature_grids\[0\] is \[4001\], which does not fit example_shapes\[0\] = \[99\]"),
    ("schema_version -1", _in(("schema_version",), -1), "schema_version is -1"),
    ("bogus settings", _in(("settings",), "bogus"), "settings is str"),
    ("missing ranking", _in(("ranking",), delete=True), "ranking is missing"),
    ("missing sets", _in(("sets",), delete=True), "sets is missing"),
    ("missing complete set", _in(("sets", "complete"), delete=True), "sets.complete is missing"),
    ("missing kept verdict", _in(("sets", "sufficient", "certificate", "kept"), delete=True), "sets.sufficient.certificate.kept is missing"),
    ("missing stats", _in(("stats",), delete=True), "stats is missing"),
    ("missing original", _in(("original",), delete=True), "original is missing"),
    ("missing example_shapes", _in(("example_shapes",), delete=True), "example_shapes is missing"),
    ("missing feature_ids", _in(("feature_ids",), delete=True), "feature_ids is missing"),
    ("feature ids out of range", _in(("feature_ids",), [torch.arange(1, 4002)]), "feature_ids hold ids outside 0 to 4000"),
    ("feature ids of another grid", _in(("feature_ids",), [torch.arange(7)]), r"feature_ids\[0\] has shape \(7,\)"),
    ("grids (99,)", _in(("feature_grids",), [[99]]), r"feature_grids\[0\] is \[99\]"),
    ("two shapes, not a tuple", _in(("example_shapes",), [[8000], [8000]]), "example_shapes is"),
    ("ranking repeats a feature", _set_index("ranking", 1, 0), "ranking is not an ordering"),
    ("ranking too short", _in(("ranking",), lambda r: r[:-1]), r"ranking has shape \(4000,\)"),
    ("ranking of floats", _in(("ranking",), lambda r: r.double()), "ranking has dtype torch.float64"),
    ("schema_version text", _in(("schema_version",), "1"), "schema_version is '1'"),
    ("seed as text", _in(("settings", "seed"), "x"), r"settings\['seed'\] is 'x'"),
    ("a setting that is an object", _in(("settings", "decision"), {"a": 1}), r"settings\['decision'\] is \{'a': 1\}"),
    ("unknown synthesis", _in(("settings", "synthesis"), "fast"), r"settings\['synthesis'\] is 'fast'"),
    ("original without a verdict", _in(("original",), None), "original is not a model verdict"),
    ("original decides class 99", _in(("original", "decided"), 99), "original.decided is 99"),
    ("NaN confidence", _in(("original", "confidence"), float("nan")), "original.confidence is nan"),
    ("NaN class confidence", _set_index("class_confidences", 0, float("nan")), "class_confidences holds NaN"),
    ("stft without n_fft", _in(("domain",), {"name": "stft", "repr": "StftDomain()", "grid_ndim": 2}), "domain 'stft' cannot be rebuilt"),
    ("grid_ndim 3", _in(("domain", "grid_ndim"), 3), "domain.grid_ndim is 3"),
    ("n_bins off by one", _in(("sets", "sufficient", "n_bins"), lambda n: n + 1), "sets.sufficient.n_bins is"),
    ("certificate size off", _in(("sets", "sufficient", "certificate", "size"), lambda n: n + 1), "sets.sufficient.certificate.size is"),
    ("energy share 7", _in(("sets", "complete", "energy_share"), 7.0), "sets.complete.energy_share is 7.0"),
    ("bogus stats", _in(("stats",), {"bogus": 1}), "stats is not a query count"),
    ("negative queries", _in(("responsibility_queries",), -3), "responsibility_queries is -3"),
    ("stopped_by a number", _in(("stopped_by",), 5), "stopped_by is 5"),
    ("warnings as text", _in(("warnings",), "careful"), "warnings is not a list of text"),
    ("model_stable as text", _in(("model_stable",), "yes"), "model_stable is 'yes'"),
    ("is_tuple as text", _in(("is_tuple",), "no"), "is_tuple is 'no'"),
    ("negative sample rate", _in(("sample_rate",), -5), "sample_rate is -5"),
    ("class names as text", _in(("class_names",), "en"), "class_names is 'en'"),
    ("a class name that is a number", _in(("class_names",), ["en", 2]), r"class_names is \['en', 2\]"),
    ("inputs of another shape", _in(("inputs",), [torch.zeros(99)]), r"inputs\[0\] has shape \(99,\), expected \(8000,\)"),
    ("NaN inputs", _in(("inputs",), [torch.full((8000,), float("nan"))]), r"inputs\[0\] holds NaN"),
    ("inputs without baselines", _in(("baselines",), None), "inputs, baselines and baseline_is_zero are not stored together"),
    ("a bogus shrink report", _in(("sets", "sufficient", "certificate", "shrink"), {"size": 1}), "sets.sufficient.certificate.shrink is not"),
]


@pytest.fixture
def saved_record(explanation, tmp_path):
    explanation.sample_rate = SAMPLE_RATE
    return torch.load(explanation.save(str(tmp_path / "whole.pt"), include_inputs=True), weights_only=True)


@pytest.mark.parametrize("tamper, field", [t[1:] for t in TAMPERINGS], ids=[t[0] for t in TAMPERINGS])
def test_a_tampered_file_is_refused_naming_the_field(saved_record, tmp_path, tamper, field):
    tamper(saved_record)
    torch.save(saved_record, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match=rf"^this saved explanation is damaged: (?:{field})"):
        Explanation.load(str(tmp_path / "tampered.pt"))


def test_the_untampered_record_still_loads_identically(explanation, saved_record, tmp_path):
    torch.save(saved_record, tmp_path / "resaved.pt")
    loaded = Explanation.load(str(tmp_path / "resaved.pt"))
    before = Explanation.load(str(tmp_path / "whole.pt"))  # the file as save wrote it
    assert loaded.summary() == before.summary() == {**explanation.summary(), "versions": loaded.summary()["versions"]}
    for name in ("sufficient", "sufficient_necessary", "complete"):
        for removed in (False, True):
            assert torch.equal(loaded.waveform(name, removed), before.waveform(name, removed))
            # Rebuilt from the stored (resynthesised) input: equal up to float rounding, a few float32
            # ulps of the clip's peak (1.07e-6 seen on one CPU, with MKL's own FFT paths).
            torch.testing.assert_close(loaded.waveform(name, removed), explanation.waveform(name, removed), atol=1e-5, rtol=0)


def _tuple_explanation(detector, clip):
    def model(a, b):
        return detector(a + b)

    return FreqReX(model).explain((clip, 0.5 * clip), max_queries=200, seed=SEED)[0]


@pytest.mark.parametrize(
    "kind",
    ["bands", "stft", "per-channel", "tuple", "shrunk from given attributions", "non-silent baseline"],
)
def test_every_kind_of_explanation_passes_the_checks_on_load(detector, tone_clip, tmp_path, kind):
    n_bins = tone_clip.shape[-1] // 2 + 1
    if kind == "bands":
        expl = FreqReX(detector).explain(tone_clip, feature_mask=linear_bands(tone_clip.shape[-1], 200), max_queries=200, seed=SEED)[0]
    elif kind == "stft":
        expl = FreqReX(detector, domain=StftDomain(256)).explain(tone_clip, max_queries=200, seed=SEED)[0]
    elif kind == "per-channel":
        stereo = torch.stack([tone_clip, 0.5 * tone_clip], dim=1)
        expl = FreqReX(lambda x: detector(x.mean(1))).explain(stereo, per_channel=True, max_queries=200, seed=SEED)[0]
    elif kind == "tuple":
        expl = _tuple_explanation(detector, tone_clip)
    elif kind == "non-silent baseline":
        expl = FreqReX(detector).explain(tone_clip, baselines=0.1 * tone(2000).unsqueeze(0), max_queries=200, seed=SEED)[0]
    else:  # signed scores: a ranking from another method's attributions may be negative
        attributions = torch.randn(1, n_bins, generator=torch.Generator().manual_seed(5))
        expl = FreqReX(detector).explain(tone_clip, attributions=attributions, shrink=True, seed=SEED)[0]
    loaded = Explanation.load(expl.save(str(tmp_path / "e.pt"), include_inputs=True))
    assert loaded.summary(SAMPLE_RATE) == {**expl.summary(SAMPLE_RATE), "versions": loaded.summary()["versions"]}
    assert torch.equal(loaded.ranking, expl.ranking) and torch.equal(loaded.feature_responsibility, expl.feature_responsibility)


def test_repr_names_a_flagged_set_beside_its_certificate(explanation):
    """A certified set that is flagged (here: made to cover every feature) says both in the one-line
    repr, so "warnings=0" beside it does not read as "nothing to look at"."""
    whole = dataclasses.replace(explanation.sufficient, mask=torch.ones_like(explanation.sufficient.mask))
    whole.certificate = dataclasses.replace(whole.certificate, size=int(whole.mask.numel()))
    assert whole.flags and whole.status == "certified, flagged: most_of_spectrum"
    assert "flagged: most_of_spectrum" in repr(whole)
    assert explanation.sufficient.status == "certified"


def test_print_describes_each_set_its_frequencies_and_the_cost(explanation):
    """``print(explanation)`` is :meth:`describe`: the decision, each set with its size, share,
    loudness and certificate, where its frequencies are (Hz once the rate is known), the class the
    removal flips to, and the queries; class names where given."""
    text = str(explanation)
    assert text == explanation.describe()
    lines = text.splitlines()
    confidence = explanation.original.confidence
    assert lines[0] == f"decision: class 1 (confidence {confidence:.2f})"
    sufficient = next(line for line in lines if line.strip().startswith("sufficient "))
    assert "1 feature (1 bin)" in sufficient and sufficient.endswith("certified")
    assert lines[lines.index(sufficient) + 1].strip() == f"at {bin_of(440, SAMPLE_RATE)} (rfft bins)"
    necessary = next(line for line in lines if "sufficient & necessary" in line)
    assert necessary.endswith(f"removing it flips to class {explanation.flip_class}")
    stats = explanation.stats
    assert lines[-1].strip().startswith(f"{stats.queries} model queries in {stats.forward_calls} calls")
    in_hz = explanation.describe(sample_rate=SAMPLE_RATE, class_names=["quiet", "A4"])
    assert in_hz.splitlines()[0] == f"decision: class 1 'A4' (confidence {confidence:.2f})"
    assert "at 440 Hz" in in_hz and "(rfft bins)" not in in_hz.split("complete")[0]


def test_describe_names_an_explained_target_that_is_not_the_decision_and_its_warning(detector, tone_clip):
    explanation = FreqReX(detector).explain(tone_clip, target=0, max_queries=200, seed=SEED)[0]
    text = explanation.describe(class_names=["quiet", "A4"])
    header, *rest = text.splitlines()
    assert header.startswith("decision: class 1 'A4' (confidence ") and "; explained target class 0 'quiet'" in header
    warnings = [line for line in rest if line.startswith("  warning: ")]
    assert len(warnings) == len(explanation.warnings) >= 1
    assert "class 0 'quiet'" in warnings[0]


@pytest.mark.parametrize("truncated, ending", [
    (False, "(every one in summary())"),
    (True, "(the 3 most responsible in summary(); to_csv() writes all)"),
])
def test_a_large_sets_frequency_line_says_whether_every_frequency_is_listed(truncated, ending):
    from captum_freqrex._explanation.text import LIBRARY_LISTING, frequency_text

    listed = [440.0, 880.0, 1320.0] if truncated else [110.0 * k for k in range(1, 13)]
    entry = {"features": 12, "n_frequencies": 12, "frequencies_hz": listed, "frequency_span_hz": [110.0, 1320.0],
             "frequencies_truncated": truncated}
    assert frequency_text(entry, listing=LIBRARY_LISTING) == f"12 frequencies from 110 to 1320 Hz {ending}"
