"""What clips a data-set run explains: audio folders, CSV lists, built data sets, DataLoaders.

Every source yields :class:`Clip` objects in a fixed order, each with a stable id (what a resumed
run matches stored results by) and a fingerprint of its samples (how it notices a changed data
set). Audio is read with :func:`captum_freqrex.audio.load_audio`, exactly as ``freqrex explain``
reads a file: mixed down to mono, resampled to the model's rate, cropped from the start or
zero-padded at the end to the model's length when the model has one.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ["AUDIO_EXTENSIONS", "Clip", "ClipSource", "SourceError", "clip_source", "fingerprint"]

#: File endings a folder source reads as audio (what libsndfile reads; others are ignored).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")


class SourceError(ValueError):
    """A data set that cannot be read as given: no such path, no audio, a malformed CSV, no such split."""


def fingerprint(waveform: Tensor) -> str:
    r"""A content hash of a waveform: its length and float32 samples (BLAKE2b, 32 hex digits).

    Args:
        waveform (Tensor): ``(time,)`` samples, as the model is given them.

    Returns:
        str: The hash; equal exactly when the samples are equal.
    """
    data = waveform.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(tuple(data.shape)).encode())
    digest.update(data.numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Clip:
    r"""One clip of a data set, fitted to the model.

    Attributes:
        clip_id (str): Stable id: the path relative to the folder (or as written in the CSV),
                    ``SPLIT:INDEX`` for a built data set, the running index for an iterable.
        position (int): Place in the source's order, from 0.
        source (str): Where it came from: the absolute file path, or a built data set's source
                    note, or ``"iterable"``.
        label (str, optional): Its label (folder name, CSV ``label``, class name), or None.
        waveform (Tensor, optional): ``(time,)`` float32 mono samples at the model's rate; None
                    when the clip could not be read (see ``error``).
        fingerprint (str, optional): :func:`fingerprint` of ``waveform``.
        notes (list of str): What was done to fit the model (resampled, mixed down, cropped, padded).
        error (str, optional): Why the clip cannot be explained (unreadable, silent, ...).
    """

    clip_id: str
    position: int
    source: str
    label: Optional[str]
    waveform: Optional[Tensor]
    fingerprint: Optional[str]
    notes: List[str] = field(default_factory=list)
    error: Optional[str] = None


class ClipSource:
    r"""Base of the sources: an ordered, re-iterable collection of clips.

    Attributes:
        kind (str): ``"folder"``, ``"csv"``, ``"built"`` or ``"iterable"``.
        description (str): What it is, for the run record (path, split).
        pad_short (bool): Whether a clip shorter than the model's ``num_samples`` is zero-padded to
                    it; False keeps it at its own length (a model that takes any length; see
                    :func:`captum_freqrex.audio.fit_length`). Set by :func:`clip_source`.
    """

    kind = "source"
    description = ""
    pad_short = True

    def ids(self) -> Optional[List[str]]:
        """Every clip id in order, known before reading any audio; None when only reading tells."""
        return None

    def __len__(self) -> int:
        ids = self.ids()
        if ids is None:
            raise TypeError(f"a {self.kind} source does not know its length before it is read")
        return len(ids)

    def clips(self) -> Iterator[Clip]:
        """The clips in order."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Clip]:
        return self.clips()


class _FileSource(ClipSource):
    """Audio files with ids and labels, read lazily and fitted to the model."""

    def __init__(
        self,
        entries: Sequence[Tuple[str, str, Optional[str]]],
        sample_rate: int,
        num_samples: Optional[int],
        description: str,
    ) -> None:
        self.entries = list(entries)  # (clip id, absolute path, label)
        self.sample_rate, self.num_samples = sample_rate, num_samples
        self.description = description

    def ids(self) -> List[str]:
        return [clip_id for clip_id, _, _ in self.entries]

    def clips(self) -> Iterator[Clip]:
        from captum_freqrex.audio import AudioError, load_audio

        for position, (clip_id, path, label) in enumerate(self.entries):
            try:
                audio = load_audio(path, self.sample_rate, self.num_samples, pad_short=self.pad_short)
            except AudioError as error:
                yield Clip(clip_id, position, path, label, None, None, error=str(error))
                continue
            wave = audio.waveform
            yield Clip(clip_id, position, path, label, wave, fingerprint(wave), list(audio.notes))


class FolderSource(_FileSource):
    r"""Every audio file under a folder, recursively, in sorted order of relative path.

    The label of a file is the name of the top-level folder it sits in under the root (the
    ``torchvision.datasets.ImageFolder`` convention: ``root/dog/a.wav`` and ``root/dog/x/b.wav``
    are both ``dog``); files directly in the root have no label. Files whose ending is not in
    :data:`AUDIO_EXTENSIONS`, and hidden files and folders, are skipped.
    """

    kind = "folder"

    def __init__(self, root: str, sample_rate: int, num_samples: Optional[int]) -> None:
        entries = []
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
            for name in files:
                if name.startswith(".") or not name.lower().endswith(AUDIO_EXTENSIONS):
                    continue
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                parts = relative.split("/")
                entries.append((relative, os.path.abspath(path), parts[0] if len(parts) > 1 else None))
        entries.sort(key=lambda entry: entry[0])
        if not entries:
            raise SourceError(
                f"{root} holds no audio files (looked for {', '.join(AUDIO_EXTENSIONS)} in it and its subfolders)"
            )
        super().__init__(entries, sample_rate, num_samples, os.path.abspath(root))


def _cell(value: Any) -> str:
    """A CSV cell, stripped (a row longer than the header puts a list under the None key)."""
    if isinstance(value, list):
        value = ",".join(value)
    return (value or "").strip()


def _file_key(path: str) -> Any:
    """What tells two paths of one file apart from two files: the device and inode of an existing file
    (symbolic and hard links, ``./`` and ``..`` included), else the resolved path."""
    try:
        info = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (info.st_dev, info.st_ino)


class CsvSource(_FileSource):
    r"""The files listed in a CSV: column ``path`` (relative paths from the CSV's folder), optional ``label``.

    The clip id is the path as written in the CSV (with ``/`` separators); rows are explained in
    the CSV's order. An empty ``label`` cell is no label. A file listed twice, under any spelling
    (``in.wav`` and ``./in.wav``, a symbolic or hard link to it), is refused.
    """

    kind = "csv"

    def __init__(self, csv_path: str, sample_rate: int, num_samples: Optional[int]) -> None:
        base = os.path.dirname(os.path.abspath(csv_path))
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = [c.strip() for c in reader.fieldnames or []]
                rows = [{(k or "").strip(): _cell(v) for k, v in row.items()} for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise SourceError(f"cannot read {csv_path} as a CSV list of clips ({error})") from None
        if "path" not in columns:
            found = ", ".join(columns) if columns else "none (the file is empty)"
            raise SourceError(f"{csv_path} has no 'path' column (columns: {found}); the first row must name "
                              "the columns, e.g. 'path,label'")
        entries: List[Tuple[str, str, Optional[str]]] = []
        ids: Dict[str, int] = {}
        seen: Dict[Any, Tuple[int, str]] = {}
        missing: List[str] = []
        for line, row in enumerate(rows, start=2):
            written = row.get("path", "")
            if not written:
                raise SourceError(f"{csv_path}, line {line}: empty path")
            clip_id = written.replace("\\", "/")
            if clip_id in ids:
                raise SourceError(f"{csv_path}, line {line}: {written} is listed twice (first on line {ids[clip_id]})")
            ids[clip_id] = line
            path = written if os.path.isabs(written) else os.path.join(base, written)
            if not os.path.isfile(path):
                missing.append(f"{written} (line {line})")
            key = _file_key(path)
            if key in seen:
                first_line, first = seen[key]
                raise SourceError(
                    f"{csv_path}, line {line}: {written} is the same file as {first} (line {first_line}): a clip "
                    "listed twice would be explained and counted twice; list each file once"
                )
            seen[key] = (line, written)
            entries.append((clip_id, os.path.abspath(path), row.get("label") or None))
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise SourceError(
                f"{csv_path} lists files that do not exist: {', '.join(missing[:3])}{more} (relative paths are "
                f"read from the CSV's folder {base})"
            )
        if not entries:
            raise SourceError(f"{csv_path} lists no files")
        super().__init__(entries, sample_rate, num_samples, os.path.abspath(csv_path))


class BuiltSource(ClipSource):
    r"""One split of a data set built by ``scripts/build_datasets.py`` (a folder with ``manifest.json``).

    Read with :func:`captum_freqrex.datasets.load_split`; clip ids are ``SPLIT:INDEX``, labels the
    manifest's class names. Clips are resampled to the model's rate and fitted to its length
    like audio files.
    """

    kind = "built"

    def __init__(self, task_dir: str, split: str, sample_rate: int, num_samples: Optional[int]) -> None:
        from captum_freqrex.datasets import load_split

        task_dir = os.path.abspath(task_dir)
        if not os.path.isfile(os.path.join(task_dir, f"{split}_audio.npy")):
            present = sorted(n[: -len("_audio.npy")] for n in os.listdir(task_dir) if n.endswith("_audio.npy"))
            raise SourceError(f"{task_dir} has no split {split!r} (splits: {', '.join(present) or 'none'})")
        self.split = load_split(os.path.dirname(task_dir), os.path.basename(task_dir), split)
        self.split_name, self.sample_rate, self.num_samples = split, sample_rate, num_samples
        self.description = f"{task_dir} (split {split})"

    def ids(self) -> List[str]:
        return [f"{self.split_name}:{i}" for i in range(self.split.waveforms.shape[0])]

    def clips(self) -> Iterator[Clip]:
        data = self.split
        for position, clip_id in enumerate(self.ids()):
            label = data.class_names[int(data.labels[position])]
            wave, notes = _fit(data.waveforms[position], data.sample_rate, self.sample_rate, self.num_samples, self.pad_short)
            error = "silent: there is nothing to explain" if wave.abs().max() == 0 else None
            yield Clip(clip_id, position, str(data.sources[position]), label, None if error else wave,
                       None if error else fingerprint(wave), notes, error)


class IterableSource(ClipSource):
    r"""Waveforms from any iterable: a ``torch.utils.data.DataLoader``, a list, a generator.

    Items are ``(time,)`` waveforms, ``(batch, time)`` batches, or pairs ``(waveforms, labels)``
    of either (labels: tensors, ints or strings, one per waveform; an int label becomes the
    class name when the model's class names are known). Clip ids are running indices ``"0"``,
    ``"1"``, ...: a resumed run needs the iterable to yield the same clips in the same order
    (no shuffling). Waveforms are taken at the model's rate; with ``num_samples`` set they are
    cropped or zero-padded like audio files.
    """

    kind = "iterable"

    def __init__(
        self,
        items: Iterable[Any],
        sample_rate: int,
        num_samples: Optional[int],
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        self.items, self.sample_rate, self.num_samples = items, sample_rate, num_samples
        self.class_names = list(class_names) if class_names else None
        self.description = f"an iterable of type {type(items).__name__}"
        length = None
        batch_size = getattr(items, "batch_size", None)
        dataset = getattr(items, "dataset", None)
        if dataset is not None and batch_size is not None:
            try:
                length = len(dataset)
            except TypeError:
                length = None
        self.known_length = length

    def __len__(self) -> int:
        if self.known_length is None:
            raise TypeError("this iterable does not know its length")
        return self.known_length

    def _label(self, value: Any) -> Optional[str]:
        if value is None:
            return None
        if isinstance(value, Tensor):
            value = value.item() if value.numel() == 1 else value.tolist()
        if isinstance(value, int) and not isinstance(value, bool) and self.class_names:
            if 0 <= value < len(self.class_names):
                return self.class_names[value]
        return str(value)

    def clips(self) -> Iterator[Clip]:
        position = 0
        for item in self.items:
            waves, labels = _split_item(item, position)
            for index in range(waves.shape[0]):
                label = None if labels is None else self._label(labels[index])
                wave, notes = _fit(waves[index], self.sample_rate, self.sample_rate, self.num_samples, self.pad_short)
                clip_id = str(position)
                if not torch.isfinite(wave).all():
                    yield Clip(clip_id, position, "iterable", label, None, None, error="contains NaN or Inf samples")
                elif wave.abs().max() == 0:
                    yield Clip(clip_id, position, "iterable", label, None, None, error="silent: nothing to explain")
                else:
                    yield Clip(clip_id, position, "iterable", label, wave, fingerprint(wave), notes)
                position += 1


def _split_item(item: Any, position: int) -> Tuple[Tensor, Any]:
    """An item of an iterable as ``(batch, time)`` waveforms and per-waveform labels (or None)."""
    labels = None
    if isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item[0], (int, float)):
        item, labels = item
    waves = torch.as_tensor(item)
    if not waves.is_floating_point():
        raise TypeError(
            f"item at clip {position}: expected float waveforms, got a {waves.dtype} tensor (convert int16 audio "
            "with x.float() / 32768)"
        )
    if waves.dim() == 1:
        waves = waves.unsqueeze(0)
        labels = None if labels is None else [labels]
    if waves.dim() != 2:
        raise ValueError(
            f"item at clip {position}: expected (time,) or (batch, time) mono waveforms, got shape "
            f"{tuple(waves.shape)}; mix channels down first (x.mean(dim=1))"
        )
    if labels is not None:
        if isinstance(labels, (str, int)):
            labels = [labels]
        if isinstance(labels, Tensor) and labels.dim() == 0:
            labels = labels.unsqueeze(0)
        if len(labels) != waves.shape[0]:
            raise ValueError(f"item at clip {position}: {waves.shape[0]} waveforms but {len(labels)} labels")
    return waves.detach().to("cpu", torch.float32), labels


def _fit(
    wave: Tensor, rate: int, model_rate: int, num_samples: Optional[int], pad_short: bool = True
) -> Tuple[Tensor, List[str]]:
    """Resample ``(time,)`` to the model's rate and crop / pad it to its length, as ``load_audio`` does."""
    from captum_freqrex.audio import fit_length, resample

    notes = []
    if rate != model_rate:
        wave = resample(wave, rate, model_rate)
        notes.append(f"resampled {rate} Hz -> {model_rate} Hz")
    if num_samples is not None:
        wave, fitted = fit_length(wave, num_samples, model_rate, pad_short)
        notes += fitted
    return wave.float().contiguous(), notes


def clip_source(
    source: Union[str, "os.PathLike[str]", ClipSource, Iterable[Any]],
    sample_rate: int,
    num_samples: Optional[int] = None,
    *,
    split: str = "test",
    class_names: Optional[Sequence[str]] = None,
    pad_short_clips: bool = True,
) -> ClipSource:
    r"""The clip source for a path or an iterable.

    Args:
        source (str, path, ClipSource or iterable): A folder of audio files (a folder with
                    ``manifest.json`` is a built data set), a CSV file, a :class:`ClipSource`, or an
                    iterable of waveforms (see :class:`IterableSource`).
        sample_rate (int): The model's sample rate in Hz.
        num_samples (int, optional): The model's clip length in samples; None keeps each clip's length.
                    Default: None
        split (str, optional): The split of a built data set. Default: ``"test"``
        class_names (sequence of str, optional): Names of the model's classes (int labels of an
                    iterable become names). Default: None
        pad_short_clips (bool, optional): Zero-pad clips shorter than ``num_samples`` to it; False
                    keeps them at their own length (:attr:`ClipSource.pad_short`; a source passed
                    in keeps its own). Default: True

    Returns:
        ClipSource: The source.

    Raises:
        SourceError: For a path that does not exist, a folder without audio, a CSV without a
                    ``path`` column or listing missing files.
    """
    if isinstance(source, ClipSource):
        return source
    built = _new_source(source, sample_rate, num_samples, split, class_names)
    built.pad_short = bool(pad_short_clips)
    return built


def _new_source(
    source: Union[str, "os.PathLike[str]", Iterable[Any]], sample_rate: int, num_samples: Optional[int], split: str,
    class_names: Optional[Sequence[str]],
) -> ClipSource:
    # The source :func:`clip_source` builds for a path or an iterable.
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "manifest.json")):
                return BuiltSource(path, split, sample_rate, num_samples)
            built = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n, "manifest.json")))
            if built:
                raise SourceError(
                    f"{path} holds built data sets ({', '.join(built)}), not audio files: pass one of them, "
                    f"e.g. {os.path.join(path, built[0])}"
                )
            return FolderSource(path, sample_rate, num_samples)
        if os.path.isfile(path):
            if not path.lower().endswith(".csv"):
                raise SourceError(f"{path} is a file but not a .csv list of clips; pass a folder of audio or a CSV")
            return CsvSource(path, sample_rate, num_samples)
        raise SourceError(f"no such folder or CSV file: {path}")
    if isinstance(source, Tensor):
        source = [source]
    return IterableSource(source, sample_rate, num_samples, class_names)
