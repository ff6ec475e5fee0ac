"""The zoo's names, cards, weights and clips, read from the package data."""

from __future__ import annotations

import copy
import io
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Dict, List

import torch
from torch import nn

from captum_freqrex.zoo._models import LogMelCNN, WaveCNN
from captum_freqrex.zoo._types import SampleClip, ZooModel

__all__ = ["available", "load", "sample_clips", "load_clip"]

_PACKAGE = "captum_freqrex.zoo"


#: The card's "model" -> the class its "architecture" builds.
_ARCHITECTURES: Dict[str, Callable[..., nn.Module]] = {"LogMelCNN": LogMelCNN, "WaveCNN": WaveCNN}


def _trained(card: Dict[str, Any]) -> nn.Module:
    model = _ARCHITECTURES[card["model"]](**card["architecture"])
    state = torch.load(io.BytesIO(_read_bytes("weights", card["weights"])), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def _silero(card: Dict[str, Any]) -> nn.Module:
    from captum_freqrex.zoo._silero import SileroVADClassifier

    return SileroVADClassifier()


#: Zoo name -> how to build its module from its card. Order is the order of :func:`available`.
_BUILDERS: Dict[str, Callable[[Dict[str, Any]], nn.Module]] = {
    "instruments": _trained,
    "speech": _trained,
    "percussion": _trained,
    "percussion-wave": _trained,
    "silero-vad": _silero,
}


def _read_bytes(folder: str, filename: str) -> bytes:
    return resources.files(_PACKAGE).joinpath(folder).joinpath(filename).read_bytes()


def _check(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown zoo model {name!r}; available: {', '.join(available())}")


@lru_cache(maxsize=None)
def _card(name: str) -> Dict[str, Any]:
    return json.loads(_read_bytes("weights", f"{name}.json").decode("utf-8"))


def available() -> List[str]:
    r"""Names of the zoo's models.

    "silero-vad" is listed even when its optional package is missing (loading it then raises
    an ImportError saying how to install it).

    Returns:
        list of str: ``["instruments", "speech", "percussion", "percussion-wave", "silero-vad"]``
        ("percussion-wave" is the percussion task built differently: :class:`WaveCNN`).
    """
    return list(_BUILDERS)


def load(name: str) -> ZooModel:
    r"""Load a zoo model by name (offline: weights ship in the package).

    Args:
        name (str): One of :func:`available`.

    Returns:
        ZooModel: The model in eval mode with frozen parameters, its sample rate, clip length,
        class names and card.

    Raises:
        ValueError: For an unknown name (the message lists the available ones).
        ImportError: For "silero-vad" when the ``silero-vad`` package is not installed.
    """
    _check(name)
    card = _card(name)
    model = _BUILDERS[name](card).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    # Named on the module too, as its sample rate is: explanations of it name its classes
    # (nn.Module types its attributes as tensors or modules, hence the ignore).
    model.class_names = tuple(card["class_names"])  # type: ignore[assignment]
    # And whether short clips are padded, which the command line reads off the module as off any model.
    pad_short_clips = bool(card.get("pad_short_clips", True))
    model.pad_short_clips = pad_short_clips  # type: ignore[assignment]
    return ZooModel(
        name=name,
        model=model,
        sample_rate=int(card["sample_rate"]),
        num_samples=int(card["num_samples"]),
        class_names=tuple(card["class_names"]),
        info=copy.deepcopy(card),
        pad_short_clips=pad_short_clips,
    )


def _read_clip(entry: Dict[str, Any], sample_rate: int) -> SampleClip:
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover - soundfile is in the [audio] extra
        raise ImportError("reading the zoo's sample clips needs soundfile: pip install soundfile") from error
    data, rate = soundfile.read(io.BytesIO(_read_bytes("clips", entry["file"])), dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    if rate != sample_rate:
        raise RuntimeError(f"clip {entry['file']} is {rate} Hz, its card says {sample_rate} Hz")
    return SampleClip(entry["name"], torch.from_numpy(data.copy()), int(rate), entry.get("label"), entry["licence"])


def sample_clips(name: str) -> List[SampleClip]:
    r"""The held-out sample clips shipped for a zoo model, each exactly its clip length.

    Args:
        name (str): One of :func:`available`.

    Returns:
        list of SampleClip: The clips, in the order of the card's ``clips`` entry.

    Raises:
        ValueError: For an unknown name.
    """
    _check(name)
    card = _card(name)
    return [_read_clip(entry, int(card["sample_rate"])) for entry in card["clips"]]


def load_clip(name: str, index: int = 0) -> SampleClip:
    r"""One shipped sample clip of a zoo model.

    Args:
        name (str): One of :func:`available`.
        index (int, optional): Index into :func:`sample_clips`. Default: 0

    Returns:
        SampleClip: The clip.

    Raises:
        ValueError: For an unknown name.
        IndexError: For an index out of range.
    """
    _check(name)
    card = _card(name)
    entries = card["clips"]
    if not -len(entries) <= index < len(entries):
        raise IndexError(f"zoo model {name!r} ships {len(entries)} clips; index {index} is out of range")
    return _read_clip(entries[index], int(card["sample_rate"]))
