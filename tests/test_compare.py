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


def test_a_given_budget_is_the_sampling_methods_count_even_beside_freqrex():
    """FreqReX answers a loud decisive tone in a few queries: at equal budgets KernelShap would
    draw as few samples. ``budget`` gives the sampling methods their own count, and the notes say
    the budgets are not equal."""
    model = ToneClassifier([440, 1000, 2500])
    equal = compare_methods(model, clips()[:2], ["FreqReX", "KernelShap"], ks=[1], n_steps=4, max_queries=300)
    freqrex = equal.row("FreqReX")["queries"]
    assert freqrex < 40 and equal.row("KernelShap")["queries"] == pytest.approx(freqrex, abs=1)
    assert any(note.startswith("Equal budgets") for note in equal.notes)
    given = compare_methods(model, clips()[:2], ["FreqReX", "KernelShap"], ks=[1], n_steps=4, max_queries=300, budget=80)
    assert given.row("FreqReX")["queries"] == freqrex
    assert given.row("KernelShap")["queries"] == pytest.approx(80, abs=1)
    assert any(note.startswith("Budgets given, not equal: KernelShap and Lime draw budget=80") for note in given.notes)
    assert not any(note.startswith("Equal budgets") for note in given.notes)
    for bad, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="budget must be"):
            compare_methods(model, clips()[:1], ["FreqReX", "KernelShap"], budget=bad)


def test_markdown_and_csv(table, tmp_path):
    markdown = table.to_markdown()
    assert markdown.splitlines()[0].startswith("| method | features | queries")
    assert all(f"| {name} |" in markdown for name in METHODS)
    table.to_csv(tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["method"] for r in rows] == list(METHODS) and float(rows[0]["flip@1"]) == 1.0




def test_the_table_converts_to_a_dataframe_row_for_row(table):
    frame = table.to_pandas()
    assert list(frame.columns) == table.columns
    assert frame["method"].tolist() == [row["method"] for row in table.rows] == list(METHODS)
    assert frame.loc[0, "flip@1"] == table.rows[0]["flip@1"]

def test_csv_neutralises_method_names_and_errors_a_spreadsheet_would_run(tmp_path):
    # A registry name and an error message are text that reaches the CSV: a leading = + - @ must
    # not make them formulas, while numbers (negative ones too) stay numbers.
    payload = "=cmd|' /C calc'!A0"

    def failing(wrapped, inputs, target):
        raise RuntimeError("+SUM(A1:A9) failed")

    model = ToneClassifier([440, 1000, 2500])
    small = compare_methods(model, list(clips()[:1]), methods={payload: "random", "broken": failing}, ks=[1], n_steps=4)
    small.to_csv(tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv", newline="")))
    assert rows[0]["method"] == "'" + payload  # the payload really was a method name
    cells = [c for row in rows for c in row.values() if c]
    assert not [c for c in cells if c[0] in "=+@" or (c[0] == "-" and not _is_number(c))]
    assert any("+SUM" in c for c in cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True

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


# ---------------------------------------------------------------- the registry: any Captum method, a function, SHAP

from captum.attr import (  # noqa: E402
    DeepLift,
    FeatureAblation,
    GradientShap,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from captum_freqrex import FreqReX  # noqa: E402
from captum_freqrex.compare import CaptumMethod, ClipForward, FreqReXMethod, ShapMethod  # noqa: E402

TIMINGS = ("wall_s", "model_s", "overhead_s")


def scores(table):
    """The rows without their timings (which differ from run to run)."""
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in table.rows]


class ReLUTones(nn.Module):
    """ToneClassifier's scores through an nn.ReLU (the scores are >= 0, so the same decisions):
    DeepLift's rescale rule has a layer to hook."""

    def __init__(self):
        super().__init__()
        self.tones = ToneClassifier([440, 1000, 2500])
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.tones(x))


def test_any_captum_method_and_a_function_attribute_over_the_same_bins():
    model = ReLUTones()
    forward = ClipForward()

    def ablation(wrapped, inputs, target):  # a plain function: one clip's FrequencyForward, its ones, the target
        return FeatureAblation(wrapped).attribute(inputs, baselines=0.0, target=target, perturbations_per_eval=64)

    methods = {
        "GradientShap": GradientShap,  # a class, built on each clip's FrequencyForward
        "Saliency": Saliency,
        "DeepLift": DeepLift(forward),  # an instance on the ClipForward; it hooks the model's ReLU
        "SmoothGrad-IG": CaptumMethod(NoiseTunnel(IntegratedGradients(forward)), nt_samples=3, n_steps=4),
        "Occlusion": CaptumMethod(Occlusion, sliding_window_shapes=(1,), perturbations_per_eval=64),
        "ablation": ablation,
    }
    table = compare_methods(model, clips()[:2], methods, ks=[1], n_steps=4, strict=True)
    assert [row["method"] for row in table.rows] == list(methods)
    for row in table.rows:
        # each clip's loudest tone is the only bin its class reads: every method must rank it first
        assert row["error"] is None and row["features"] == "401 bins", row
        assert row["flip@1"] == 1.0 and row["min_sufficient"] == 1.0, row["method"]
    # perturbation methods pay one query per bin plus the clip itself, counted by the same oracle
    assert table.row("Occlusion")["queries"] == 401 + 1
    assert table.row("ablation")["queries"] == 401 + 1
    assert table.row("Saliency")["queries"] == 1
    assert table.row("SmoothGrad-IG")["queries"] == 3 * 4


def test_a_sequence_of_methods_is_named_after_them():
    model = ToneClassifier([440, 1000, 2500])
    table = compare_methods(
        model, clips()[:1], ["random", Saliency, NoiseTunnel(Saliency(ClipForward()))], ks=[1], n_steps=2, strict=True
    )
    assert [row["method"] for row in table.rows] == ["random", "Saliency", "NoiseTunnel(Saliency)"]


def test_registry_errors_name_the_fix():
    model = ToneClassifier([440, 1000, 2500])
    with pytest.raises(TypeError, match="build it on captum_freqrex.compare.ClipForward"):
        compare_methods(model, clips()[:1], {"IG": IntegratedGradients(model)})
    with pytest.raises(ValueError, match="named twice"):
        compare_methods(model, clips()[:1], [Saliency, Saliency])
    with pytest.raises(TypeError, match="a method is a name"):
        compare_methods(model, clips()[:1], {"x": 3})
    with pytest.raises(RuntimeError, match="not bound to a clip"):
        ClipForward()(torch.ones(1, 401))
    with pytest.raises(ValueError, match="shaped like its inputs"):
        compare_methods(model, clips()[:1], {"bad": lambda wrapped, inputs, target: inputs[:, :3]}, ks=[1], strict=True)
    other = FreqReX(ToneClassifier([440, 1000, 2500]))
    with pytest.raises(ValueError, match="another model"):
        compare_methods(model, clips()[:1], {"other": other}, ks=[1], strict=True)


def test_a_configured_freqrex_gives_what_the_keywords_give():
    model = ToneClassifier([440, 1000, 2500])
    options = dict(ks=[1], n_steps=4, max_queries=80, n_samples=4, seed=3, strict=True)
    names = ["FreqReX", "FreqReX-necessary"]
    by_keywords = compare_methods(model, clips()[:2], names, decision="argmax", **options)
    configured = compare_methods(FreqReX(model, decision="argmax"), clips()[:2], names, **options)
    assert scores(configured) == scores(by_keywords)
    assert configured.notes == by_keywords.notes
    # a FreqReX in the registry, with its attribute keywords, gives the same row
    registry = compare_methods(
        model, clips()[:2], {"FreqReX": FreqReXMethod(FreqReX(model, decision="argmax"), max_queries=80, n_samples=4)},
        decision="argmax", **{**options, "max_queries": 999, "n_samples": 1},
    )
    assert scores(registry) == scores(by_keywords)[:1]
    with pytest.raises(ValueError, match="configure them on the FreqReX"):
        compare_methods(FreqReX(model), clips()[:1], ["random"], decision="threshold")


def test_shap_explainers_rank_the_decisive_tone_first():
    pytest.importorskip("shap")
    import numpy as np

    # The refinement running every search (convergence_top_k=None), so that the shap explainers'
    # budget (FreqReX's queries) is some 40 samples a clip: the default answers these clips in a few
    # queries (the loud decisive tone alone), and the refinement stops at its first one-bin set
    # after 24-31, too few coalitions for Kernel SHAP to resolve 16 bands (flip@1 0.5).
    model = FreqReX(ToneClassifier([440, 1000, 2500]), search="refinement")
    methods = {"FreqReX": FreqReXMethod(convergence_top_k=None), "GradientExplainer": "GradientExplainer",
               "KernelExplainer": "KernelExplainer"}
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    # 401 bins > 64: KernelExplainer, like KernelShap, explains 16 log bands
    table = compare_methods(
        model, clips()[:2], methods, sample_rate=SAMPLE_RATE,
        max_perturbation_features=64, n_bands=16, max_queries=120, ks=[1], n_steps=4, strict=True,
    )
    assert np.random.rand() == expected  # shap's numpy sampling is seeded without touching the caller's state
    budget = table.row("FreqReX")["queries"]
    gradient, kernel = table.row("GradientExplainer"), table.row("KernelExplainer")
    assert gradient["features"] == "401 bins" and "16 log bands" in kernel["features"]
    # the target's score reads one bin: expected gradients put all of it there, Kernel SHAP on its band
    assert gradient["flip@1"] == 1.0 and gradient["min_sufficient"] == 1.0
    assert kernel["flip@1"] == 1.0 and kernel["flip@1_bands"] == 1.0
    assert gradient["queries"] == pytest.approx(budget + 1, abs=1)  # its samples, plus the background
    assert kernel["queries"] == pytest.approx(budget + 2, abs=1)  # its coalitions, the background and the clip
    assert any("shap's nsamples is FreqReX's number of queries" in note for note in table.notes)
    # Seeded: the same coalitions again. One clip, whose FreqReX budget is the nsamples to repeat
    # (FreqReX's searches stop at the answer, so each clip has its own budget).
    one = compare_methods(
        model, clips()[:1], ["FreqReX", "KernelExplainer"], sample_rate=SAMPLE_RATE,
        max_perturbation_features=64, n_bands=16, max_queries=120, ks=[1], n_steps=4, strict=True,
    )
    clip_budget = int(one.row("FreqReX")["queries"])
    again = compare_methods(
        model.forward_func, clips()[:1], {"KernelExplainer": ShapMethod("KernelExplainer", nsamples=clip_budget)},
        sample_rate=SAMPLE_RATE, max_perturbation_features=64, n_bands=16, ks=[1], n_steps=4, strict=True,
    )
    assert scores(again)[0]["deletion_auc"] == one.row("KernelExplainer")["deletion_auc"]


def test_without_shap_a_shap_method_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "shap", None)  # import shap raises ImportError
    model = ToneClassifier([440, 1000, 2500])
    with pytest.raises(ImportError, match=r"pip install \"captum_freqrex\[shap\]\""):
        compare_methods(model, clips()[:1], ["random", "KernelExplainer"], strict=True)
    with pytest.warns(UserWarning, match="GradientExplainer failed"):
        table = compare_methods(model, clips()[:1], ["random", "GradientExplainer"], ks=[1], n_steps=2)
    assert "captum_freqrex[shap]" in table.row("GradientExplainer")["error"]
    assert table.row("random")["error"] is None


def test_show_progress_draws_one_bar_over_the_methods_naming_each(capsys):
    model = ToneClassifier([440, 1000, 2500])
    compare_methods(model, clips()[:1], methods=["random", "magnitude"], ks=[1], n_steps=4, show_progress=True)
    err = capsys.readouterr().err
    assert "compare on 1 clips" in err and "2/2" in err and "random" in err and "magnitude" in err
    compare_methods(model, clips()[:1], methods=["random"], ks=[1], n_steps=4)
    assert capsys.readouterr().err == ""  # silent unless asked
