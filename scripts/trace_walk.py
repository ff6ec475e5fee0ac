"""Trace FreqReX.attribute and explain on one clip: how often control enters each module of the package.

A module is *entered* when a function of it is called from code of another module (callbacks and
closures count at every call). Issue 21's check of the composition root: `freqrex.py` should be
entered once per call, the stages doing their work without calling back into it.

Usage::

    .venv/bin/python scripts/trace_walk.py            # a 1 s tone through a two-tone detector
"""

from __future__ import annotations

import collections
import sys
from typing import Callable, Counter

import torch
from torch import nn

from captum_freqrex import FreqReX

SAMPLE_RATE = 8000


class TwoTones(nn.Module):
    """Class 1 when 440 Hz and 1 kHz are both present, class 0 otherwise (logits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        spectrum = torch.fft.rfft(x).abs() / (n / 2)
        present = spectrum[:, [round(440 * n / SAMPLE_RATE), round(1000 * n / SAMPLE_RATE)]].min(dim=1).values
        return torch.stack([torch.full_like(present, 0.2), present], dim=1) * 10


def module_entries(call: Callable[[], object]) -> Counter[str]:
    """How often each ``captum_freqrex`` module is entered from another module during ``call()``."""
    entries: Counter[str] = collections.Counter()

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("captum_freqrex"):
            return
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if caller != module:
            entries[module] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return entries


def main() -> None:
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = (torch.sin(2 * torch.pi * 440 * t) + torch.sin(2 * torch.pi * 1000 * t)).unsqueeze(0)
    for name in ("attribute", "explain"):
        explainer = FreqReX(TwoTones())
        method = getattr(explainer, name)
        entries = module_entries(lambda method=method: method(x, max_queries=200))
        print(f"{name}: {sum(entries.values())} module entries, captum_freqrex._core.freqrex "
              f"{entries['captum_freqrex._core.freqrex']}")
        for module, count in entries.most_common():
            print(f"  {count:5d} {module}")


if __name__ == "__main__":
    main()
