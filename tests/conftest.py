"""Shared fixtures: known-answer signals and models (see known_models.py)."""

import pytest
import torch

from known_models import SAMPLE_RATE, ToneClassifier, ToneDetector, tone


@pytest.fixture
def tone_clip() -> torch.Tensor:
    """1 s at 8 kHz: 440 Hz (decisive for ToneDetector([440])), 1 kHz and 2.5 kHz distractors, noise."""
    g = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.randn(SAMPLE_RATE, generator=g)
    return (tone(440) + 0.5 * tone(1000) + 0.3 * tone(2500) + noise).unsqueeze(0)


@pytest.fixture
def detector() -> ToneDetector:
    return ToneDetector([440], threshold=0.5)


@pytest.fixture
def classifier() -> ToneClassifier:
    return ToneClassifier([440, 1000, 2500])
