"""Few-bin synthesis: a matrix product equal to the inverse FFT, used only where it is cheaper."""

import pytest
import torch

from captum_freqrex import FeatureSpace, RfftDomain, StftDomain, linear_bands
from captum_freqrex._core.spectral.few_bins import MIN_LENGTH, few_bin_irfft, few_bin_limit
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

    assert RfftDomain().few_coefficient_limit(480_000, torch.device("cpu")) == 16
    assert Windowed().few_coefficient_limit(480_000, torch.device("cpu")) == 0
    assert StftDomain().few_coefficient_limit(480_000, torch.device("cpu")) == 0


#: Long enough for few-bin synthesis: up to 16 bins at 2**18 samples.
LONG = MIN_LENGTH
LIMIT = 16


class CountingRfft(RfftDomain):
    """The rfft domain, recording the bin count of every few-bin product it is asked for."""

    def __init__(self):
        self.products = []

    def synthesize_few(self, bins, coefficients, length, out):
        self.products.append(bins.numel())
        return super().synthesize_few(bins, coefficients, length, out)


def _spaces(case, seed):
    """A case's feature space twice: ``synthesis="reference"`` and ``"auto"`` (counting its products)."""
    torch.manual_seed(seed)
    make, baseline, kwargs = SPACES[case]
    waves, _ = format_waveforms(make())
    bases = format_baselines(baseline() if callable(baseline) else baseline, waves)
    reference = FeatureSpace(waves, bases, synthesis="reference", **kwargs)
    domain = CountingRfft()
    auto = FeatureSpace(waves, bases, domain=domain, **kwargs)
    assert auto.few_bin_limits == (LIMIT,) and reference.few_bin_limits == (0,)
    return reference, auto, domain.products


SPACES = {
    "mono, zero baseline": (lambda: torch.randn(2, LONG), None, {}),
    "mono, waveform baseline": (lambda: torch.randn(2, LONG), lambda: torch.randn(LONG), {}),
    "two channels shared": (lambda: torch.randn(2, 2, LONG), 0.1, {}),
    "two channels per channel": (lambda: torch.randn(2, 2, LONG), None, {"per_channel": True}),
    # 8-bin bands: one or two of them are few-bin products.
    "bands": (lambda: torch.randn(2, LONG), None, {"feature_mask": linear_bands(LONG, LONG // 16)}),
}


@pytest.mark.parametrize("case", sorted(SPACES))
def test_part_waveforms_of_few_bins_equal_their_inverse_transforms(case):
    fft_only, few, synthesised = _spaces(case, seed=2)
    n = few.n_features
    # Single features, narrow runs, a part split over two runs, an empty part and a wide part.
    parts = [[(0, 1)], [(3, 5)], [(1, 2), (n - 2, n)], [], [(0, n // 2)]]
    for got, expected in zip(few.part_waveforms(1, parts), fft_only.part_waveforms(1, parts)):
        assert len(got) == len(expected) == len(parts)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    # Parts of at most 16 bins are products, the others inverse FFTs.
    sizes = few.feature_sizes()
    small = [p for p in parts if sum(int(sizes[lo:hi].sum()) for lo, hi in p) <= LIMIT]
    assert len(synthesised) == len(small) >= 3 and max(synthesised) <= LIMIT


@pytest.mark.parametrize("case", sorted(SPACES))
def test_mutants_keeping_or_removing_few_bins_equal_their_inverse_transforms(case):
    fft_only, few, synthesised = _spaces(case, seed=3)
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
    assert 3 <= len(synthesised) <= 5 and max(synthesised) <= LIMIT  # never the dense row
    rows = [torch.full_like(e, float("nan")) for e in expected]
    few.mutants(1, keep, out=rows)
    for got, want in zip(rows, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
