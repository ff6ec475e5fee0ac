"""Example-model zoo: small audio classifiers with shipped weights and held-out sample clips.

Everything is offline: weights, model cards and clips are package data; loading a trained model
needs only torch (the log-mel front-end is plain torch with its filterbank in the state dict; the
waveform model's filters are ordinary convolution weights).

* ``"instruments"`` — instrument family of 30 s clips at 16 kHz (9 families, FluidR3_GM renders).
* ``"speech"`` — spoken language of 3 s clips at 16 kHz (en, es, fr, it, ru; Asterisk prompts).
* ``"percussion"`` — drum-sound type of 1 s clips at 16 kHz (kick, snare, hi-hat, cymbal, tom).
* ``"percussion-wave"`` — the same task built differently: a learned filterbank on the raw
  waveform and a 1-D CNN (:class:`WaveCNN`, no Fourier transform), for transferability checks.
* ``"silero-vad"`` — the third-party Silero VAD as a clip-level [no_speech, speech] classifier
  (optional: needs ``pip install silero-vad``).

Besides them, :func:`demo_model_and_clip` gives a synthetic known-answer classifier (the loudest of
three notes) and a 3 s chord, with no weights at all: the docs' examples and ``freqrex demo``
without the zoo use it.

Example::

    from captum_freqrex import zoo
    m = zoo.load("instruments")
    clip = zoo.load_clip("instruments", 0)
    logits = m.model(clip.waveform.unsqueeze(0))      # (1, len(m.class_names))

See ``captum_freqrex/zoo/README.md`` for data recipes, accuracies and licences.
"""

from captum_freqrex._demo import demo_model_and_clip
from captum_freqrex.zoo._models import LogMel, LogMelCNN, WaveCNN
from captum_freqrex.zoo._registry import available, load, load_clip, sample_clips
from captum_freqrex.zoo._silero import SileroVADClassifier
from captum_freqrex.zoo._types import SampleClip, ZooModel

__all__ = [
    "available",
    "load",
    "sample_clips",
    "load_clip",
    "demo_model_and_clip",
    "ZooModel",
    "SampleClip",
    "LogMelCNN",
    "LogMel",
    "WaveCNN",
    "SileroVADClassifier",
]
