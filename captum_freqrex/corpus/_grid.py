"""The fixed frequency-band grid that per-clip responsibility is summed into, so classes aggregate.

Clips of different lengths have different rfft bins, and a run may explain bins or bands of any
width; their responsibilities still add up on one grid of bands fixed in Hz. The grid is the
base-2 third-octave series of acoustics (IEC 61260): band centres ``1000 * 2 ** (n / 3)`` Hz, edges
a sixth of an octave either side, from the band centred at 19.7 Hz up to the one holding the
Nyquist frequency (its upper edge clipped there). Band 0 holds everything below 17.5 Hz, DC
included. At 16 kHz that is 28 bands, at 8 kHz 25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

__all__ = ["BandGrid", "band_grid"]

#: Index ``n`` of the lowest third-octave band, centred at ``1000 * 2 ** (-17 / 3)`` = 19.7 Hz.
LOWEST_BAND = -17


@dataclass(frozen=True)
class BandGrid:
    r"""Frequency bands fixed in Hz, ascending and contiguous from 0 Hz to the Nyquist frequency.

    Attributes:
        hz_low (list of float): Lower edge of each band in Hz (0 for band 0).
        hz_high (list of float): Upper edge of each band in Hz (the Nyquist frequency for the last).
        hz_centre (list of float): Centre of each band in Hz (geometric; half the upper edge for
                    band 0, which starts at 0 Hz).
    """

    hz_low: List[float]
    hz_high: List[float]
    hz_centre: List[float]

    def __len__(self) -> int:
        return len(self.hz_low)

    def band_of(self, hz: Tensor) -> Tensor:
        r"""The band index of each frequency in Hz (the Nyquist frequency joins the last band).

        Args:
            hz (Tensor): ``(...,)`` frequencies in Hz.

        Returns:
            Tensor: ``(...,)`` long band indices.
        """
        inner = torch.tensor(self.hz_low[1:], dtype=torch.float64)
        return torch.bucketize(hz.double(), inner, right=True)

    def label(self, band: int) -> str:
        r"""The band as ``"LOW-HIGH Hz"`` (whole Hz).

        Args:
            band (int): The band index.

        Returns:
            str: Its label.
        """
        return f"{self.hz_low[band]:.0f}-{self.hz_high[band]:.0f} Hz"


def band_grid(sample_rate: float) -> BandGrid:
    r"""The third-octave band grid from 0 Hz to ``sample_rate / 2``.

    Args:
        sample_rate (float): Sample rate in Hz (above 40 Hz, so that one band fits).

    Returns:
        BandGrid: The bands, ascending.
    """
    nyquist = float(sample_rate) / 2.0
    first_low = 1000.0 * 2.0 ** ((LOWEST_BAND - 0.5) / 3.0)
    if nyquist <= first_low:
        raise ValueError(f"sample_rate must be above {2 * first_low:.0f} Hz for the band grid, got {sample_rate}")
    lows, highs, centres = [0.0], [first_low], [first_low / 2.0]
    n = LOWEST_BAND
    while highs[-1] < nyquist:
        centre = 1000.0 * 2.0 ** (n / 3.0)
        low, high = highs[-1], min(1000.0 * 2.0 ** ((n + 0.5) / 3.0), nyquist)
        lows.append(low)
        highs.append(high)
        centres.append(centre if high > centre else math.sqrt(low * high))
        n += 1
    return BandGrid(lows, highs, centres)
