"""On-disk layout of a built dataset: one folder per task, int16 audio per split, a manifest."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["DatasetSplit", "load_split", "save_split", "write_manifest", "read_manifest", "to_int16"]

_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DatasetSplit:
    r"""One split of a built dataset, in memory.

    Attributes:
        waveforms (Tensor): ``(N, T)`` float32 waveforms in [-1, 1].
        labels (Tensor): ``(N,)`` int64 class indices.
        class_names (tuple of str): Name of each class index.
        sample_rate (int): Sample rate in Hz.
        sources (list of str): Where each example came from (file, program, seed).
    """

    waveforms: Tensor
    labels: Tensor
    class_names: Tuple[str, ...]
    sample_rate: int
    sources: List[str]


def to_int16(wave: np.ndarray) -> np.ndarray:
    r"""Float waveform in [-1, 1] to int16 (rounded, clipped).

    Args:
        wave (numpy.ndarray): Float waveform.

    Returns:
        numpy.ndarray: int16 samples.
    """
    return np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)


def save_split(task_dir: str, split: str, audio: np.ndarray, labels: Sequence[int], sources: Sequence[str]) -> None:
    r"""Write ``<task_dir>/<split>_audio.npy``, ``<split>_labels.npy`` and ``<split>_sources.json``.

    Args:
        task_dir (str): The task's folder (created if needed).
        split (str): "train" or "test".
        audio (numpy.ndarray): ``(N, T)`` int16 clips.
        labels (sequence of int): Class index of each clip.
        sources (sequence of str): Where each clip came from.
    """
    os.makedirs(task_dir, exist_ok=True)
    np.save(os.path.join(task_dir, f"{split}_audio.npy"), audio.astype(np.int16, copy=False))
    np.save(os.path.join(task_dir, f"{split}_labels.npy"), np.asarray(labels, dtype=np.int64))
    with open(os.path.join(task_dir, f"{split}_sources.json"), "w") as handle:
        json.dump(list(sources), handle, indent=0)


def write_manifest(task_dir: str, manifest: Dict[str, Any]) -> None:
    r"""Write the task's ``manifest.json``.

    Args:
        task_dir (str): The task's folder (created if needed).
        manifest (dict): Class names, sample rate, recipe, split sizes, licences.
    """
    os.makedirs(task_dir, exist_ok=True)
    with open(os.path.join(task_dir, _MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=2)


def read_manifest(task_dir: str) -> Dict[str, Any]:
    r"""The task's ``manifest.json`` as a dict.

    Args:
        task_dir (str): The task's folder.

    Returns:
        dict: The manifest.

    Raises:
        FileNotFoundError: When the dataset was not built there.
    """
    path = os.path.join(task_dir, _MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no dataset at {task_dir}: build it with scripts/build_datasets.py")
    with open(path) as handle:
        return json.load(handle)


def load_split(out_dir: str, task: str, split: str) -> DatasetSplit:
    r"""Load one split of a dataset built by ``build_<task>(out_dir)``.

    Args:
        out_dir (str): The folder given to the builder.
        task (str): "instruments", "speech" or "percussion".
        split (str): "train" or "test".

    Returns:
        DatasetSplit: The split's waveforms, labels, class names, sample rate and sources.
    """
    task_dir = os.path.join(out_dir, task)
    manifest = read_manifest(task_dir)
    audio = np.load(os.path.join(task_dir, f"{split}_audio.npy"))
    labels = np.load(os.path.join(task_dir, f"{split}_labels.npy"))
    with open(os.path.join(task_dir, f"{split}_sources.json")) as handle:
        sources = json.load(handle)
    waveforms = torch.from_numpy(audio.astype(np.float32) / 32768.0)
    return DatasetSplit(waveforms, torch.from_numpy(labels), tuple(manifest["class_names"]), int(manifest["sample_rate"]), sources)
