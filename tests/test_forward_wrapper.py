"""FrequencyForward: any Captum method over FreqReX's frequency features."""

import copy

import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, Lime, NoiseTunnel, ShapleyValueSampling
from captum.attr._utils.batching import _select_example
from captum.metrics import infidelity, sensitivity_max
from torch import nn

from captum_freqrex import FreqReX, FrequencyForward, linear_bands
from captum_freqrex._core.forward_wrapper import ExampleIndex
from known_models import SAMPLE_RATE, ToneDetector, bin_of, tone

BIN_440 = bin_of(440, SAMPLE_RATE)

# Multi-clip tests: three 0.25 s clips (1,001 rfft bins, 4 Hz apart) that need different answers.
T = SAMPLE_RATE // 4
F = T // 2 + 1
SHORT_440 = bin_of(440, T)
BANDS = linear_bands(T, 10, sample_rate=SAMPLE_RATE)  # 400 Hz bands: 440 Hz in 1, 1 kHz in 2, 2.5 kHz in 6
TARGETS = [0, 2, 1]  # ToneClassifier([440, 1000, 2500]): each clip's loudest tone
TOP_BANDS = [1, 6, 2]
LIME_WARNING = "ignore:You are providing multiple inputs for Lime"  # Captum's advice, not a problem


@pytest.fixture
def clips() -> torch.Tensor:
    """(3, T): 440 Hz + 1 kHz; quiet 440 Hz + loud 2.5 kHz; 1 kHz alone; each over seeded noise."""
    noise = 0.02 * torch.randn(3, T, generator=torch.Generator().manual_seed(1))
    return noise + torch.stack([
        tone(440, 0.25) + 0.5 * tone(1000, 0.25),
        0.3 * tone(440, 0.25) + 0.8 * tone(2500, 0.25),
        0.6 * tone(1000, 0.25),
    ])


def amplitude_440(clips: torch.Tensor) -> torch.Tensor:
    """Each clip's 440 Hz amplitude, computed by hand from its spectrum: what ToneDetector reads."""
    return torch.fft.rfft(clips).abs()[:, SHORT_440] / (T / 2)


def each_clip_alone(method, model, clips, targets, seed=0, reseed=False, args_of=lambda i: None, **kwargs):
    """``method`` on one FrequencyForward per clip (B = 1), concatenated: the reference.

    Captum draws from the global generator: seeded once (``torch.manual_seed(seed)``) for methods
    that go through a batch example by example, and again before each clip (``reseed``) for those
    that share their draws across the batch.
    """
    torch.manual_seed(seed)
    out = []
    for i in range(clips.shape[0]):
        if reseed:
            torch.manual_seed(seed)
        wrapped = FrequencyForward(model, clips[i : i + 1])
        out.append(method(wrapped).attribute(
            wrapped.ones(), baselines=wrapped.zeros(), target=targets[i], additional_forward_args=args_of(i), **kwargs
        ))
    return torch.cat(out)


def test_all_kept_reproduces_the_model_output(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    torch.testing.assert_close(wrapped(wrapped.ones()), detector(tone_clip), atol=1e-4, rtol=1e-4)
    assert wrapped.ones().shape == (1, SAMPLE_RATE // 2 + 1)
    assert wrapped.calls == 1 and wrapped.queries == 1


def test_integrated_gradients_over_frequency_bins(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    attr = IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=1, n_steps=16)
    assert attr.shape == (1, SAMPLE_RATE // 2 + 1)
    assert attr[0].abs().argmax() == BIN_440


def test_kernel_shap_and_feature_ablation_share_freqrex_bands(detector, tone_clip):
    bands = linear_bands(SAMPLE_RATE, 40, sample_rate=SAMPLE_RATE)
    wrapped = FrequencyForward(detector, tone_clip)
    shap = KernelShap(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=1, feature_mask=bands.unsqueeze(0), n_samples=200
    )
    ablation = FeatureAblation(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=1, feature_mask=bands.unsqueeze(0)
    )
    freqrex = FreqReX(detector).attribute(tone_clip, feature_mask=bands)
    for attr in (shap, ablation, freqrex):
        assert attr.shape == (1, SAMPLE_RATE // 2 + 1)
        assert attr[0].argmax() // 100 == 4  # all three point at the 400-500 Hz band


@pytest.mark.filterwarnings(LIME_WARNING)
@pytest.mark.parametrize("method", [KernelShap, Lime])
def test_kernel_shap_and_lime_over_a_batch_match_each_clip_alone(method, classifier, clips):
    # They go through a batch one example at a time: every row of a call is one clip's.
    wrapped = FrequencyForward(classifier, clips)
    budget = dict(feature_mask=BANDS.unsqueeze(0), n_samples=40, perturbations_per_eval=6)
    torch.manual_seed(0)
    together = method(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=torch.tensor(TARGETS),
        additional_forward_args=wrapped.example_index(), **budget,
    )
    alone = each_clip_alone(method, classifier, clips, TARGETS, seed=0, **budget)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    assert [int(BANDS[i]) for i in together.argmax(dim=1)] == TOP_BANDS


@pytest.mark.parametrize(
    "method, kwargs",
    [
        (IntegratedGradients, dict(n_steps=8, internal_batch_size=6)),
        (FeatureAblation, dict(feature_mask=BANDS.unsqueeze(0), perturbations_per_eval=4)),
        (ShapleyValueSampling, dict(feature_mask=BANDS.unsqueeze(0), n_samples=2, perturbations_per_eval=4)),
    ],
    ids=["IntegratedGradients", "FeatureAblation", "ShapleyValueSampling"],
)
def test_tiling_methods_over_a_batch_match_each_clip_alone(method, kwargs, classifier, clips):
    wrapped = FrequencyForward(classifier, clips)
    torch.manual_seed(0)  # ShapleyValueSampling's permutations, shared by the whole batch
    together = method(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=TARGETS,
        additional_forward_args=wrapped.example_index(), **kwargs,
    )
    alone = each_clip_alone(method, classifier, clips, TARGETS, seed=0, reseed=True, **kwargs)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_noise_tunnel_and_sensitivity_over_a_batch_give_each_clips_known_answer(clips):
    # ToneDetector's margin is 10 * |c * X| / (T / 2) at 440 Hz, so IG's attribution of keep
    # coefficients c near 1 is 10 * c * amplitude on that bin and nothing elsewhere. NoiseTunnel
    # repeat-interleaves the rows and IG then tiles them: neither fixed layout, the index is right.
    detector = ToneDetector([440], threshold=0.1)
    wrapped = FrequencyForward(detector, clips)
    ig = IntegratedGradients(wrapped)
    expected = 10 * amplitude_440(clips)
    common = dict(baselines=wrapped.zeros(), target=1, additional_forward_args=wrapped.example_index(), n_steps=4)
    torch.manual_seed(0)  # NoiseTunnel's noise
    smoothed = NoiseTunnel(ig).attribute(wrapped.ones(), nt_type="smoothgrad", nt_samples=4, stdevs=0.01, **common)
    torch.testing.assert_close(smoothed[:, SHORT_440], expected, rtol=0.05, atol=1e-4)
    others = torch.ones(F, dtype=torch.bool)
    others[SHORT_440] = False
    assert smoothed[:, others].abs().max() < 1e-3

    # sensitivity_max: perturbing c by at most r changes that attribution by at most r, relatively.
    torch.manual_seed(0)  # sensitivity_max's perturbations
    sens = sensitivity_max(ig.attribute, wrapped.ones(), perturb_radius=0.02, n_perturb_samples=3, **common)
    assert sens.shape == (3,) and (sens > 0).all() and (sens <= 0.02 + 1e-4).all()


def test_infidelity_over_a_batch_matches_each_clip_alone(classifier, clips):
    attributions = torch.fft.rfft(clips).abs()  # any attribution; here the spectral magnitude
    n_perturb = 4

    def remove_one_band(coefficients):
        # infidelity repeat-interleaves each example n_perturb times: sample j removes band j
        band = torch.arange(coefficients.shape[0]) % n_perturb
        removed = (BANDS.unsqueeze(0) == band.unsqueeze(1)).to(coefficients.dtype)
        return coefficients * removed, coefficients * (1 - removed)

    wrapped = FrequencyForward(classifier, clips)
    together = infidelity(
        wrapped, remove_one_band, wrapped.ones(), attributions, target=TARGETS,
        additional_forward_args=wrapped.example_index(), n_perturb_samples=n_perturb,
    )
    alone = torch.cat([
        infidelity(FrequencyForward(classifier, clips[i : i + 1]), remove_one_band, torch.ones(1, F),
                   attributions[i : i + 1], target=TARGETS[i], n_perturb_samples=n_perturb)
        for i in range(3)
    ])
    torch.testing.assert_close(together, alone)
    assert len(set(alone.tolist())) == 3  # the clips do differ, so a wrong mapping would show


class GainedDetector(nn.Module):
    """ToneDetector([440]) whose logits are scaled by a per-example ``gain`` (N, 1) and shifted by a
    constant ``offset``: a model that takes its own additional_forward_args."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440], threshold=0.1)

    def forward(self, x: torch.Tensor, gain: torch.Tensor, offset: float) -> torch.Tensor:
        assert gain.shape == (x.shape[0], 1), "Captum expands the model's own arguments with the rows"
        return self.detector(x) * gain + offset


@pytest.mark.filterwarnings(LIME_WARNING)
@pytest.mark.parametrize("method", [FeatureAblation, Lime])
def test_example_index_next_to_the_models_own_arguments(method, clips):
    model = GainedDetector()
    gain = torch.tensor([[1.0], [2.0], [-1.0]])
    wrapped = FrequencyForward(model, clips)
    budget = dict(feature_mask=BANDS.unsqueeze(0), perturbations_per_eval=4)
    if method is Lime:
        budget["n_samples"] = 30
    torch.manual_seed(0)
    together = method(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=1,
        additional_forward_args=(gain, wrapped.example_index(), 0.5), **budget,  # the index anywhere
    )
    alone = each_clip_alone(method, model, clips, [1, 1, 1], args_of=lambda i: (gain[i : i + 1], 0.5), **budget)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    if method is FeatureAblation:  # removing the 440 Hz band costs gain * 10 * amplitude
        torch.testing.assert_close(together[:, SHORT_440], gain[:, 0] * 10 * amplitude_440(clips), rtol=1e-3, atol=1e-4)


def test_a_batch_without_the_example_index_raises_and_names_the_fix(classifier, clips):
    wrapped = FrequencyForward(classifier, clips)
    fix = r"additional_forward_args=wrapped\.example_index\(\)"
    with pytest.raises(ValueError, match=fix):
        wrapped(wrapped.ones())
    with pytest.raises(ValueError, match=fix):
        IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=0, n_steps=4)
    with pytest.raises(ValueError, match=fix):
        KernelShap(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=TARGETS,
                                      feature_mask=BANDS.unsqueeze(0), n_samples=6, perturbations_per_eval=3)
    with pytest.raises(ValueError, match=fix):
        infidelity(wrapped, lambda c: (c, torch.zeros_like(c)), wrapped.ones(), wrapped.ones(), target=0)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):  # an index that was not expanded with the rows
        wrapped(torch.cat([wrapped.ones()] * 2), wrapped.example_index())
    with pytest.raises(ValueError, match="2 example indices"):
        wrapped(wrapped.ones(), wrapped.example_index(), wrapped.example_index())
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        wrapped(wrapped.ones(), (wrapped.example_index() + 1).as_subclass(ExampleIndex))


def test_example_index_survives_captums_expansions():
    index = FrequencyForward(lambda x: x, torch.zeros(3, 64)).example_index()
    expanded = {
        "slice (Lime, KernelShap)": _select_example((index,), 1, 3)[0],
        "torch.cat (IG, FeatureAblation)": torch.cat([index] * 2),
        "repeat_interleave (NoiseTunnel, metrics)": index.repeat_interleave(2, dim=0),
        "deepcopy (sensitivity_max)": copy.deepcopy(index),
    }
    for how, tensor in expanded.items():
        assert isinstance(tensor, ExampleIndex), how
    assert expanded["slice (Lime, KernelShap)"].tolist() == [1] and index.dtype == torch.long


def test_rows_follow_the_index_or_a_declared_layout(detector, tone_clip):
    batch = torch.cat([tone_clip, torch.zeros_like(tone_clip)])
    wrapped = FrequencyForward(detector, batch)
    index = wrapped.example_index()
    tiled, interleaved = torch.cat([wrapped.ones()] * 3), wrapped.ones().repeat_interleave(3, dim=0)
    assert wrapped(tiled, torch.cat([index] * 3)).argmax(1).tolist() == [1, 0] * 3
    assert wrapped(interleaved, index.repeat_interleave(3)).argmax(1).tolist() == [1, 1, 1, 0, 0, 0]
    assert wrapped.waveforms(interleaved, index.repeat_interleave(3))[0].shape == (6, SAMPLE_RATE)

    # Declared layouts, for callers who know theirs; an index still decides when given.
    assert FrequencyForward(detector, batch, rows="tiled")(tiled).argmax(1).tolist() == [1, 0] * 3
    as_interleaved = FrequencyForward(detector, batch, rows="interleaved")
    assert as_interleaved(interleaved).argmax(1).tolist() == [1, 1, 1, 0, 0, 0]
    assert as_interleaved(tiled, torch.cat([index] * 3)).argmax(1).tolist() == [1, 0] * 3
    with pytest.raises(ValueError, match="multiple of the batch"):
        as_interleaved(torch.ones(3, SAMPLE_RATE // 2 + 1))
    with pytest.raises(ValueError, match="feature grid"):
        wrapped(torch.ones(2, 10), index)
    with pytest.raises(ValueError, match="'index', 'tiled' or 'interleaved'"):
        FrequencyForward(detector, batch, rows="by-example")


def test_declared_layouts_are_right_for_their_methods(classifier, clips):
    tiled = FrequencyForward(classifier, clips, rows="tiled")
    ig = IntegratedGradients(tiled).attribute(tiled.ones(), baselines=tiled.zeros(), target=TARGETS, n_steps=8)
    torch.testing.assert_close(ig, each_clip_alone(IntegratedGradients, classifier, clips, TARGETS, n_steps=8))

    def remove_first_bins(coefficients):
        keep = torch.ones_like(coefficients)
        keep[:, :200] = 0.0
        return coefficients - coefficients * keep, coefficients * keep

    attributions = torch.fft.rfft(clips).abs()
    together = infidelity(FrequencyForward(classifier, clips, rows="interleaved"), remove_first_bins,
                          torch.ones(3, F), attributions, target=TARGETS, n_perturb_samples=2)
    alone = torch.cat([
        infidelity(FrequencyForward(classifier, clips[i : i + 1]), remove_first_bins, torch.ones(1, F),
                   attributions[i : i + 1], target=TARGETS[i], n_perturb_samples=2)
        for i in range(3)
    ])
    torch.testing.assert_close(together, alone)


def test_captum_metrics_accept_freqrex(detector, tone_clip):
    explainer = FreqReX(detector)
    sens = sensitivity_max(explainer.attribute, tone_clip, perturb_radius=1e-4, n_perturb_samples=2, target=1)
    assert sens.shape == (1,) and torch.isfinite(sens).all()

    wrapped = FrequencyForward(detector, tone_clip)
    attributions = explainer.attribute(tone_clip, target=1)

    def drop_random_bins(coefficients):
        keep = (torch.rand(coefficients.shape, generator=draws) > 0.1).float()
        return coefficients - coefficients * keep, coefficients * keep

    draws = torch.Generator().manual_seed(0)
    infid = infidelity(wrapped, drop_random_bins, wrapped.ones(), attributions, target=1, n_perturb_samples=4)
    assert infid.shape == (1,) and torch.isfinite(infid).all()


def test_sets_extracted_and_certified_from_another_methods_ranking(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    ig = IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=1, n_steps=16)
    expl = FreqReX(detector).explain(tone_clip, attributions=ig)[0]
    assert expl.stopped_by == "attributions" and expl.responsibility_queries == 0
    assert expl.ranking[0] == BIN_440 and expl.sufficient.size == 1 and expl.certified
    with pytest.raises(ValueError, match="feature grid"):
        FreqReX(detector).explain(tone_clip, attributions=ig[:, :10])
