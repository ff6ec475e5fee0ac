"""Plots draw what the explanation holds, on the axes the arguments ask for."""

import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from captum_freqrex import Explanation, FreqReX, StftDomain  # noqa: E402
from captum_freqrex.plotting import (  # noqa: E402
    plot_explanation_spectrograms,
    plot_responsibility,
    plot_spectrograms,
)
from known_models import SAMPLE_RATE, ToneDetector, bin_of, tone  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def rfft_explanation(detector, tone_clip):
    return FreqReX(detector).explain(tone_clip, max_queries=200)[0]


def _late_tone_explanation():
    half = SAMPLE_RATE // 2
    clip = torch.cat([torch.zeros(half), tone(1000, 0.5)]) + 0.3 * tone(300)

    def late_tone(x):
        energy = torch.fft.rfft(x[:, -half:]).abs()[:, bin_of(1000, half)] / (half / 2)
        return torch.stack([0.5 - energy, energy - 0.5], 1)

    return FreqReX(late_tone, domain=StftDomain(n_fft=256, hop_length=64)).explain(
        clip.unsqueeze(0), max_queries=200
    )[0]


def test_responsibility_plot_marks_each_set_at_its_bins_on_a_log_axis(rfft_explanation):
    fig = plot_responsibility(rfft_explanation, sample_rate=SAMPLE_RATE)
    top, bottom = fig.axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    sufficient = rfft_explanation.sufficient
    assert f"sufficient ({sufficient.size})" in labels
    marked = {c.get_label(): c for c in top.collections}
    points = marked[f"sufficient ({sufficient.size})"].get_offsets()
    hz_440 = bin_of(440, SAMPLE_RATE) * SAMPLE_RATE / SAMPLE_RATE  # 1 s clip: 1 Hz per bin
    assert [float(x) for x in points[:, 0]] == [hz_440]
    assert bottom.get_xlabel() == "frequency (Hz)" and bottom.get_xscale() == "symlog"  # log by default
    assert bottom.get_xlim() == (0.0, SAMPLE_RATE / 2)
    assert plot_responsibility(rfft_explanation, sample_rate=SAMPLE_RATE, log_frequency=False).axes[1].get_xscale() == "linear"
    assert plot_responsibility(rfft_explanation).axes[1].get_xlabel() == "rfft bin"


@pytest.mark.parametrize("log_frequency", [True, False])
def test_long_spectra_are_drawn_as_their_envelope_with_every_peak(detector, log_frequency):
    from captum_freqrex.plotting import DISPLAY_POINTS

    g = torch.Generator().manual_seed(0)
    clip = (tone(440, 3.0) + 0.05 * torch.randn(3 * SAMPLE_RATE, generator=g)).unsqueeze(0)  # 12,001 bins
    expl = FreqReX(detector).explain(clip, max_queries=200)[0]
    top, bottom = plot_responsibility(expl, sample_rate=SAMPLE_RATE, log_frequency=log_frequency).axes
    spectrum_db = 20 * torch.log10(torch.fft.rfft(clip[0]).abs() + 1e-9)
    (spectrum,) = top.get_lines()
    (total,) = bottom.get_lines()
    # The peaks stay: the responsibility's exactly, the spectrum's up to the resynthesised clip's rounding.
    for line, full, tolerance in ((spectrum, spectrum_db, 1e-3), (total, expl.responsibility.double(), 0.0)):
        x, y = line.get_xdata(), line.get_ydata()
        assert len(x) <= DISPLAY_POINTS + 64 < full.numel()  # thinned
        assert abs(float(y.max()) - float(full.max())) <= tolerance
    x, y = spectrum.get_xdata(), spectrum.get_ydata()
    assert abs(float(x[y.argmax()]) - 440.0) < 3.0  # at the tone, within a column's width
    band = top.collections[0].get_paths()[0].vertices[:, 1]  # the min-max band reaches the lowest bin too
    assert band.min() == pytest.approx(float(spectrum_db.min()), abs=1e-3)  # (resynthesised clip)


def test_low_frequencies_get_room_on_the_log_axis(rfft_explanation):
    # The demo's sufficient set sits below 110 Hz: on a linear 0-4 kHz axis that is 3% of the
    # width; on the default axis 110 Hz is past a third of it.
    ax = plot_responsibility(rfft_explanation, sample_rate=SAMPLE_RATE).axes[1]
    to_pixels = ax.transData.transform
    left, right = to_pixels((0.0, 0.0))[0], to_pixels((SAMPLE_RATE / 2, 0.0))[0]
    assert (to_pixels((110.0, 0.0))[0] - left) / (right - left) > 1 / 3


def test_per_channel_rfft_grids_are_drawn_as_spectra_not_stft_grids():
    g = torch.Generator().manual_seed(0)
    n = SAMPLE_RATE // 4  # 0.25 s: 440 Hz still sits on a bin
    channels = torch.stack([tone(440, 0.25) * (c + 1) / 10 + 0.01 * torch.randn(n, generator=g) for c in range(10)])
    expl = FreqReX(ToneDetector([440], 0.5)).explain(channels.unsqueeze(0), per_channel=True, max_queries=200)[0]
    assert expl.responsibility.shape == (10, n // 2 + 1)  # 10 > 8 rows, as an STFT grid would have
    fig = plot_responsibility(expl, sample_rate=SAMPLE_RATE)
    top, bottom = fig.axes
    assert not any(type(c).__name__ == "QuadMesh" for ax in fig.axes for c in ax.collections)
    assert bottom.get_xlabel() == "frequency (Hz)"
    assert [line.get_label() for line in bottom.get_lines()] == [f"channel {c}" for c in range(10)]


def test_stft_plot_draws_the_responsibility_over_the_clips_spectrogram():
    explanation = _late_tone_explanation()
    fig = plot_responsibility(explanation, sample_rate=SAMPLE_RATE)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog" and ax.get_ylabel() == "frequency (Hz)"
    background, overlay = [c for c in ax.collections if type(c).__name__ == "QuadMesh"]
    grid = explanation.responsibility
    assert background.get_array().size == overlay.get_array().size == grid.numel()
    # The background is the clip's own STFT magnitude, on the explanation's cells, in dB.
    spectrum = StftDomain(n_fft=256, hop_length=64).analyze(explanation.original_waveform()).abs()
    expected = 20 * torch.log10(spectrum.double() + 1e-9)
    assert torch.allclose(torch.as_tensor(background.get_array().data).reshape(grid.shape), expected, atol=1e-6)
    # The overlay is the responsibility, transparent where it is zero.
    shown = overlay.get_array()
    assert bool((shown.mask.reshape(grid.shape) == (grid <= 0).numpy()).all())
    assert ax.get_ylim()[1] >= SAMPLE_RATE / 2 - 1
    assert plot_responsibility(explanation, log_frequency=False).axes[0].get_yscale() == "linear"


def test_tuple_explanations_are_refused_with_the_fix(detector, tone_clip):
    explanation = FreqReX(lambda a, b: detector(a + b)).explain((tone_clip, tone_clip), max_queries=200)[0]
    with pytest.raises(ValueError, match="single-tensor"):
        plot_responsibility(explanation)


def test_a_loaded_explanation_without_inputs_still_plots_its_responsibility(rfft_explanation, tmp_path):
    loaded = Explanation.load(rfft_explanation.save(str(tmp_path / "e.pt")))
    fig = plot_responsibility(loaded, sample_rate=SAMPLE_RATE)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "responsibility"


def test_spectrograms_share_one_colour_scale_or_each_its_own():
    signals = {"loud": tone(440), "quiet": 0.001 * tone(440)}
    fig = plot_spectrograms(signals, SAMPLE_RATE, n_fft=256)
    limits = [c.get_clim() for ax in fig.axes for c in ax.collections]
    assert len(fig.axes) == 2 and len(set(limits)) == 1
    assert [ax.get_title() for ax in fig.axes] == ["loud", "quiet"]
    assert all(ax.get_yscale() == "symlog" for ax in fig.axes)
    own = plot_spectrograms(signals, SAMPLE_RATE, n_fft=256, shared_scale=False)
    (loud,), (quiet,) = [ax.collections for ax in own.axes]
    assert loud.get_clim()[1] - quiet.get_clim()[1] == pytest.approx(60.0, abs=0.5)  # -60 dB, its own top


def _panel_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title() and ax.get_title() != "sets"]


def test_explanation_spectrograms_have_no_black_or_duplicate_panels(tmp_path):
    clip = (tone(440) + 1e-3 * tone(100)).unsqueeze(0)  # a 100 Hz set 60 dB below the clip decides
    expl = FreqReX(ToneDetector([100], threshold=5e-4)).explain(clip, max_queries=200)[0]
    fig = plot_explanation_spectrograms(expl, SAMPLE_RATE)
    titles = _panel_titles(fig)
    assert len(titles) == len(set(titles))
    panels = [ax for ax in fig.axes if ax.get_title() and ax.get_title() != "sets"]
    for ax in panels:
        assert ax.get_yscale() == "symlog"
    # Sets with the same features share a panel: here sufficient = sufficient & necessary.
    if torch.equal(expl.sufficient.mask, expl.sufficient_necessary.mask):
        assert any(t.startswith("sufficient = sufficient & necessary") for t in titles)
    assert sum("kept alone" in t for t in titles) == len({tuple(s.mask.tolist()) for s in expl.sets.values()})
    quiet = next(ax for ax in panels if "kept alone" in ax.get_title())
    (mesh,) = quiet.collections
    values = torch.as_tensor(mesh.get_array().data)
    low, high = mesh.get_clim()
    assert high == pytest.approx(float(values.max()))  # scaled to its own peak: not black
    assert "-60 dB vs the clip" in quiet.get_title() or "-59 dB vs the clip" in quiet.get_title()
    # The original panel draws the set's frequency over the spectrogram.
    original = panels[0]
    assert 100.0 in [line.get_ydata()[0] for line in original.get_lines()]
    fig.savefig(tmp_path / "spectrograms.png")


def test_a_set_holding_every_feature_gets_no_panel_of_its_own(rfft_explanation):
    rfft_explanation.complete.mask = torch.ones_like(rfft_explanation.complete.mask)
    titles = _panel_titles(plot_explanation_spectrograms(rfft_explanation, SAMPLE_RATE))
    assert not any(t.startswith("complete kept alone") for t in titles)
    assert "(= complete set: every feature)" in titles[0]


def test_stft_explanation_spectrograms_overlay_the_cells():
    explanation = _late_tone_explanation()
    fig = plot_explanation_spectrograms(explanation, SAMPLE_RATE)
    first = fig.axes[0]
    assert "responsibility of each cell" in first.get_title()
    meshes = [c for c in first.collections if type(c).__name__ == "QuadMesh"]
    assert len(meshes) == 2 and meshes[1].get_array().size == explanation.responsibility.numel()
