"""Explaining whole data sets: sources, the resumable SQLite store, aggregates, Ray, the CLI.

Known-answer tone classifiers on small synthetic data sets written as WAV files: class ``a440``
clips hold a 440 Hz tone plus a 50 Hz hum, class ``b1000`` clips a 1 kHz tone. The honest model
decides on the tones, the "hum" model decides ``a440`` on the 50 Hz hum: the causes, and so the
bands each class relies on, are known by construction.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
from typing import Optional

import pytest
import soundfile as sf
import torch

from captum_freqrex import FreqReX
from captum_freqrex.cli import main
from captum_freqrex._utils.csv_cells import FORMULA_STARTS
from captum_freqrex.corpus import (
    DamagedStoreError,
    DatasetChangedError,
    ModelFailedError,
    ResultStore,
    SourceError,
    StoreError,
    StoreMismatchError,
    aggregate,
    explain_dataset,
    write_aggregates,
)
from captum_freqrex.metrics import perturbation_success_rate
from known_models import SAMPLE_RATE, ToneClassifier, ToneDetector, tone

SECONDS = 0.5
N = int(SECONDS * SAMPLE_RATE)
NAMES = ["a440", "b1000", "none"]
QUERIES = 300  # enough for these tones; keeps the file fast
#: Columns that measure time, which no two runs share.
TIMING = {"seconds", "model_seconds"}


class HumModel(ToneClassifier):
    """Decides ``a440`` on the 50 Hz hum that rides along with the 440 Hz clips: a spurious cue."""

    def __init__(self) -> None:
        super().__init__([50, 1000])


def tone_model() -> ToneClassifier:
    """``--model test_corpus:tone_model`` for the CLI: the honest model with its rate and names."""
    model = ToneClassifier([440, 1000])
    model.sample_rate, model.class_names = SAMPLE_RATE, list(NAMES)
    return model


class Probe(torch.nn.Module):
    """The honest model, counting its calls; presses Ctrl-C when first asked about ``victim`` (unmasked)."""

    def __init__(self, victim: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.inner, self.victim, self.calls = ToneClassifier([440, 1000]), victim, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.victim is not None and any(torch.allclose(row, self.victim, atol=1e-6) for row in x):
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner(x)


#: Spreadsheet formulas (CWE-1236) as class names: the 440 Hz class and the 1 kHz class.
PAYLOAD_NAMES = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "none"]


def payload_model() -> ToneClassifier:
    """``--model test_corpus:payload_model``: the honest model whose class names are formulas."""
    model = ToneClassifier([440, 1000])
    model.sample_rate, model.class_names = SAMPLE_RATE, list(PAYLOAD_NAMES)
    return model


def same_tone_model() -> ToneClassifier:
    """``--transfer-to test_corpus:same_tone_model``: keyed on the same tones, with another floor."""
    model = ToneClassifier([440, 1000], floor=0.02)
    model.sample_rate, model.class_names = SAMPLE_RATE, list(NAMES)
    return model


def fast_model() -> ToneClassifier:
    """``--transfer-to test_corpus:fast_model``: a target at another rate, refused."""
    model = ToneClassifier([440, 1000])
    model.sample_rate = 2 * SAMPLE_RATE
    return model


def targets() -> dict:
    """Transfer targets with known answers: keyed on the same tones (accepts every signal), on the
    other class's tone (accepts none), and on the 50 Hz hum and 1 kHz (decides ``a440`` on the
    full a440 clips by their hum, so it agrees there, yet accepts none of their 440 Hz signals)."""
    return {"same": ToneClassifier([440, 1000], floor=0.02), "swapped": ToneClassifier([1000, 440]), "hum": HumModel()}


def interrupting_model() -> Probe:
    """``--model test_corpus:interrupting_model``: Ctrl-C on the first clip."""
    model = Probe(_clip("a440", 0))
    model.sample_rate, model.class_names = SAMPLE_RATE, list(NAMES)
    return model


class SilenceModel(ToneClassifier):
    """Decides ``a440`` on the 440 Hz tone and on silence too: the silent baseline alone decides
    every ``a440`` clip (the empty set suffices), while ``b1000`` clips still need their tone."""

    def __init__(self) -> None:
        super().__init__([440, 1000])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.detector.energies(x)
        quiet = (e.sum(1, keepdim=True) < self.floor).to(e.dtype)
        a440 = e[:, :1] + 2 * self.floor * quiet
        return 10.0 * torch.cat([a440, e[:, 1:], torch.full_like(e[:, :1], self.floor)], dim=1)


def silence_model() -> SilenceModel:
    """``--model test_corpus:silence_model`` for the CLI."""
    model = SilenceModel()
    model.sample_rate, model.class_names = SAMPLE_RATE, list(NAMES)
    return model


class HumPairModel(torch.nn.Module):
    """Decides ``a440`` when the 440 Hz tone and the 50 Hz hum are both present or both absent:
    silence keeps every ``a440`` decision, yet removing the tone or the hum alone changes it (to
    "none"); ``b1000`` clips need their 1 kHz tone (silence decides ``a440`` for them)."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440, 50, 1000], 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.detector.energies(x)
        agree = 40.0 * (e[:, 0] - 0.25) * (e[:, 1] - 0.15)
        return torch.stack([agree, 10.0 * e[:, 2] - 2.0, torch.zeros_like(agree)], dim=1)


class DriftingModel(ToneClassifier):
    """The honest model whose logits all rise a little with every call: the same decisions, but
    outputs that change between calls (like dropout left on), so nothing it says can be certified."""

    def __init__(self) -> None:
        super().__init__([440, 1000])
        self.forward_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return super().forward(x) + 0.05 * self.forward_calls


class ProbabilityModel(ToneClassifier):
    """The honest model returning probabilities (its logits' softmax) instead of logits."""

    def __init__(self) -> None:
        super().__init__([440, 1000])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(dim=-1)


def _clip(label: str, index: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 * len(label) + index)
    noise = 0.01 * torch.randn(N, generator=g)
    if label == "a440":
        return 0.5 * tone(440, SECONDS) + 0.3 * tone(50, SECONDS) + noise
    return 0.5 * tone(1000, SECONDS) + noise


def write_dataset(root, per_class: int = 2) -> list:
    """A folder per class of float WAVs; returns the relative paths in sorted order."""
    paths = []
    for label in ("a440", "b1000"):
        os.makedirs(root / label, exist_ok=True)
        for i in range(per_class):
            sf.write(str(root / label / f"{i}.wav"), _clip(label, i).numpy(), SAMPLE_RATE, subtype="FLOAT")
            paths.append(f"{label}/{i}.wav")
    return paths


def run(model, source, store, **kwargs):
    """explain_dataset on the test's model, in this process unless the test names ``workers``."""
    kwargs.setdefault("max_queries", QUERIES)
    kwargs.setdefault("workers", 1 if kwargs.get("backend", "local") == "local" else None)
    return explain_dataset(model, source, store, sample_rate=SAMPLE_RATE, class_names=NAMES, **kwargs)


def results(store, ignore=("source", "position", "fingerprint")) -> dict:
    """Every per-clip table of a store, without timing columns (and ``ignore``), for comparisons."""
    with ResultStore(str(store), readonly=True) as opened:
        out = {}
        for table in ("clips", "sets", "set_bins", "band_responsibility", "flips", "transfers"):
            out[table] = [
                {k: v for k, v in row.items() if k not in TIMING and k not in ignore} for row in opened.rows(table)
            ]
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    paths = write_dataset(root)
    return root, paths


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One clip per class, for the quick runs of misbehaving models."""
    root = tmp_path_factory.mktemp("small")
    write_dataset(root, per_class=1)
    return root


SMALL = {"max_queries": QUERIES, "ks": (1,)}  # one flip size: quicker


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run of the honest model over the folder, and its call count."""
    root, _ = data
    store = tmp_path_factory.mktemp("reference") / "results.sqlite"
    model = Probe()
    summary = run(model, root, store)
    return store, summary, model.calls


# ----------------------------------------------------------------------------- known answers


def test_store_holds_sets_at_the_tones_and_labels(reference, data):
    store, summary, _ = reference
    assert (summary.explained, summary.skipped, summary.failed, summary.resumed) == (4, 0, 0, False)
    tables = results(store, ignore=())
    clips = {row["clip_id"]: row for row in tables["clips"]}
    assert list(clips) == data[1]
    assert {c: row["label"] for c, row in clips.items()} == {p: p.split("/")[0] for p in data[1]}
    assert all(row["decision_name"] == row["label"] and row["status"] == "explained" for row in clips.values())
    sufficient = [row for row in tables["set_bins"] if row["kind"] == "sufficient"]
    assert {row["clip_id"]: (row["hz_low"], row["hz_high"]) for row in sufficient} == {
        p: (440.0, 440.0) if p.startswith("a440") else (1000.0, 1000.0) for p in data[1]
    }
    kinds = {(row["clip_id"], row["kind"]) for row in tables["sets"]}
    assert kinds == {(p, k) for p in data[1] for k in ("sufficient", "sufficient_necessary", "complete")}
    assert all(row["certified"] for row in tables["sets"])
    flips_to = {row["clip_id"]: row["flips_to"] for row in tables["sets"] if row["kind"] == "sufficient_necessary"}
    assert set(flips_to.values()) == {2}  # removing the tone leaves "none"
    with ResultStore(str(store), readonly=True) as opened:
        run_row = opened.run_record()
        bands = opened.rows("bands")
    assert run_row["settings"]["seed"] == 0 and run_row["settings"]["max_queries"] == QUERIES
    assert run_row["model"]["class_names"] == NAMES and run_row["versions"]["torch"] == torch.__version__
    assert bands[0]["hz_low"] == 0.0 and bands[-1]["hz_high"] == SAMPLE_RATE / 2
    for clip_id in clips:
        shares = [r["responsibility"] for r in tables["band_responsibility"] if r["clip_id"] == clip_id]
        assert len(shares) == len(bands) and sum(shares) == pytest.approx(1.0)


def test_aggregates_put_each_class_at_its_tone(reference):
    store, _, _ = reference
    agg = aggregate(store)
    assert [c.name for c in agg.classes] == ["a440", "b1000"]
    for entry, hz in zip(agg.classes, (440, 1000)):
        low, high = entry.top_band_hz
        assert low <= hz < high and not entry.low_frequency_cue
        assert entry.clips == 2 and entry.agreement == 1.0 and entry.flip_rate == {1: 1.0, 5: 1.0}
    by_label = aggregate(store, by="label")
    assert [c.name for c in by_label.classes] == ["a440", "b1000"]
    assert "a440" in agg.table() and "flip@5" in agg.table()



def test_aggregates_convert_to_a_dataframe_row_for_row(reference):
    store, _, _ = reference
    agg = aggregate(store)
    frame = agg.to_pandas()
    rows = agg.csv_rows()
    assert list(frame.columns) == list(rows[0]) and len(frame) == len(rows) == 3
    assert frame["class"].tolist() == ["a440", "b1000", "(all)"]
    assert frame["flip@1"].tolist() == [row["flip@1"] for row in rows]

def test_a_hum_classifier_is_flagged_for_its_low_frequency_cue(data, tmp_path):
    root, _ = data
    run(HumModel(), root, tmp_path / "hum.sqlite")
    agg = aggregate(tmp_path / "hum.sqlite")
    hum, tone_class = agg["a440"], agg["b1000"]
    low, high = hum.top_band_hz
    assert low <= 50 < high and hum.low_frequency_cue and hum.low_frequency_share > 0.9
    assert not tone_class.low_frequency_cue and tone_class.low_frequency_share == 0.0
    assert "44-56 Hz  (below 100 Hz: the sound's own, or hum or rumble? listen to its sets)" in agg.table()


def test_flips_agree_with_perturbation_success_rate(reference, data):
    store, _, _ = reference
    root, paths = data
    model = ToneClassifier([440, 1000])
    waves = torch.stack([torch.from_numpy(sf.read(str(root / p), dtype="float32")[0]) for p in paths])
    expls = FreqReX(model).explain(waves, seed=0, max_queries=QUERIES)
    attributions = torch.stack([e.responsibility for e in expls])
    direct = perturbation_success_rate(model, waves, attributions, target=[e.target for e in expls], k=[1, 5])
    stored = {(row["clip_id"], row["k"]): row for row in results(store)["flips"]}
    for i, path in enumerate(paths):
        for j, k in enumerate((1, 5)):
            row = stored[(path, k)]
            assert bool(row["flipped"]) == bool(direct.flipped[i, j])
            assert row["snr_db"] == pytest.approx(float(direct.snr_db[i, j]))
            assert row["new_class"] == int(direct.decided[i, j])
    agg = aggregate(store)
    assert agg.overall.flip_rate == {1: float(direct.success_rate[0]), 5: float(direct.success_rate[1])}


@pytest.fixture(scope="module")
def transferred(data, tmp_path_factory):
    """The reference run with transfer targets."""
    root, _ = data
    store = tmp_path_factory.mktemp("transferred") / "results.sqlite"
    run(Probe(), root, store, transfer_to=targets())
    return store


def test_transfer_targets_decide_by_their_tones(transferred, reference, data):
    _, paths = data
    tables = results(transferred)
    rows = {(row["clip_id"], row["model"]): row for row in tables.pop("transfers")}
    assert set(rows) == {(p, m) for p in paths for m in ("same", "swapped", "hum")}
    for path in paths:
        target = NAMES.index(path.split("/")[0])
        same, swapped, hum = (rows[(path, m)] for m in ("same", "swapped", "hum"))
        assert same["accepted"] and same["full_agrees"] and same["signal_class"] == same["full_class"] == target
        assert not swapped["accepted"] and not swapped["full_agrees"]
        assert swapped["signal_class"] == swapped["full_class"] == 1 - target  # the other class's tone
        assert swapped["signal_class_name"] == NAMES[1 - target]
        if target == 0:  # the hum decides a440 on the full clip; the 440 Hz signal has no hum
            assert hum["full_agrees"] and not hum["accepted"] and hum["signal_class_name"] == "none"
        else:
            assert hum["full_agrees"] and hum["accepted"]
    # Transfer adds its rows and changes none of the others.
    assert tables == {k: v for k, v in results(reference[0]).items() if k != "transfers"}
    with ResultStore(str(transferred), readonly=True) as opened:
        recorded = opened.run_record()["settings"]["transfer_to"]
    assert [t["name"] for t in recorded] == ["same", "swapped", "hum"]
    assert recorded[0]["type"].endswith("ToneClassifier") and recorded[2]["type"].endswith("HumModel")


def test_aggregates_hold_the_acceptance_matrix(transferred, tmp_path):
    agg = aggregate(transferred)
    result = agg.transfer
    assert result is not None and result.model_names == ("same", "swapped", "hum")
    assert result.class_names == ("a440", "b1000") and result.counts.tolist() == [2, 2]
    assert result.rates.tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
    assert result.agree_counts is not None and result.agree_counts.tolist() == [[2, 2], [0, 0], [2, 2]]
    table = agg.transfer_table()
    assert table is not None
    lines = table.splitlines()
    assert lines[0].split() == ["transfer", "to", "a440", "b1000", "(all)"]
    assert lines[1].split() == ["same:", "signal", "1.00", "(2/2)", "1.00", "(2/2)", "1.00", "(4/4)"]
    assert lines[5].split() == ["hum:", "signal", "0.00", "(0/2)", "1.00", "(2/2)", "0.50", "(2/4)"]
    assert lines[6].split() == ["hum:", "full", "clip", "1.00", "(2/2)", "1.00", "(2/2)", "1.00", "(4/4)"]
    assert aggregate(transferred, by="label").transfer.rates.tolist() == result.rates.tolist()
    json_path, csv_path = tmp_path / "a.json", tmp_path / "a.csv"
    write_aggregates(transferred, str(json_path), str(csv_path))
    payload = json.loads(json_path.read_text())["by_target"]["transfer"]
    assert payload["models"] == ["same", "swapped", "hum"] and payload["acceptance"] == [[1, 1], [0, 0], [0, 1]]
    assert payload["full_clip_agreement"][2] == [1, 1]
    assert {"model": "hum", "class": "all", "clips": 4, "accepted": 2, "rate": 0.5, "full_clip_agrees": 4,
            "accepted_where_full_agrees": 2} in payload["rows"]
    with open(csv_path, newline="") as handle:
        csv_rows = {(r["grouping"], r["class"]): r for r in csv.DictReader(handle)}
    assert csv_rows[("target", "a440")]["accepted@hum"] == "0.0" and csv_rows[("target", "a440")]["full_agrees@hum"] == "1.0"
    assert csv_rows[("target", "(all)")]["accepted@hum"] == "0.5" and csv_rows[("label", "b1000")]["transfer_clips"] == "2"
    assert aggregate(transferred).transfer_table() == table
    assert aggregate(str(transferred)).to_dict()["transfer"]["classes"] == ["a440", "b1000"]


def test_a_run_without_targets_has_no_matrix(reference):
    agg = aggregate(reference[0])
    assert agg.transfer is None and agg.transfer_table() is None and agg.to_dict()["transfer"] is None
    assert not any(key.startswith("accepted@") for key in agg.csv_rows()[0])


# ----------------------------------------------------------------------------- trust


def test_the_honest_model_is_trusted_and_counted_everywhere(reference):
    agg = aggregate(reference[0])
    for entry in [*agg.classes, agg.overall]:
        assert entry.trusted == entry.clips == entry.responsibility_clips
        assert set(entry.untrusted.values()) == {0} and set(entry.left_out.values()) == {0}
        assert entry.flip_rate_trusted == entry.flip_rate
    assert agg.notice() is None and agg.table().splitlines()[0].split()[:3] == ["class", "clips", "trusted"]


def test_a_drifting_model_is_counted_untrusted_not_averaged(small, tmp_path):
    store = tmp_path / "drift.sqlite"
    run(DriftingModel(), small, store, **SMALL)
    clips = results(store)["clips"]
    assert [(c["stable"], c["certified"], c["target_is_decision"]) for c in clips] == [(0, 0, 1)] * 2
    agg = aggregate(store)
    for entry in [*agg.classes, agg.overall]:
        assert entry.trusted == 0 and entry.untrusted["unstable"] == entry.clips
        assert entry.responsibility_clips == 0 and entry.left_out["unstable"] == entry.clips
        assert entry.band_responsibility == [None] * len(agg.bands) and entry.top_bands == []
        assert entry.low_frequency_share is None and not entry.low_frequency_cue
        assert entry.flip_rate[1] is not None and entry.flip_rate_trusted == {1: None}
    notice = agg.notice()
    assert notice is not None and "leave out 2 of 2 clips" in notice and "flip rates count 2 untrusted" in notice
    assert "changed between calls on 2 clips: make it deterministic (model.eval()" in notice
    row = {r["class"]: r for r in agg.csv_rows()}["(all)"]
    assert row["untrusted:unstable"] == 2 and row["trusted"] == 0 and row["flip_trusted@1"] is None


def test_a_model_deciding_on_silence_is_reported_not_averaged_as_zeros(small, tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["explain-dataset", str(small), "--model", "test_corpus:silence_model", "--out", str(out),
            "--max-queries", str(SMALL["max_queries"]), "--ks", "1", "--workers", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    agg = aggregate(out / "results.sqlite")
    silent, tone_class = agg["a440"], agg["b1000"]
    assert silent.untrusted["baseline_decides"] == 1 and silent.trusted == 0
    assert silent.left_out["baseline_decides"] == 1 and silent.responsibility_clips == 0
    assert silent.band_responsibility == [None] * len(agg.bands) and silent.top_bands == []
    assert not silent.low_frequency_cue and silent.low_frequency_share is None
    assert tone_class.trusted == tone_class.responsibility_clips == 1
    # The overall figures are the 1 kHz clip's alone, not halved by the silent clip.
    assert agg.overall.responsibility_clips == 1 and agg.overall.trusted == 1
    assert sum(agg.overall.band_responsibility) == pytest.approx(1.0)
    assert agg.overall.band_responsibility == tone_class.band_responsibility
    low, high = agg.overall.top_band_hz
    assert low <= 1000 < high and not agg.overall.low_frequency_cue
    header = captured.out.splitlines()[0].split()
    assert header[:3] == ["class", "clips", "trusted"]
    assert [line.split()[:3] for line in captured.out.splitlines()[1:3]] == [["a440", "1", "0"], ["b1000", "1", "1"]]
    warning = [line for line in captured.err.splitlines() if line.startswith("freqrex: warning:")]
    assert len(warning) == 1
    assert "band responsibility and top bands leave out 1 of 2 clips: the baseline alone decides 1 clip: " \
           "explain against another baseline (--baseline noise" in warning[0]
    payload = json.loads((out / "aggregates.json").read_text())["by_target"]
    assert payload["notice"] == agg.notice() and payload["classes"][0]["left_out"]["baseline_decides"] == 1


def test_necessary_mode_counts_a_clip_whose_baseline_keeps_the_decision_when_removals_change_it(small, tmp_path):
    # Sufficient mode: the empty set suffices for the a440 clip, so its responsibility says nothing.
    run(HumPairModel(), small, tmp_path / "sufficient.sqlite", **SMALL)
    sufficient = aggregate(tmp_path / "sufficient.sqlite")
    assert sufficient["a440"].left_out["baseline_decides"] == 1 and sufficient["a440"].responsibility_clips == 0
    # Necessary mode: silence still keeps a440, but removing the tone or the hum changes it, and
    # the band figures count that clip, at those frequencies.
    store = tmp_path / "necessary.sqlite"
    run(HumPairModel(), small, store, mode="necessary", search="band_screening", **SMALL)
    clip = {c["target_name"]: c for c in results(store)["clips"]}["a440"]
    assert clip["baseline_decides"] and clip["stable"] and clip["target_is_decision"]
    necessary = aggregate(store)
    pair = necessary["a440"]
    assert pair.left_out["baseline_decides"] == 0 and pair.responsibility_clips == 1
    low, high = pair.top_band_hz
    assert low <= 440 < high or low <= 50 < high
    x = _clip("a440", 0).unsqueeze(0)
    with pytest.warns(UserWarning, match="found removals of some frequencies that change it"):
        resp = FreqReX(HumPairModel(), search="band_screening").attribute(x, mode="necessary", max_queries=QUERIES)
    assert bool(perturbation_success_rate(HumPairModel(), x, resp, k=1).flipped[0])
    # A monotone model with nothing to find keeps the baseline as the reason, not "raise the budget".
    run(silence_model(), small, tmp_path / "silent.sqlite", mode="necessary", search="band_screening", **SMALL)
    silent = aggregate(tmp_path / "silent.sqlite")["a440"]
    assert silent.left_out["baseline_decides"] == 1 and silent.left_out["no_cause"] == 0


def test_a_necessary_mode_run_stores_each_clips_answer_with_its_snr(small, tmp_path):
    """The answer of explain(mode="necessary") is a ``sets`` row of kind ``manipulation`` (never
    kept alone: no kept class; removed, it flips the decision) with its SNR and its ``set_bins``."""
    store = tmp_path / "necessary.sqlite"
    run(ToneClassifier([440, 1000]), small, store, mode="necessary", **SMALL)
    tables = results(store)
    answers = {row["clip_id"]: row for row in tables["sets"] if row["kind"] == "manipulation"}
    explained = [c for c in tables["clips"] if c["status"] == "explained"]
    assert explained and set(answers) == {c["clip_id"] for c in explained}
    for row in answers.values():
        assert row["certified"] and row["kept_class"] is None and row["snr_db"] is not None
        assert row["flips_to"] != {c["clip_id"]: c for c in explained}[row["clip_id"]]["target"]
    assert all(row["snr_db"] is None for row in tables["sets"] if row["kind"] != "manipulation")
    bins = [row for row in tables["set_bins"] if row["kind"] == "manipulation"]
    assert len(bins) == sum(row["size"] for row in answers.values())
    # The aggregates count the certified answers per class, with their median size and SNR.
    summary = aggregate(store)
    for entry in [*summary.classes, summary.overall]:
        mine = [answers[c["clip_id"]] for c in explained
                if entry is summary.overall or c["target_name"] == entry.name]
        assert entry.answers == len(mine)
        assert entry.median_answer_snr_db == pytest.approx(statistics.median(r["snr_db"] for r in mine))
    assert "answer SNR dB" in summary.table().splitlines()[0]
    assert summary.csv_rows()[0]["answers"] == summary.classes[0].answers
    sufficient = tmp_path / "sufficient.sqlite"
    run(ToneClassifier([440, 1000]), small, sufficient, **SMALL)
    plain = aggregate(sufficient)
    assert plain.overall.answers is None and "answers" not in plain.table() and "answers" not in plain.csv_rows()[0]


def test_a_store_of_schema_1_gains_the_answers_snr_column_when_opened_for_writing(small, tmp_path):
    store = tmp_path / "old.sqlite"
    run(ToneClassifier([440, 1000]), small, store, **SMALL)
    with sqlite3.connect(store) as connection:  # as the first schema wrote it
        connection.execute("ALTER TABLE sets DROP COLUMN snr_db")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    connection.close()
    with ResultStore(str(store), readonly=True) as opened:  # read as it is
        assert "snr_db" not in opened.rows("sets")[0]
    with ResultStore(str(store)) as opened:
        assert opened.rows("sets")[0]["snr_db"] is None
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    connection.close()


def test_probabilities_and_logits_give_the_same_aggregates(small, tmp_path):
    run(ToneClassifier([440, 1000]), small, tmp_path / "logits.sqlite", **SMALL)
    run(ProbabilityModel(), small, tmp_path / "probs.sqlite", **SMALL)
    logits, probs = (aggregate(tmp_path / f"{name}.sqlite") for name in ("logits", "probs"))
    for a, b in zip([*logits.classes, logits.overall], [*probs.classes, probs.overall]):
        assert (a.name, a.clips, a.trusted, a.untrusted, a.left_out) == (b.name, b.clips, b.trusted, b.untrusted, b.left_out)
        assert a.trusted == a.clips and a.flip_rate == b.flip_rate
        assert a.band_responsibility == pytest.approx(b.band_responsibility)
        assert [t["band"] for t in a.top_bands] == [t["band"] for t in b.top_bands]


# ----------------------------------------------------------------------------- resuming


class LoudnessLimitedModel(ToneClassifier):
    """The honest model, which raises on any input peaking above ``limit`` (a model that refuses
    clipped audio): one clip of a data set it cannot explain."""

    def __init__(self, limit: float = 1.5) -> None:
        super().__init__([440, 1000])
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().amax()) > self.limit:
            raise ValueError(f"input peaks above {self.limit}: clipped audio is not supported")
        return super().forward(x)


def test_a_clip_the_model_fails_on_is_stored_as_an_error_and_the_others_are_explained(reference, data, tmp_path):
    ref_store, _, _ = reference
    root, paths = data
    folder = tmp_path / "with_loud"
    shutil.copytree(root, folder)
    sf.write(str(folder / "b1000" / "9.wav"), (4.0 * _clip("b1000", 9)).numpy(), SAMPLE_RATE, subtype="FLOAT")
    store = tmp_path / "results.sqlite"
    summary = run(LoudnessLimitedModel(), folder, store, batch_size=2)  # the loud clip shares a batch
    assert (summary.explained, summary.failed) == (4, 1)
    with ResultStore(str(store), readonly=True) as opened:
        failed = [row for row in opened.rows("clips") if row["status"] == "error"]
    assert [row["clip_id"] for row in failed] == ["b1000/9.wav"]
    assert failed[0]["error"] == ("explaining it failed: ValueError: input peaks above 1.5: clipped audio is not "
                                  "supported")
    # The other clips' rows are those of the honest model's run, clip for clip.
    explained = {table: [r for r in rows if r.get("clip_id") != "b1000/9.wav"] for table, rows in results(store).items()}
    assert explained == results(ref_store)
    # The failure is retried by the next run (and fails again), nothing else is redone.
    again = run(LoudnessLimitedModel(), folder, store, batch_size=2)
    assert (again.explained, again.skipped, again.failed) == (0, 4, 1)


def test_a_model_that_fails_on_every_clip_stops_the_run_with_its_error(data, tmp_path, monkeypatch):
    import captum_freqrex.corpus._run as corpus_run

    root, _ = data
    monkeypatch.setattr(corpus_run, "FAIL_FAST", 2)  # the folder has 4 clips
    with pytest.raises(ModelFailedError, match=r"^explaining the first 2 clips failed every time .*e\.g\. a440/1\.wav: "
                       r"explaining it failed: ValueError: input peaks above 0\.01"):
        run(LoudnessLimitedModel(limit=0.01), root, tmp_path / "results.sqlite")


def test_interrupted_run_resumes_without_recomputing(reference, data, tmp_path):
    ref_store, _, ref_calls = reference
    root, paths = data
    store = tmp_path / "results.sqlite"
    victim = torch.from_numpy(sf.read(str(root / paths[2]), dtype="float32")[0])
    with pytest.raises(KeyboardInterrupt):
        run(Probe(victim), root, store)
    with ResultStore(str(store), readonly=True) as opened:
        assert [row["clip_id"] for row in opened.rows("clips")] == paths[:2]  # the clip in flight is lost
    resumed = Probe()
    summary = run(resumed, root, store)
    assert (summary.explained, summary.skipped, summary.resumed) == (2, 2, True)
    # The calls of the first two clips alone (listed in a CSV), plus the resumed run's, are the full run's.
    listing = tmp_path / "first.csv"
    listing.write_text("path\n" + "\n".join(str(root / p) for p in paths[:2]) + "\n")
    first = Probe()
    run(first, listing, tmp_path / "first.sqlite")
    assert first.calls + resumed.calls == ref_calls
    assert results(store) == results(ref_store)
    again = Probe()
    assert run(again, root, store).explained == 0 and again.calls == 0


def test_interrupted_run_with_targets_resumes_with_their_rows(transferred, data, tmp_path):
    root, paths = data
    store = tmp_path / "results.sqlite"
    victim = torch.from_numpy(sf.read(str(root / paths[2]), dtype="float32")[0])
    with pytest.raises(KeyboardInterrupt):
        run(Probe(victim), root, store, transfer_to=targets())
    with ResultStore(str(store), readonly=True) as opened:
        assert sorted({row["clip_id"] for row in opened.rows("transfers")}) == paths[:2]
    summary = run(Probe(), root, store, transfer_to=targets())
    assert (summary.explained, summary.skipped) == (2, 2)
    assert results(store) == results(transferred)
    assert aggregate(store).transfer.rates.tolist() == aggregate(transferred).transfer.rates.tolist()


def test_other_transfer_targets_are_refused(transferred, reference, data):
    root, _ = data
    before = os.path.getmtime(transferred), os.path.getsize(transferred)
    fewer = {k: v for k, v in targets().items() if k != "hum"}
    reordered = dict(reversed(list(targets().items())))
    renamed = {**targets(), "hum": ToneClassifier([50, 1000])}  # another type under the name "hum"
    for given in (None, fewer, reordered, renamed):
        with pytest.raises(StoreMismatchError) as caught:
            run(Probe(), root, transferred, transfer_to=given)
        assert caught.value.key == "transfer_to" and "transfer_to=" in str(caught.value)
    assert (os.path.getmtime(transferred), os.path.getsize(transferred)) == before
    with pytest.raises(StoreMismatchError, match="transfer_to=None"):
        run(Probe(), root, reference[0], transfer_to=targets())


def test_bad_transfer_targets_raise_clear_errors(data, tmp_path):
    root, _ = data
    store = tmp_path / "t.sqlite"
    with pytest.raises(TypeError, match=r"transfer_to\['x'\] must be callable"):
        run(Probe(), root, store, transfer_to={"x": 3})
    with pytest.raises(TypeError, match="mapping of name -> model"):
        run(Probe(), root, store, transfer_to=[ToneClassifier([440])])
    with pytest.raises(ValueError, match=r"transfer_to\['fast'\] has sample_rate 16000 but the model 8000"):
        run(Probe(), root, store, transfer_to={"fast": fast_model()})
    with pytest.raises(ValueError, match="transfer_factories names \\['y'\\]"):
        run(Probe(), root, store, transfer_to=targets(), transfer_factories={"y": ToneClassifier})
    assert not store.exists()


def test_changed_data_set_is_detected(tmp_path):
    root = tmp_path / "data"
    paths = write_dataset(root, per_class=1)
    store = tmp_path / "results.sqlite"
    run(ToneClassifier([440, 1000]), root, store, max_queries=100, ks=[1])
    sf.write(str(root / paths[0]), (0.9 * _clip("a440", 0)).numpy(), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(DatasetChangedError, match="a440/0.wav"):
        run(ToneClassifier([440, 1000]), root, store, max_queries=100, ks=[1])
    sf.write(str(root / "b1000" / "new.wav"), _clip("b1000", 5).numpy(), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(DatasetChangedError, match="1 clips are new"):
        run(ToneClassifier([440, 1000]), root, store, max_queries=100, ks=[1])


def test_store_refuses_other_settings_models_and_files(reference, data, tmp_path):
    store, _, _ = reference
    root, _ = data
    before = os.path.getmtime(store), os.path.getsize(store)
    with pytest.raises(StoreMismatchError, match="seed=0") as caught:
        run(ToneClassifier([440, 1000]), root, store, seed=1)
    assert (caught.value.key, caught.value.stored, caught.value.given) == ("seed", 0, 1)
    with pytest.raises(StoreMismatchError) as caught:
        run(HumModel(), root, store)
    assert caught.value.key == "model"
    assert (os.path.getmtime(store), os.path.getsize(store)) == before
    foreign = tmp_path / "notes.sqlite"
    foreign.write_text("my notes")
    with pytest.raises(StoreError, match="not a results store"):
        run(ToneClassifier([440, 1000]), root, foreign)
    assert foreign.read_text() == "my notes"


# ----------------------------------------------------------------------------- other sources


def test_dataloader_and_batches_give_the_folder_results(reference, data, tmp_path):
    store, _, _ = reference
    root, paths = data
    waves = torch.stack([torch.from_numpy(sf.read(str(root / p), dtype="float32")[0]) for p in paths])
    labels = torch.tensor([NAMES.index(p.split("/")[0]) for p in paths])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(waves, labels), batch_size=3)
    summary = run(ToneClassifier([440, 1000]), loader, tmp_path / "loader.sqlite", batch_size=2)
    assert (summary.clips, summary.explained) == (4, 4)
    ours = results(tmp_path / "loader.sqlite", ignore=("source", "position", "clip_id"))
    theirs = results(store, ignore=("source", "position", "clip_id"))
    assert ours == theirs
    with ResultStore(str(tmp_path / "loader.sqlite"), readonly=True) as opened:
        clips = opened.rows("clips", order_by="position")
    assert [c["clip_id"] for c in clips] == ["0", "1", "2", "3"]
    assert [c["label"] for c in clips] == [p.split("/")[0] for p in paths]



def test_short_clips_are_padded_to_the_models_length_unless_it_takes_any(small, tmp_path):
    """With num_samples of 1 s, the 0.5 s clips are zero-padded to it by default, and kept at their
    own length with pad_short_clips=False (a model that takes any length), which the settings
    record: each store is its own run."""
    model = ToneClassifier([440, 1000])
    padded = run(model, small, tmp_path / "padded.sqlite", num_samples=2 * N, **SMALL)
    kept = run(model, small, tmp_path / "kept.sqlite", num_samples=2 * N, pad_short_clips=False, **SMALL)
    assert padded.explained == kept.explained == 2
    for name, length, note in (("padded", 2 * N, "zero-padded 0.50 s to the model's 1.00 s"),
                               ("kept", N, "kept at its own 0.50 s")):
        with ResultStore(str(tmp_path / f"{name}.sqlite"), readonly=True) as opened:
            clips = opened.rows("clips", order_by="position")
        assert [c["num_samples"] for c in clips] == [length, length]
        assert all(any(note in line for line in c["notes"]) for c in clips)
    with pytest.raises(TypeError, match="pad_short_clips must be True or False"):
        run(model, small, tmp_path / "bad.sqlite", num_samples=2 * N, pad_short_clips="no", **SMALL)

def test_csv_source_resolves_paths_and_reports_bad_rows(data, tmp_path):
    root, paths = data
    listing = root / "list.csv"
    with open(listing, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerow([paths[3], "tone"])
        writer.writerow([paths[0], ""])
    store = tmp_path / "csv.sqlite"
    run(ToneClassifier([440, 1000]), listing, store, max_queries=100, ks=[1])
    with ResultStore(str(store), readonly=True) as opened:
        clips = opened.rows("clips", order_by="position")
    assert [(c["clip_id"], c["label"], c["decision_name"]) for c in clips] == [
        (paths[3], "tone", "b1000"), (paths[0], None, "a440")
    ]
    assert clips[0]["source"] == str(root / paths[3])
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.wav\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        run(ToneClassifier([440, 1000]), bad, tmp_path / "bad.sqlite")
    bad.write_text("path\nmissing.wav\n")
    with pytest.raises(ValueError, match="do not exist: missing.wav"):
        run(ToneClassifier([440, 1000]), bad, tmp_path / "bad.sqlite")


def test_unreadable_clips_are_stored_as_errors_and_retried(tmp_path):
    root = tmp_path / "data"
    write_dataset(root, per_class=1)
    (root / "b1000" / "broken.wav").write_bytes(b"not audio")
    store = tmp_path / "results.sqlite"
    summary = run(ToneClassifier([440, 1000]), root, store, max_queries=100, ks=[1])
    assert (summary.explained, summary.failed) == (2, 1)
    with ResultStore(str(store), readonly=True) as opened:
        broken = [c for c in opened.rows("clips") if c["status"] == "error"]
    assert [c["clip_id"] for c in broken] == ["b1000/broken.wav"] and "cannot read" in broken[0]["error"]
    assert aggregate(store).failed == 1 and aggregate(store).overall.clips == 2
    sf.write(str(root / "b1000" / "broken.wav"), _clip("b1000", 7).numpy(), SAMPLE_RATE, subtype="FLOAT")
    summary = run(ToneClassifier([440, 1000]), root, store, max_queries=100, ks=[1])
    assert (summary.explained, summary.skipped, summary.failed) == (1, 2, 0)


# ----------------------------------------------------------------------------- Ray


def test_ray_backend_without_ray_names_the_extra(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install captum_freqrex\[ray\]"):
        run(ToneClassifier([440, 1000]), data[0], tmp_path / "r.sqlite", backend="ray")
    assert not (tmp_path / "r.sqlite").exists()


def test_ray_backend_stores_the_local_rows(reference, data, tmp_path):
    pytest.importorskip("ray")
    store, _, _ = reference
    root, paths = data
    chosen = [paths[1], paths[2]]
    listing = root / "two.csv"  # relative paths: the same clip ids as the folder run
    listing.write_text("path,label\n" + "\n".join(f"{p},{p.split('/')[0]}" for p in chosen) + "\n")
    remote = tmp_path / "ray.sqlite"
    summary = run(ToneClassifier([440, 1000]), listing, remote, backend="ray", num_cpus=1, batch_size=2)
    assert (summary.backend, summary.explained) == ("ray", 2)
    local = {table: [row for row in rows if row["clip_id"] in chosen] for table, rows in results(store).items()}
    assert results(remote) == local  # identical rows, floats included


def test_progress_goes_to_stderr_only_when_asked(small, tmp_path, capsys, monkeypatch):
    from captum_freqrex._utils import progress

    run(ToneClassifier([440, 1000]), small, tmp_path / "quiet.sqlite", **SMALL)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # a line per model call (stderr is no terminal)
    run(ToneClassifier([440, 1000]), small, tmp_path / "shown.sqlite", show_progress=True, **SMALL)
    captured = capsys.readouterr()
    lines = [line.rstrip() for line in captured.err.strip().splitlines()]  # tqdm's "\r" rewrites
    assert captured.out == "" and lines[0].startswith("explain-dataset: clip 1/2, 0 queries")
    assert any(line.startswith("explain-dataset: clip 2/2, ") for line in lines)
    assert all(re.search(r"elapsed, ETA (\d+\.\d s|\?)$", line) for line in lines[:-1])
    assert re.fullmatch(r"explain-dataset: 2 clips explained, [\d,]+ queries in \d+\.\d s", lines[-1])


# ----------------------------------------------------------------------------- command line


def test_cli_end_to_end(data, tmp_path, capsys):
    root, paths = data
    out = tmp_path / "res"
    argv = ["explain-dataset", str(root), "--model", "test_corpus:tone_model", "--out", str(out),
            "--max-queries", str(QUERIES)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "a440" in captured.out and "flip@1" in captured.out and "354-445 Hz" in captured.out
    assert "explain-dataset: 4 clips explained" in captured.err
    assert sorted(os.listdir(out)) == ["aggregates.csv", "aggregates.json", "results.sqlite"]
    with ResultStore(str(out / "results.sqlite"), readonly=True) as opened:
        assert [c["clip_id"] for c in opened.rows("clips")] == paths
    assert main(argv) == 0  # resumes: nothing left to do
    assert "0 clips explained now, 4 already stored" in capsys.readouterr().err
    assert main(argv + ["--seed", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("explaining ")  # one line of error after the announcement
    assert lines[1].startswith("freqrex: error:") and "--seed 0, not 2" in lines[1] and "--out another folder" in lines[1]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "aggregates.json").write_text("mine")
    assert main(["explain-dataset", str(root), "--model", "test_corpus:tone_model", "--out", str(foreign)]) == 2
    assert "aggregates.json already exists" in capsys.readouterr().err
    assert (foreign / "aggregates.json").read_text() == "mine" and not (foreign / "results.sqlite").exists()
    assert main(["explain-dataset", str(tmp_path / "nowhere"), "--model", "test_corpus:tone_model",
                 "--out", str(tmp_path / "other")]) == 2
    assert "no such folder or CSV file" in capsys.readouterr().err


def test_cli_transfer_to_prints_the_matrix_and_refuses_other_targets(data, tmp_path, capsys):
    root, _ = data
    out = tmp_path / "res"
    argv = ["explain-dataset", str(root), "--model", "test_corpus:tone_model", "--out", str(out),
            "--max-queries", "100", "--ks", "1", "--workers", "1"]
    assert main(argv + ["--transfer-to", "test_corpus:same_tone_model"]) == 0
    printed = capsys.readouterr().out
    assert "test_corpus:same_tone_model: signal     1.00 (2/2)" in printed
    assert "test_corpus:same_tone_model: full clip  1.00 (2/2)" in printed
    payload = json.loads((out / "aggregates.json").read_text())
    assert payload["by_target"]["transfer"]["acceptance"] == [[1.0, 1.0]]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--transfer-to test_corpus:same_tone_model, not (none)" in error and "--out another folder" in error
    assert main(argv + ["--transfer-to", "test_corpus:fast_model"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--transfer-to test_corpus:fast_model runs at 16000 Hz but --model test_corpus:tone_model runs at 8000 Hz" in error
    assert main(argv + ["--transfer-to", "test_corpus:same_tone_model", "test_corpus:same_tone_model"]) == 2
    assert "names test_corpus:same_tone_model twice" in capsys.readouterr().err


def test_cli_ctrl_c_leaves_a_resumable_store(data, tmp_path, capsys):
    root, _ = data
    out = tmp_path / "res"
    argv = ["explain-dataset", str(root), "--model", "test_corpus:interrupting_model", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "freqrex: error: interrupted: 0 clips are stored" in err and "run the same command again" in err
    assert (out / "results.sqlite").exists()


def test_built_data_set_source_resamples_and_labels(tmp_path):
    from captum_freqrex.corpus import clip_source
    from captum_freqrex.datasets._store import save_split, to_int16, write_manifest

    task = tmp_path / "built" / "tones"
    waves = torch.stack([0.5 * tone(440, SECONDS, sample_rate=16000), 0.5 * tone(1000, SECONDS, sample_rate=16000)])
    save_split(str(task), "test", to_int16(waves.numpy()), [0, 1], ["synth:440", "synth:1000"])
    write_manifest(str(task), {"class_names": ["a440", "b1000"], "sample_rate": 16000})
    source = clip_source(str(task), SAMPLE_RATE, N)
    clips = list(source)
    assert source.ids() == ["test:0", "test:1"] and [c.label for c in clips] == ["a440", "b1000"]
    assert [c.source for c in clips] == ["synth:440", "synth:1000"]
    assert clips[0].waveform.shape == (N,) and clips[0].notes == ["resampled 16000 Hz -> 8000 Hz"]
    spectrum = torch.fft.rfft(clips[1].waveform).abs()
    assert int(spectrum.argmax()) == round(1000 * N / SAMPLE_RATE)  # the tone survives resampling
    with pytest.raises(ValueError, match="holds built data sets \\(tones\\)"):
        clip_source(str(tmp_path / "built"), SAMPLE_RATE)
    with pytest.raises(ValueError, match="no split 'valid'"):
        clip_source(str(task), SAMPLE_RATE, split="valid")


def test_a_model_with_batch_norm_gets_a_weights_fingerprint_that_tells_weights_apart():
    # BatchNorm's num_batches_tracked is a 0-d tensor: it once made every zoo model's fingerprint
    # None, so a resumed run with other weights of the same class went unnoticed.
    from captum_freqrex.corpus._run import describe_model

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).eval()

    first, same, other = build(), build(), build()
    with torch.no_grad():
        other[0].bias[0] += 1e-3
    prints = [describe_model(m)["fingerprint"] for m in (first, same, other)]
    assert prints[0] is not None and prints[0] == prints[1] != prints[2]


# ----------------------------------------------------------------------------- hostile and damaged input


def _formula_cells(path) -> list:
    """Every cell of a CSV that a spreadsheet would run as a formula (numbers are data, not formulas)."""

    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    with open(path, newline="", encoding="utf-8") as handle:
        return [c for row in csv.reader(handle) for c in row if c.startswith(FORMULA_STARTS) and not number(c)]


def test_formula_labels_and_class_names_are_neutralised_in_aggregates_csv(tmp_path):
    root = tmp_path / "data"
    labels = {"a440": "-2+3+cmd|' -C calc'!A0", "b1000": '=HYPERLINK("x")'}  # folder names (no "/")
    for tone_label, folder in labels.items():
        (root / folder).mkdir(parents=True)
        sf.write(str(root / folder / "0.wav"), _clip(tone_label, 0).numpy(), SAMPLE_RATE, subtype="FLOAT")
    store = tmp_path / "results.sqlite"
    explain_dataset(payload_model(), root, store, max_queries=100, ks=[1])
    written = write_aggregates(store, str(tmp_path / "aggregates.json"), str(tmp_path / "aggregates.csv"))
    assert [c.name for c in written["target"].classes] == PAYLOAD_NAMES[:2]  # the payloads really are the classes
    assert sorted(c.name for c in written["label"].classes) == sorted(labels.values())
    assert _formula_cells(tmp_path / "aggregates.csv") == []
    with open(tmp_path / "aggregates.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows if r["grouping"] == "target"] == ["'" + n for n in PAYLOAD_NAMES[:2]] + ["(all)"]
    assert {r["class"] for r in rows if r["grouping"] == "label"} == {"'" + n for n in labels.values()} | {"(all)"}
    assert [float(r["flip@1"]) for r in rows] == [1.0] * 6  # numbers stay numbers
    payload = json.loads((tmp_path / "aggregates.json").read_text())
    assert [c["name"] for c in payload["by_target"]["classes"]] == PAYLOAD_NAMES[:2]  # JSON keeps the names


def test_cli_neutralises_formula_labels_of_a_csv_and_class_names(data, tmp_path, capsys):
    root, paths = data
    listing = tmp_path / "payload.csv"
    with open(listing, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerow([str(root / paths[0]), "=cmd|' /C calc'!A0"])
        writer.writerow([str(root / paths[2]), "+cmd|' /C calc'!A0"])
    out = tmp_path / "res"
    argv = ["explain-dataset", str(listing), "--model", "test_corpus:payload_model", "--out", str(out),
            "--max-queries", "100", "--ks", "1", "--workers", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    with open(out / "aggregates.csv", newline="", encoding="utf-8") as handle:
        cells = {r["class"] for r in csv.DictReader(handle)}
    assert {"'=cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0", "'" + PAYLOAD_NAMES[0], "'" + PAYLOAD_NAMES[1]} < cells
    assert _formula_cells(out / "aggregates.csv") == []


def _copy(store, tmp_path):
    copy = tmp_path / "results.sqlite"
    shutil.copy(store, copy)
    return copy


def _garble(store, size: int = 8192) -> None:
    """Overwrite ``size`` bytes in the middle of the file with seeded garbage."""
    data = bytearray(store.read_bytes())
    middle = len(data) // 2
    g = torch.Generator().manual_seed(24)
    data[middle:middle + size] = torch.randint(0, 256, (size,), generator=g, dtype=torch.uint8).numpy().tobytes()
    store.write_bytes(bytes(data))


def _sqlite_finds_it_malformed(store) -> bool:
    connection = sqlite3.connect(str(store))
    try:
        return connection.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
    except sqlite3.DatabaseError:
        return True
    finally:
        connection.close()


def test_a_store_with_garbage_in_the_middle_is_refused_as_damaged(reference, data, tmp_path):
    store = _copy(reference[0], tmp_path)
    _garble(store)
    assert _sqlite_finds_it_malformed(store)
    before = store.read_bytes()
    with pytest.raises(DamagedStoreError, match="is a damaged store .*start a new store"):
        run(Probe(), data[0], store)
    with pytest.raises(DamagedStoreError, match="is a damaged store"):
        aggregate(store)  # read-only: quick_check
    assert store.read_bytes() == before  # left as it is


def test_cli_refuses_a_garbled_store_with_exit_2_naming_the_repair(data, tmp_path, capsys):
    root, _ = data
    out = tmp_path / "res"
    argv = ["explain-dataset", str(root), "--model", "test_corpus:tone_model", "--out", str(out),
            "--max-queries", "100", "--ks", "1", "--workers", "1"]
    assert main(argv) == 0
    _garble(out / "results.sqlite")
    assert _sqlite_finds_it_malformed(out / "results.sqlite")
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("freqrex: error:") and "is a damaged store" in error
    assert "--out another folder starts a new store" in error
    assert _sqlite_finds_it_malformed(out / "results.sqlite")  # not "repaired" by overwriting


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("DROP TABLE flips", "the table flips is missing"),
        ("DROP TABLE meta", "the table meta is missing"),
        ("ALTER TABLE clips DROP COLUMN stable", "the table clips has no column stable"),
        ("UPDATE run SET settings = '{not json'", "the run's settings column is not JSON"),
        ("UPDATE run SET model = '[1, 2]'", "the run's model column is not a JSON object"),
        ("UPDATE clips SET status = 'pending' WHERE position = 0", "a440/0.wav has status 'pending'"),
        ("UPDATE meta SET value = 'one' WHERE key = 'schema_version'", "schema_version 'one' is not a number"),
    ],
)
def test_a_damaged_store_says_damaged_store_not_another_run(reference, data, tmp_path, damage, problem):
    store = _copy(reference[0], tmp_path)
    connection = sqlite3.connect(str(store))
    with connection:
        changed = connection.execute(damage).rowcount
    connection.close()
    assert changed != 0  # the damage was done (-1 for DDL)
    with pytest.raises(DamagedStoreError, match="damaged store") as caught:
        run(Probe(), data[0], store)
    assert caught.value.problem.startswith(problem), caught.value.problem
    assert "another run" not in str(caught.value)


def test_a_clip_whose_json_is_damaged_stops_the_aggregates(reference, tmp_path):
    store = _copy(reference[0], tmp_path)
    connection = sqlite3.connect(str(store))
    with connection:
        assert connection.execute("UPDATE clips SET warnings = '[oops' WHERE position = 1").rowcount == 1
    connection.close()
    with pytest.raises(DamagedStoreError, match="the warnings column of clip a440/1.wav is not JSON"):
        aggregate(store)


def test_rows_left_without_their_clip_say_damaged_store_not_another_run(reference, data, tmp_path):
    store = _copy(reference[0], tmp_path)
    connection = sqlite3.connect(str(store))
    with connection:
        assert connection.execute("DELETE FROM clips WHERE clip_id = 'b1000/1.wav'").rowcount == 1
    connection.close()
    model = Probe()
    with pytest.raises(DamagedStoreError, match="rows of clip b1000/1.wav are in sets without the clip"):
        run(model, data[0], store)
    assert model.calls == 0  # found on opening the store, before explaining the clip again


def _stored_record(opened: ResultStore, clip_id: str):
    """The rows of a stored clip as the record a run writes."""
    from captum_freqrex.corpus._explain import ClipRecord

    def of(table: str) -> list:
        return [row for row in opened.rows(table) if row["clip_id"] == clip_id]

    bands = [row["responsibility"] for row in of("band_responsibility")]
    return ClipRecord(of("clips")[0], of("sets"), of("set_bins"), bands, of("flips"), of("transfers"))


def test_a_clip_stored_meanwhile_is_another_run_and_rows_left_meanwhile_a_damaged_store(reference, tmp_path):
    store = _copy(reference[0], tmp_path)
    with ResultStore(str(store)) as opened:
        records = {c: _stored_record(opened, c) for c in ("a440/0.wav", "b1000/1.wav")}
        with pytest.raises(StoreError, match="is another run writing to this store") as caught:
            opened.write(records["a440/0.wav"])  # as a second run would, having found it missing
        assert not isinstance(caught.value, DamagedStoreError)
        other = sqlite3.connect(str(store))
        with other:
            assert other.execute("DELETE FROM clips WHERE clip_id = 'b1000/1.wav'").rowcount == 1
        other.close()
        with pytest.raises(DamagedStoreError, match="rows of clip b1000/1.wav are in sets, set_bins, "):
            opened.write(records["b1000/1.wav"])


def test_the_same_file_twice_in_a_csv_stops_the_run(data, tmp_path, capsys):
    root, paths = data
    (tmp_path / "sub").mkdir()
    (tmp_path / "in.wav").write_bytes((root / paths[0]).read_bytes())
    (tmp_path / "other.wav").write_bytes((root / paths[2]).read_bytes())
    os.link(tmp_path / "in.wav", tmp_path / "linked.wav")
    os.symlink(tmp_path / "in.wav", tmp_path / "alias.wav")
    store, listing = tmp_path / "results.sqlite", tmp_path / "clips.csv"
    for second in ("./in.wav", "sub/../in.wav", str(tmp_path / "in.wav"), "linked.wav", "alias.wav"):
        listing.write_text(f"path,label\nin.wav,x\nother.wav,y\n{second},x\n")
        with pytest.raises(SourceError, match=rf"line 4: {re.escape(second)} is the same file as in.wav \(line 2\)"):
            run(ToneClassifier([440, 1000]), listing, store)
        assert not store.exists()  # stopped before any work
    assert main(["explain-dataset", str(listing), "--model", "test_corpus:tone_model", "--out",
                 str(tmp_path / "res")]) == 2
    assert "alias.wav is the same file as in.wav" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a configured FreqReX


def test_a_configured_freqrex_gives_the_keywords_rows_and_resumes_their_store(small, tmp_path):
    model = ToneClassifier([440, 1000])
    options = dict(SMALL, seed=4, n_samples=4)
    by_keywords = run(model, small, tmp_path / "keywords.sqlite", search="energy", decision="argmax", **options)
    configured = run(FreqReX(model, search="energy", decision="argmax"), small, tmp_path / "configured.sqlite", **options)
    assert (configured.explained, configured.failed) == (by_keywords.explained, 0) == (2, 0)
    assert results(tmp_path / "configured.sqlite") == results(tmp_path / "keywords.sqlite")
    # the same run configured the other way: the store is resumed (nothing to redo), not refused
    again = run(FreqReX(model, search="energy", decision="argmax"), small, tmp_path / "keywords.sqlite", **options)
    assert (again.resumed, again.explained, again.skipped) == (True, 0, 2)
    with pytest.raises(StoreMismatchError):  # another search is another run
        run(FreqReX(model, search="adaptive", decision="argmax"), small, tmp_path / "keywords.sqlite", **options)
    with pytest.raises(ValueError, match="configure them on the FreqReX"):
        run(FreqReX(model), small, tmp_path / "x.sqlite", search="energy")


def test_a_model_that_takes_one_waveform_at_a_time_is_run_with_rows_per_call_1(small, tmp_path):
    """A model that refuses batches fails every clip, stored with its error and FreqReX's note; with
    rows_per_call=1 every call of the explanation, the flips and the transfers is one row, and the stores hold
    the rows of the same model run in batches. rows_per_call is no setting of the run: a store
    made with it resumes without it."""
    honest = ToneClassifier([440, 1000])
    rows = []

    def one_at_a_time(waves):
        if waves.shape[0] != 1:
            raise ValueError(f"one waveform at a time, got {waves.shape[0]}")
        rows.append(1)
        return honest(waves)

    refused = run(one_at_a_time, small, tmp_path / "refused.sqlite", **SMALL)
    assert (refused.explained, refused.failed) == (0, 2)  # fewer clips than FAIL_FAST: stored, not raised
    with ResultStore(str(tmp_path / "refused.sqlite"), readonly=True) as opened:
        errors = [row["error"] for row in opened.rows("clips")]
    assert all("ValueError: one waveform at a time" in e and "perturbations_per_eval=1" in e for e in errors), errors
    single = run(one_at_a_time, small, tmp_path / "single.sqlite", rows_per_call=1, transfer_to={"same": honest},
                 **SMALL)
    batched = run(honest, small, tmp_path / "batched.sqlite", transfer_to={"same": honest}, **SMALL)
    assert (single.explained, single.failed) == (batched.explained, 0) == (2, 0) and len(rows) >= single.queries
    ignore = ("source", "position", "fingerprint", "forward_calls")  # one row a call: more calls
    assert results(tmp_path / "single.sqlite", ignore) == results(tmp_path / "batched.sqlite", ignore)
    assert all(row["forward_calls"] == row["queries"] for row in results(tmp_path / "single.sqlite")["clips"])
    again = run(one_at_a_time, small, tmp_path / "single.sqlite", transfer_to={"same": honest}, **SMALL)
    assert (again.resumed, again.explained, again.skipped) == (True, 0, 2)
    with pytest.raises(ValueError, match="rows_per_call must be a positive integer"):
        run(honest, small, tmp_path / "x.sqlite", rows_per_call=0)


# ----------------------------------------------------------------------------- local workers


def test_two_workers_store_the_rows_of_one(reference, data, tmp_path):
    """Two spawned workers (one torch thread each) store row for row what one process stores,
    in the same order; the driver writes, and an unreadable clip is still an error row."""
    ref_store, _, _ = reference
    root, paths = data
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    listing = tmp_path / "all.csv"  # the folder's clips, plus one that cannot be read
    listing.write_text("path,label\n" + "\n".join(f"{root / p},{p.split('/')[0]}" for p in paths)
                       + f"\n{tmp_path / 'broken.wav'},b1000\n")
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    run(ToneClassifier([440, 1000]), listing, one, workers=1)
    summary = run(ToneClassifier([440, 1000]), listing, two, workers=2)
    assert (summary.backend, summary.explained, summary.failed) == ("local", 4, 1)
    assert results(two, ignore=()) == results(one, ignore=())  # every column but timing, in order
    explained = [row for row in results(two)["clips"] if row["status"] == "explained"]
    assert [row["clip_id"] for row in explained] == [str(root / p) for p in paths]
    reference_rows = results(ref_store)
    for table, rows in results(two, ignore=("source", "position", "fingerprint", "clip_id")).items():
        ours = [row for row in rows if row.get("status") != "error"]
        assert ours == [{k: v for k, v in row.items() if k != "clip_id"} for row in reference_rows[table]], table


def test_workers_ctrl_c_in_a_worker_keeps_the_clips_before_it(data, tmp_path):
    """A KeyboardInterrupt raised in a worker reaches the driver; the clips before it are stored,
    the store resumes with one worker and matches a run that was never interrupted."""
    root, paths = data
    store = tmp_path / "results.sqlite"
    victim = torch.from_numpy(sf.read(str(root / paths[2]), dtype="float32")[0])
    with pytest.raises(KeyboardInterrupt):
        run(Probe(victim), root, store, workers=2)
    with ResultStore(str(store), readonly=True) as opened:
        assert [row["clip_id"] for row in opened.rows("clips")] == paths[:2]
    summary = run(Probe(), root, store, workers=1)
    assert (summary.explained, summary.skipped) == (2, 2)


def test_workers_are_checked_and_unpicklable_models_named(data, tmp_path):
    root, _ = data
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run(ToneClassifier([440, 1000]), root, tmp_path / "a.sqlite", workers=0)
    with pytest.raises(ValueError, match="workers is for backend='local'"):
        run(ToneClassifier([440, 1000]), root, tmp_path / "b.sqlite", backend="ray", workers=2)
    inner = ToneClassifier([440, 1000])
    with pytest.raises(ValueError, match="cannot be sent to workers.*model_factory="):
        run(lambda x: inner(x), root, tmp_path / "c.sqlite", workers=2)


def test_cli_workers_are_for_the_local_backend(data, tmp_path, capsys):
    root, _ = data
    argv = ["explain-dataset", str(root), "--model", "test_corpus:tone_model", "--out", str(tmp_path / "res")]
    assert main(argv + ["--backend", "ray", "--workers", "2"]) == 2
    assert "freqrex: error: --workers is for --backend local" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--workers", "0"])
    assert exit_info.value.code == 2 and "--workers" in capsys.readouterr().err
