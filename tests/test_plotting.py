"""Plots draw what the explanation holds, on the axes the arguments ask for."""

import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from captum_freqrex import FreqReX, StftDomain  # noqa: E402
from captum_freqrex.plotting import plot_responsibility, plot_spectrograms  # noqa: E402
from known_models import SAMPLE_RATE, bin_of, tone  # noqa: E402


@pytest.fixture
def rfft_explanation(detector, tone_clip):
    return FreqReX(detector).explain(tone_clip, max_queries=200)[0]


def test_responsibility_plot_marks_each_set_at_its_bins(rfft_explanation):
    fig = plot_responsibility(rfft_explanation, sample_rate=SAMPLE_RATE)
    top, bottom = fig.axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    sufficient = rfft_explanation.sufficient
    assert f"sufficient ({sufficient.size})" in labels
    marked = {label: coll for label, coll in zip(labels[1:], top.collections)}
    points = marked[f"sufficient ({sufficient.size})"].get_offsets()
    hz_440 = bin_of(440, SAMPLE_RATE) * SAMPLE_RATE / (2 * (rfft_explanation.responsibility.shape[-1] - 1))
    assert any(abs(x - hz_440) < 1e-6 for x in points[:, 0])
    assert bottom.get_xlabel() == "frequency (Hz)" and bottom.get_xscale() == "linear"
    assert plot_responsibility(rfft_explanation, log_frequency=True).axes[1].get_xscale() == "symlog"
    assert plot_responsibility(rfft_explanation).axes[1].get_xlabel() == "rfft bin"


def test_stft_plot_draws_the_grid_and_honours_log_frequency():
    half = SAMPLE_RATE // 2
    clip = torch.cat([torch.zeros(half), tone(1000, 0.5)])

    def late_tone(x):
        energy = torch.fft.rfft(x[:, -half:]).abs()[:, bin_of(1000, half)] / (half / 2)
        return torch.stack([0.5 - energy, energy - 0.5], 1)

    explanation = FreqReX(late_tone, domain=StftDomain(n_fft=256, hop_length=64)).explain(
        clip.unsqueeze(0), max_queries=200
    )[0]
    fig = plot_responsibility(explanation, sample_rate=SAMPLE_RATE, log_frequency=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog" and ax.get_ylabel() == "frequency (Hz)"
    mesh = ax.collections[0]
    assert mesh.get_array().size == explanation.responsibility.numel()
    assert ax.get_ylim()[1] >= SAMPLE_RATE / 2 - 1
    assert plot_responsibility(explanation).axes[0].get_yscale() == "linear"


def test_tuple_explanations_are_refused_with_the_fix(detector, tone_clip):
    explanation = FreqReX(lambda a, b: detector(a + b)).explain((tone_clip, tone_clip), max_queries=200)[0]
    with pytest.raises(ValueError, match="single-tensor"):
        plot_responsibility(explanation)


def test_spectrograms_share_one_colour_scale():
    signals = {"loud": tone(440), "quiet": 0.01 * tone(440)}
    fig = plot_spectrograms(signals, SAMPLE_RATE, n_fft=256)
    limits = {im.get_clim() for ax in fig.axes for im in ax.get_images()}
    assert len(fig.axes) == 2 and len(limits) == 1
    assert [ax.get_title() for ax in fig.axes] == ["loud", "quiet"]
