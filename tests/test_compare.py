"""compare_methods on a toy model and tiny clips: the table is complete and sane."""

import csv

import pytest
import torch
from torch import nn

from captum_freqrex.compare import METHODS, ComparisonTable, compare_methods
from known_models import SAMPLE_RATE, ToneClassifier, tone

SECONDS = 0.1  # 800 samples at 8 kHz: 401 bins of 10 Hz


def clips() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    mix = [(1.0, 0.6, 0.3), (0.4, 1.0, 0.2), (0.3, 0.5, 1.0)]  # each clip has a different loudest tone
    waves = [
        a * tone(440, SECONDS) + b * tone(1000, SECONDS) + c * tone(2500, SECONDS)
        + 0.02 * torch.randn(int(SECONDS * SAMPLE_RATE), generator=g)
        for a, b, c in mix
    ]
    return torch.stack(waves)


@pytest.fixture(scope="module")
def table() -> ComparisonTable:
    model = ToneClassifier([440, 1000, 2500])
    # 401 bins > 64: the per-feature-cost methods attribute over 16 log bands
    return compare_methods(
        model, clips(), sample_rate=SAMPLE_RATE, max_perturbation_features=64, n_bands=16,
        max_queries=300, ig_steps=8, n_steps=8, strict=True,
    )


def test_every_method_has_a_sane_row(table):
    assert [row["method"] for row in table.rows] == list(METHODS)
    for row in table.rows:
        assert row["error"] is None
        for key in ("flip@1", "flip@5", "sufficient_found"):
            assert 0.0 <= row[key] <= 1.0, (row["method"], key)
        for key in ("deletion_auc", "insertion_auc"):
            assert 0.0 <= row[key] <= 1.0, (row["method"], key)
        assert row["wall_s"] >= row["model_s"] >= 0.0 and row["overhead_s"] >= 0.0
        assert row["min_sufficient"] is None or 0 <= row["min_sufficient"] <= 401
    for name in ("FreqReX", "IntegratedGradients", "KernelShap", "Lime", "FeatureAblation", "ShapleyValueSampling"):
        assert table.row(name)["queries"] > 0, name
    assert table.row("magnitude")["queries"] == 0 and table.row("random")["queries"] == 0


def test_known_answers_and_budgets(table):
    freqrex = table.row("FreqReX")
    # each clip's loudest tone is one bin: removing FreqReX's top bin flips every clip
    assert freqrex["flip@1"] == 1.0 and freqrex["min_sufficient"] == 1.0
    assert table.row("magnitude")["flip@1"] == 1.0  # the loudest bin is the decisive one here
    assert table.row("FreqReX-necessary")["flip@1"] == 1.0  # its search looks for what fools the model
    assert freqrex["queries"] <= 300 + 1
    assert table.row("FeatureAblation")["queries"] == 16 + 1  # one per band, plus the input
    assert table.row("KernelShap")["queries"] == pytest.approx(freqrex["queries"], abs=1)
    assert "16 log bands" in table.row("FeatureAblation")["features"]
    # over bins a band method's tie inside its top band goes to the loudest bin, the tone's
    assert table.row("FeatureAblation")["flip@1"] == 1.0 and table.row("FeatureAblation")["flip@1_bands"] == 1.0
    assert table.row("FreqReX")["features"] == "401 bins"


def test_markdown_and_csv(table, tmp_path):
    markdown = table.to_markdown()
    assert markdown.splitlines()[0].startswith("| method | features | queries")
    assert all(f"| {name} |" in markdown for name in METHODS)
    table.to_csv(tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["method"] for r in rows] == list(METHODS) and float(rows[0]["flip@1"]) == 1.0


def test_method_selection_and_errors():
    model = ToneClassifier([440, 1000, 2500])
    small = compare_methods(model, list(clips()[:2]), methods=["random", "magnitude"], ks=[1], n_steps=4)
    assert [r["method"] for r in small.rows] == ["random", "magnitude"] and "flip@5" not in small.columns
    # per-clip baseline waveforms follow their clip into every method
    g = torch.Generator().manual_seed(1)
    noisy = compare_methods(
        model, clips()[:2], ["FreqReX", "FeatureAblation", "magnitude"], baselines=0.01 * torch.randn(2, 800, generator=g),
        feature_mask=torch.arange(401) // 25, ks=[1], n_steps=4, max_queries=60, strict=True,
    )
    assert [r["features"] for r in noisy.rows] == ["17 features (feature_mask)"] * 2 + ["401 bins (magnitude)"]
    assert noisy.row("FeatureAblation")["queries"] == 17 + 1
    with pytest.raises(ValueError, match="unknown methods"):
        compare_methods(model, clips(), methods=["GradCAM"])
    with pytest.raises(ValueError, match="both model and clips"):
        compare_methods(model)


class OddTones(nn.Module):
    """Class 1 when an odd number of the tones ``freqs`` (Hz) is present (normalised rfft magnitude
    above 0.15): along a ranking of the tones, sufficiency is non-monotone by construction."""

    def __init__(self, freqs):
        super().__init__()
        self.freqs = list(freqs)

    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        bins = [round(f * x.shape[-1] / SAMPLE_RATE) for f in self.freqs]
        margin = torch.where((spectrum[:, bins] > 0.15).sum(1) % 2 == 1, 5.0, -5.0)
        return torch.stack([-margin, margin], dim=1)


def test_the_table_says_when_min_sufficient_rests_on_a_non_monotone_ranking():
    # three tones, loudest first in the magnitude ranking: the top-1 (one tone) keeps class 1, the
    # top-2 (two tones) loses it, the top-3 keeps it again. The first sufficient prefix is 1 bin.
    model = OddTones([440, 1000, 2500])
    table = compare_methods(model, clips()[:2], methods=["magnitude"], ks=[1], n_steps=4, strict=True)
    row = table.row("magnitude")
    assert row["min_sufficient"] == 1.0 and row["sufficient_found"] == 1.0
    assert row["sufficient_monotone"] == 0.0
    assert any("non-monotone ranking for magnitude (2 of 2 clips)" in note for note in table.notes)
    # a monotone model: no such note
    monotone = compare_methods(
        ToneClassifier([440, 1000, 2500]), clips()[:2], methods=["magnitude"], ks=[1], n_steps=4, strict=True
    )
    assert monotone.row("magnitude")["sufficient_monotone"] == 1.0
    assert not any("non-monotone" in note for note in monotone.notes)
    assert "sufficient_monotone" in monotone.to_markdown().splitlines()[0]


def test_ks_must_be_ints():
    model = ToneClassifier([440, 1000, 2500])
    for ks in ([2.7], [1, 5.0], 2.7, [True]):
        with pytest.raises(TypeError, match="ks must hold ints"):
            compare_methods(model, clips()[:1], methods=["random"], ks=ks, n_steps=2)
    with pytest.raises(ValueError, match="ks must hold ints >= 0"):
        compare_methods(model, clips()[:1], methods=["random"], ks=[-1], n_steps=2)
    single = compare_methods(model, clips()[:1], methods=["random"], ks=3, n_steps=2, strict=True)
    assert "flip@3" in single.columns


def test_default_zoo_model_when_available():
    try:
        from captum_freqrex import zoo

        zoo.load("instruments")
    except ImportError:
        pytest.skip("captum_freqrex.zoo is not built yet")
    except (KeyError, ValueError, FileNotFoundError) as error:
        pytest.skip(f"the zoo has no instruments model yet: {error}")
    table = compare_methods(methods=["magnitude"], n_clips=1, ks=[1], n_steps=1)
    row = table.row("magnitude")
    assert row["error"] is None and 0.0 <= row["flip@1"] <= 1.0 and row["queries"] == 0
