"""Few-bin synthesis: a matrix product equal to the inverse FFT, used only where it is cheaper."""

import pytest
import torch

from captum_freqrex import FeatureSpace, RfftDomain, StftDomain, linear_bands
from captum_freqrex._core import domains as domains_module
from captum_freqrex._core.few_bins import MIN_LENGTH, few_bin_irfft, few_bin_limit
from captum_freqrex._utils.validation import format_baselines, format_waveforms


def _dense(bins, coefficients, length):
    spectrum = torch.zeros(coefficients.shape[0], length // 2 + 1, dtype=coefficients.dtype)
    spectrum[:, bins] = coefficients
    return torch.fft.irfft(spectrum, n=length)


@pytest.mark.parametrize("length", [96, 105, 480_000])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_few_bin_irfft_equals_the_inverse_fft(length, dtype):
    torch.manual_seed(0)
    nyquist = length // 2
    # DC and (even lengths) Nyquist carry imaginary parts that irfft ignores; the top bins test
    # that phases stay exact where k * n is large.
    bins = torch.tensor([0, 1, 7, nyquist - 1, nyquist])
    coefficients = torch.randn(3, bins.numel(), dtype=dtype)
    expected = _dense(bins, coefficients, length)
    got = few_bin_irfft(bins, coefficients, length)
    assert got.dtype == expected.dtype and got.shape == (3, length)
    scale = expected.abs().max()
    tolerance = 1e-5 if dtype == torch.complex64 else 1e-12
    torch.testing.assert_close(got / scale, expected / scale, atol=tolerance, rtol=0)


def test_few_bin_irfft_writes_into_out_and_handles_no_bins():
    torch.manual_seed(1)
    bins, coefficients = torch.tensor([3, 10]), torch.randn(2, 2, dtype=torch.complex64)
    out = torch.full((2, 96), float("nan"))
    assert few_bin_irfft(bins, coefficients, 96, out=out) is out
    torch.testing.assert_close(out, _dense(bins, coefficients, 96), atol=1e-6, rtol=0)
    empty = few_bin_irfft(torch.zeros(0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.complex64), 96)
    assert torch.equal(empty, torch.zeros(2, 96))


def test_few_bin_limit_grows_with_length_and_is_off_where_the_fft_is_cheap():
    cpu = torch.device("cpu")
    assert few_bin_limit(MIN_LENGTH - 2, cpu) == 0  # short clips: the FFT is cheap
    assert few_bin_limit(480_000, cpu) == 16
    assert few_bin_limit(960_000, cpu) == 32
    assert few_bin_limit(9_600_000, cpu) == 128  # capped
    assert few_bin_limit(480_000, torch.device("cuda")) == 0  # GPUs have cheap FFTs
    assert few_bin_limit(524_287, cpu) == 0  # a prime length has no factor pair


def test_only_the_plain_rfft_domain_uses_few_bin_synthesis():
    class Windowed(RfftDomain):
        def synthesize(self, coefficients, length):
            return super().synthesize(coefficients, length) * 0.5

    assert RfftDomain()._few_bin_limit(480_000, torch.device("cpu")) == 16
    assert Windowed()._few_bin_limit(480_000, torch.device("cpu")) == 0
    assert StftDomain()._few_bin_limit(480_000, torch.device("cpu")) == 0


def _spaces(monkeypatch, case, seed):
    """A case's feature space twice: with inverse FFTs only, and with a few-bin limit of 6.

    Also returns the list of bin counts that went through few-bin synthesis.
    """
    torch.manual_seed(seed)
    make, baseline, kwargs = SPACES[case]
    waves, _ = format_waveforms(make())
    fft_only = FeatureSpace(waves, format_baselines(baseline, waves), **kwargs)
    monkeypatch.setattr(domains_module, "few_bin_limit", lambda length, device: 6)
    few = FeatureSpace(waves, format_baselines(baseline, waves), **kwargs)
    synthesised = []

    def counted(bins, coefficients, length, out=None):
        synthesised.append(bins.numel())
        return few_bin_irfft(bins, coefficients, length, out=out)

    monkeypatch.setattr(domains_module, "few_bin_irfft", counted)
    return fft_only, few, synthesised


SPACES = {
    "mono, zero baseline": (lambda: torch.randn(2, 96), None, {}),
    "mono, waveform baseline": (lambda: torch.randn(2, 96), torch.randn(96), {}),
    "two channels shared": (lambda: torch.randn(2, 2, 96), 0.1, {}),
    "two channels per channel": (lambda: torch.randn(2, 2, 96), None, {"per_channel": True}),
    "bands": (lambda: torch.randn(2, 96), None, {"feature_mask": linear_bands(96, 24)}),
}


@pytest.mark.parametrize("case", sorted(SPACES))
def test_part_waveforms_of_few_bins_equal_their_inverse_transforms(monkeypatch, case):
    fft_only, few, synthesised = _spaces(monkeypatch, case, seed=2)
    n = few.n_features
    # Single features, narrow runs, a part split over two runs, an empty part and a wide part.
    parts = [[(0, 1)], [(3, 5)], [(1, 2), (n - 2, n)], [], [(0, n // 2)]]
    for got, expected in zip(few.part_waveforms(1, parts), fft_only.part_waveforms(1, parts)):
        assert len(got) == len(expected) == len(parts)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    # Parts of at most 6 bins are products, the others inverse FFTs.
    sizes = few.feature_sizes()
    small = [p for p in parts if sum(int(sizes[lo:hi].sum()) for lo, hi in p) <= 6]
    assert len(synthesised) == len(small) >= 3 and max(synthesised) <= 6


@pytest.mark.parametrize("case", sorted(SPACES))
def test_mutants_keeping_or_removing_few_bins_equal_their_inverse_transforms(monkeypatch, case):
    fft_only, few, synthesised = _spaces(monkeypatch, case, seed=3)
    n = few.n_features
    keep = torch.zeros(6, n)
    keep[0, [2, 9]] = 1.0  # keeps two features
    keep[1] = 1.0
    keep[1, [0, 5, n - 1]] = 0.0  # removes three
    keep[2, 4] = 0.5  # keeps half of one
    keep[3] = torch.rand(n)  # dense: the inverse FFT
    keep[5] = 1.0  # keeps everything: the input
    expected = fft_only.mutants(1, keep)
    for got, want in zip(few.mutants(1, keep), expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert 3 <= len(synthesised) <= 5 and max(synthesised) <= 6  # never the dense row
    rows = [torch.full_like(e, float("nan")) for e in expected]
    few.mutants(1, keep, out=rows)
    for got, want in zip(rows, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
