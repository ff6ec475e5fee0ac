"""``explain_dataset``: explain every clip of a data set into a resumable results store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex import FreqReX
from captum_freqrex._core.options import MODES
from captum_freqrex._utils.validation import as_bool
from captum_freqrex.corpus._aggregate import Aggregates, aggregate
from captum_freqrex.corpus._backends import make_backend
from captum_freqrex.corpus._explain import (
    BASELINE_KINDS, MODEL_FAILED, ClipRecord, ExplainOptions, error_record, update_digest,
)
from captum_freqrex.corpus._progress import DatasetProgress
from captum_freqrex.corpus._sources import Clip, ClipSource, clip_source
from captum_freqrex.corpus._store import DatasetChangedError, ResultStore

__all__ = ["explain_dataset", "DatasetRun", "describe_model", "ModelFailedError", "FAIL_FAST"]

#: Clips the model must fail on, with none explained yet, before a run stops (ModelFailedError):
#: a model that cannot run at all (a wrong input shape, say) is said at once, not once per clip.
FAIL_FAST = 8


class ModelFailedError(RuntimeError):
    """Explaining the first clips of a run failed every time: the model (or its input) is wrong,
    not one clip. The failures are stored (status ``"error"``) and retried by the next run."""



@dataclass
class DatasetRun:
    r"""What one call of :func:`explain_dataset` did.

    Attributes:
        store (str): The results store.
        clips (int): Clips in the data set.
        explained (int): Clips explained by this call.
        skipped (int): Clips already in the store (from an earlier, interrupted call), not redone.
        failed (int): Clips that could not be explained (unreadable, silent, or the model raised
                    on them: each clip of a failed batch is tried alone): stored with status
                    ``"error"`` and the reason, retried by the next call.
        queries (int): Model queries of this call (FreqReX's and the flip metric's; the transfer
                    targets' queries, two per target and clip with a certified sufficient set, are
                    not counted).
        seconds (float): Wall time of this call.
        backend (str): ``"local"`` or ``"ray"``.
        resumed (bool): Whether the store already held this run.
        notes (list of str): What the user should know (package versions that changed since the
                    store was started, ...).
    """

    store: str
    clips: int
    explained: int
    skipped: int
    failed: int
    queries: int
    seconds: float
    backend: str
    resumed: bool
    notes: List[str] = field(default_factory=list)

    def aggregates(self, by: str = "target") -> Aggregates:
        """The store's class-level aggregates (see :func:`~captum_freqrex.corpus.aggregate`)."""
        return aggregate(self.store, by)


def _weights_fingerprint(model: Any) -> Optional[str]:
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return None
    try:
        state = state_dict()
        if not state:
            return None  # no weights: nothing to tell two such models apart by
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(state):
            value = state[name]
            if isinstance(value, Tensor):
                update_digest(digest, value, name)
            else:
                digest.update(f"{name}{value!r}".encode())
        return digest.hexdigest()
    except Exception:  # a state_dict that is not a mapping of tensors: no fingerprint
        return None


def describe_model(
    model: Callable,
    name: Optional[str] = None,
    sample_rate: Optional[int] = None,
    num_samples: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
) -> dict:
    r"""The model's record in a store: name, type, rate, length, classes, fingerprint of its weights.

    Args:
        model (Callable): The model.
        name (str, optional): What to call it. Default: its type's name.
        sample_rate (int, optional): Its sample rate in Hz.
        num_samples (int, optional): Its input length in samples (None: any).
        class_names (sequence of str, optional): Its class names.

    Returns:
        dict: ``name``, ``type``, ``sample_rate``, ``num_samples``, ``class_names`` and
        ``fingerprint`` (a hash of ``model.state_dict()``, None for a model without weights).
    """
    kind = type(model)
    return {
        "name": name or kind.__name__,
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "sample_rate": sample_rate,
        "num_samples": num_samples,
        "class_names": None if class_names is None else [str(n) for n in class_names],
        "fingerprint": _weights_fingerprint(model),
    }


def _optional_positive(value: Any, name: str) -> Optional[int]:
    return None if value is None else _positive(value, name)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_ks(ks: Any) -> tuple:
    values = [ks] if isinstance(ks, int) else list(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in values):
        raise ValueError(f"ks must be positive integers (the top-k sizes of the flip rates), got {ks!r}")
    return tuple(sorted(set(values)))


def _check_baseline(baseline: Any) -> Any:
    if isinstance(baseline, Tensor):
        wave = baseline.detach().to("cpu", torch.float32)
        wave = wave[0] if wave.dim() == 2 and wave.shape[0] == 1 else wave
        if wave.dim() != 1:
            raise ValueError(f"a baseline waveform must be (time,), got shape {tuple(baseline.shape)}")
        return wave
    if baseline not in BASELINE_KINDS:
        raise ValueError(f"baseline must be one of {', '.join(map(repr, BASELINE_KINDS))} or a waveform, got {baseline!r}")
    return baseline


def _length(clip: Clip) -> int:
    assert clip.waveform is not None, "clips that could not be read are never batched"
    return int(clip.waveform.shape[-1])


def _model_attribute(model: Any, name: str) -> Any:
    value = getattr(model, name, None)
    return None if callable(value) else value


def _check_targets(
    transfer_to: Optional[Mapping[str, Callable]],
    factories: Optional[Mapping[str, Callable[[], Callable]]],
    rate: int,
    length: Optional[int],
    names: Optional[tuple],
) -> Dict[str, Callable]:
    """The transfer targets by name, checked against the model's rate, clip length and classes."""
    if transfer_to is None:
        targets: Dict[str, Callable] = {}
    elif not isinstance(transfer_to, Mapping):
        raise TypeError(
            f"transfer_to must be a mapping of name -> model, e.g. {{'B': model_b}}, got {type(transfer_to).__name__}"
        )
    else:
        targets = dict(transfer_to)
    for name, target in targets.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"transfer_to's names must be non-empty strings, got {name!r}")
        if not callable(target):
            raise TypeError(f"transfer_to[{name!r}] must be callable, got {type(target).__name__}")
        for attribute, value in (("sample_rate", rate), ("num_samples", length), ("class_names", names)):
            own = _model_attribute(target, attribute)
            if attribute == "class_names" and own is not None:
                own = tuple(str(n) for n in own)
            if own is not None and value is not None and own != value:
                raise ValueError(
                    f"transfer_to[{name!r}] has {attribute} {own!r} but the model {value!r}: a transfer target "
                    "must take the model's clips and decide over its classes"
                )
    unknown = sorted(set(factories or {}) - set(targets))
    if unknown:
        raise ValueError(f"transfer_factories names {unknown} that are not in transfer_to ({sorted(targets)})")
    return targets


def _targets_record(targets: Mapping[str, Callable]) -> Optional[List[Dict[str, Any]]]:
    """The transfer targets in the run's settings: name, type and weights of each, in order."""
    if not targets:
        return None
    keys = ("name", "type", "fingerprint")
    return [{k: v for k, v in describe_model(target, name).items() if k in keys} for name, target in targets.items()]


def explain_dataset(
    model: Union[Callable, FreqReX],
    source: Union[str, "os.PathLike[str]", ClipSource, Iterable[Any]],
    store: Union[str, "os.PathLike[str]"],
    *,
    sample_rate: Optional[int] = None,
    num_samples: Optional[int] = None,
    pad_short_clips: Optional[bool] = None,
    class_names: Optional[Sequence[str]] = None,
    model_name: Optional[str] = None,
    split: str = "test",
    seed: int = 0,
    mode: str = "sufficient",
    search: Any = None,
    max_queries: int = 1000,
    n_samples: int = 8,
    bands: Optional[int] = None,
    feature_mask: Optional[Tensor] = None,
    baseline: Union[str, Tensor] = "silence",
    decision: Any = None,
    output: Any = None,
    ks: Sequence[int] = (1, 5),
    rows_per_call: Optional[int] = None,
    batch_size: int = 1,
    backend: str = "local",
    workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    num_cpus: Optional[int] = None,
    model_factory: Optional[Callable[[], Callable]] = None,
    transfer_to: Optional[Mapping[str, Callable]] = None,
    transfer_factories: Optional[Mapping[str, Callable[[], Callable]]] = None,
    show_progress: bool = False,
) -> DatasetRun:
    r"""Explain every clip of a data set with FreqReX into one SQLite results store; resumable.

    Each clip gets a full explanation (responsibility, the three certified sets) of the model's
    decision, its responsibility summed into a fixed third-octave band grid, and flip results:
    the top-k features of its FreqReX ranking removed (replaced by the baseline), for each k in
    ``ks``, with :func:`captum_freqrex.metrics.perturbation_success_rate`. Each clip is written
    in one transaction. Calling again with the same arguments resumes: clips already stored are
    skipped (after checking that their samples did not change), clips stored with status
    ``"error"`` are retried. With ``transfer_to``, each clip's certified sufficient signal
    (``Explanation.waveform("sufficient")``) and the clip itself are fed to each target model
    (:func:`captum_freqrex.metrics.transferability`), and the target's decisions on both are
    stored. Class-level aggregates come from :func:`aggregate`.

    Takes the model, or a configured :class:`~captum_freqrex.FreqReX` and the keywords of its
    :meth:`~captum_freqrex.FreqReX.explain` (``seed``, ``mode``, ``max_queries``, ``n_samples``),
    as Captum's ``NoiseTunnel(method)`` takes a method: ``explain_dataset(FreqReX(model,
    search="adaptive"), source, store, max_queries=500)`` is ``explain_dataset(model, source, store,
    search="adaptive", max_queries=500)``, clip for clip, and the two resume each other's stores.

    Args:
        model (Callable or FreqReX): Maps waveforms ``(B, T)`` to scores ``(B, K)`` (as for
                    :class:`FreqReX`); or a FreqReX, whose model is explained with its ``search``,
                    ``decision`` and ``output`` (then not passed as keywords; its ``domain`` and
                    ``synthesis`` must be the defaults). Ray workers get its model (or
                    ``model_factory``'s) and rebuild it.
        source (str, path, ClipSource or iterable): A folder of audio files (recursive; label =
                    top-level folder), a CSV (``path``, optional ``label``), a folder built by
                    ``scripts/build_datasets.py`` (with ``manifest.json``), or an iterable such as a
                    ``DataLoader`` of ``(B, T)`` waveforms or ``(waveforms, labels)`` batches.
        store (str or path): The ``.sqlite`` file to write (created if missing). An existing
                    file must be a store of this very run (same settings, model and data set);
                    anything else is refused, never overwritten.
        sample_rate (int, optional): The model's rate in Hz; files are resampled to it.
                    Default: ``model.sample_rate``; one of the two is required.
        num_samples (int, optional): The model's input length; clips are cropped from the start
                    or zero-padded at the end to it. Default: ``model.num_samples``, else each
                    clip keeps its length.
        pad_short_clips (bool, optional): Zero-pad clips shorter than ``num_samples``; False keeps
                    them at their own length, for a model that takes any length (the zoo's
                    instruments model). Default: ``model.pad_short_clips``, else True
        class_names (sequence of str, optional): Names of the classes. Default:
                    ``model.class_names``, else class indices.
        model_name (str, optional): The model's name in the store. Default: its type's name.
        split (str, optional): The split of a built data set. Default: ``"test"``
        seed (int, optional): FreqReX's seed (the same for every clip; also seeds noise
                    baselines). Default: 0
        mode (str, optional): ``"sufficient"`` or ``"necessary"``. Default: ``"sufficient"``
        search (str or search object, optional): FreqReX's ``search`` (a convenience: it
                    builds the FreqReX). Default: None
        max_queries (int, optional): FreqReX's query budget per clip. Default: 1000
        n_samples (int, optional): FreqReX's ``n_samples``. Default: 8
        bands (int, optional): Explain this many log-spaced bands instead of rfft bins.
                    Default: None (bins)
        feature_mask (Tensor, optional): A ``(freq,)`` feature mask (for clips of one length);
                    not with ``bands``. Default: None
        baseline (str or Tensor, optional): What removed frequencies become: ``"silence"``,
                    ``"noise"`` or ``"pink"`` (seeded, 30 dB below each clip's RMS), or a
                    ``(time,)`` waveform at the model's rate (cropped / zero-padded to each clip).
                    Default: ``"silence"``
        decision (optional): FreqReX's ``decision``. Default: None
        output (optional): FreqReX's ``output`` selector. Default: None
        ks (sequence of int, optional): Top-k sizes of the flip results. Default: ``(1, 5)``
        rows_per_call (int, optional): Most waveforms per model call (FreqReX's
                    ``perturbations_per_eval``, and the metrics' ``max_examples_per_batch``); 1
                    for a model that takes one waveform at a time. Not a setting of the run: the
                    results do not depend on it (for a model whose rows do not depend on each
                    other). Default: chosen from the available memory
        batch_size (int, optional): Clips per ``explain`` call (and per Ray task); results do not
                    depend on it. An interruption loses the batch in flight. Default: 1
        backend (str, optional): ``"local"`` (this machine) or ``"ray"``. Default: ``"local"``
        workers (int, optional): Local worker processes, each explaining whole clips with one torch
                    thread; the driver alone writes the store, in the clips' order, and the rows
                    are those of one worker. 1 explains in this process (with torch's threads).
                    Not with Ray (whose workers also get one thread each). Default: the usable
                    cores (``os.sched_getaffinity``)
        ray_address (str, optional): Address of a running Ray cluster; None starts a local one
                    for this call (with ``num_cpus``) and stops it after. Default: None
        num_cpus (int, optional): CPUs of a local Ray cluster. Default: all
        model_factory (Callable, optional): For Ray and local workers: a picklable function that
                    builds the model in each worker, for models that cannot be pickled
                    (TorchScript). Default: None
        transfer_to (Mapping of str to Callable, optional): Transfer targets by name: other models
                    of the task (the same classes in the same order, the model's rate and clip
                    length), each fed every clip's certified sufficient signal and the clip. They
                    are part of the run's settings. Default: None
        transfer_factories (Mapping of str to Callable, optional): For workers: picklable functions
                    that build some of the targets (by name) in each worker. Default: None
        show_progress (bool, optional): A progress line with ETA on stderr (a tqdm bar, a widget in
                    a notebook with ipywidgets). Default: False

    Returns:
        DatasetRun: Counts, queries and time of this call.

    Raises:
        StoreMismatchError: When ``store`` holds a run with other settings, another model or
                    other transfer targets (key ``"transfer_to"``).
        DatasetChangedError: When the data set differs from the one the store's run explained.
        StoreError: When ``store`` is not a results store.
        ImportError: For ``backend="ray"`` without Ray (``pip install captum_freqrex[ray]``).
        ModelFailedError: When the model raised on each of the first :data:`FAIL_FAST` clips and
                    none was explained (a model that raises on some clips only gets those stored
                    as failed, with the exception, and the others explained).
        KeyboardInterrupt: Passed on after the clips finished so far are safely stored.
    """
    start = time.perf_counter()
    model, search, decision, output = _configured(model, search, decision, output)
    rate, length, names = _model_facts(model, sample_rate, num_samples, class_names)
    options = _explain_options(
        rate, names, seed=seed, mode=mode, search=search, max_queries=max_queries, n_samples=n_samples, bands=bands,
        feature_mask=feature_mask, baseline=baseline, decision=decision, output=output, ks=ks,
        rows_per_call=rows_per_call,
    )
    targets = _check_targets(transfer_to, transfer_factories, rate, length, names)
    batch_size = _positive(batch_size, "batch_size")
    executor = make_backend(backend, model, options, address=ray_address, num_cpus=num_cpus,
                            model_factory=model_factory, targets=targets or None,
                            target_factories=transfer_factories, workers=_optional_positive(workers, "workers"))
    pad = _pad_short_clips(model, pad_short_clips)
    clips = clip_source(source, rate, length, split=split, class_names=names, pad_short_clips=pad)
    record = describe_model(model, model_name, rate, length, names)
    settings = {**options.record(), "transfer_to": _targets_record(targets)}
    if not pad:  # recorded only where clips are not padded: the stores of padded runs stay as they were
        settings["pad_short_clips"] = False
    run = _run_store(os.fspath(store), settings, record, options, clips, executor, batch_size, show_progress)
    run.seconds = time.perf_counter() - start
    return run


def _run_store(
    path: str, settings: Dict[str, Any], record: dict, options: ExplainOptions, clips: ClipSource, executor: Any,
    batch_size: int, show_progress: bool,
) -> DatasetRun:
    """Begin (or resume) the store's run, explain the clips it lacks, check that none went missing."""
    from captum_freqrex._explanation import package_versions

    with ResultStore(path) as results:
        resumed = results.run_record() is not None
        ids = clips.ids()
        notes = results.begin(settings, record, package_versions(), clips.kind, clips.description, ids,
                              options.grid())
        stored = results.stored_clips()
        done_before = {k for k, (status, _) in stored.items() if status == "explained"}
        bar = None
        if show_progress:
            bar = DatasetProgress(_remaining(clips, ids, done_before), len(done_before), options.max_queries, None)
        feeder = _Feeder(results, executor, bar)
        with executor, (bar if bar is not None else contextlib.nullcontext()):
            seen = _explain_new(feeder, clips, stored, batch_size, path)
        gone = sorted(done_before - seen)
        if ids is None and gone:
            raise DatasetChangedError(
                path, f"{len(gone)} stored clips were not in the data set this time (e.g. {', '.join(gone[:3])})", gone
            )
    counts = feeder.counts
    return DatasetRun(
        path, counts["seen"], counts["explained"], len(done_before & seen), counts["failed"], counts["queries"],
        0.0, executor.name, resumed, notes,
    )


#: The built-in searches by the name that ``search=`` takes; None (the default) first.
_SEARCH_NAMES = (None, "refinement", "interleaved", "energy", "adaptive", "band_screening")


def _search_option(search: Any) -> Any:
    """A search object that is a built-in with its default knobs, as its name; else the object.

    A FreqReX holds its search as an object; the store records ``search=`` as given, so the same
    search configured either way is recorded (and resumes) the same way.
    """
    for name in _SEARCH_NAMES:
        if repr(FreqReX(_no_model, search=name).search) == repr(search):
            return name
    return search


def _no_model(*args: Any) -> None:
    """Stands in for a model where only FreqReX's resolution of ``search=`` is wanted."""


def _configured(model: Any, search: Any, decision: Any, output: Any) -> Tuple[Callable, Any, Any, Any]:
    """A FreqReX passed as ``model``: its model, and its search, decision and output (the keywords' place)."""
    if not isinstance(model, FreqReX):
        return model, search, decision, output
    given = [name for name, value in (("search", search), ("decision", decision), ("output", output)) if value is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} given both to explain_dataset and to the FreqReX passed as model: configure "
            "them on the FreqReX"
        )
    if model.domain is not None or model.synthesis != "auto":
        raise ValueError(
            "explain_dataset explains rfft bins (or bands=) with the default synthesis: pass a FreqReX without "
            "domain= and synthesis="
        )
    return model.forward_func, _search_option(model.search), model.decision, model.output


def _model_facts(
    model: Callable, sample_rate: Optional[int], num_samples: Optional[int], class_names: Optional[Sequence[str]]
) -> Tuple[int, Optional[int], Optional[Tuple[str, ...]]]:
    """The model's rate (required), input length and class names: given, else its attributes."""
    rate = sample_rate if sample_rate is not None else _model_attribute(model, "sample_rate")
    if rate is None:
        raise ValueError("the model's sample rate is unknown: pass sample_rate=... (in Hz)")
    rate = _positive(rate, "sample_rate")
    length = num_samples if num_samples is not None else _model_attribute(model, "num_samples")
    length = _optional_positive(length, "num_samples")
    names = class_names if class_names is not None else _model_attribute(model, "class_names")
    return rate, length, None if names is None else tuple(str(n) for n in names)


def _pad_short_clips(model: Callable, given: Optional[bool]) -> bool:
    """Whether clips shorter than the model's length are zero-padded: given, else the model's attribute, else True."""
    value = given if given is not None else _model_attribute(model, "pad_short_clips")
    return True if value is None else as_bool(value, "pad_short_clips")


def _explain_options(
    rate: int, names: Optional[Tuple[str, ...]], *, seed: int, mode: str, search: Any, max_queries: int,
    n_samples: int, bands: Optional[int], feature_mask: Optional[Tensor], baseline: Any, decision: Any, output: Any,
    ks: Sequence[int], rows_per_call: Optional[int] = None,
) -> ExplainOptions:
    """The run's options, checked."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if bands is not None and feature_mask is not None:
        raise ValueError("pass bands= or feature_mask=, not both")
    return ExplainOptions(
        sample_rate=rate, seed=int(seed), mode=mode, search=search, max_queries=_positive(max_queries, "max_queries"),
        n_samples=_positive(n_samples, "n_samples"), bands=_optional_positive(bands, "bands"),
        feature_mask=feature_mask, baseline=_check_baseline(baseline), decision=decision, output=output,
        ks=_check_ks(ks), class_names=names, rows_per_call=_optional_positive(rows_per_call, "rows_per_call"),
    )


def _remaining(clips: ClipSource, ids: Optional[Sequence[str]], done_before: set) -> Optional[int]:
    """How many clips are left to explain, when the source can say."""
    if ids is not None:
        return len(ids) - len(done_before & set(ids))
    try:
        return len(clips) - len(done_before)
    except TypeError:
        return None


class _Feeder:
    """Hands batches to the backend and writes every finished clip to the store (and the progress line)."""

    def __init__(self, results: ResultStore, executor: Any, bar: Optional[DatasetProgress]) -> None:
        self.results, self.executor, self.bar = results, executor, bar
        self.counts = {"explained": 0, "failed": 0, "queries": 0, "seen": 0, "model_failed": 0}

    def write(self, records: List[ClipRecord]) -> None:
        for clip_record in records:
            self.results.write(clip_record)
            if clip_record.clip["status"] == "error":
                self.model_failed(clip_record.clip)
                continue
            self.counts["explained"] += 1
            self.counts["queries"] += clip_record.queries
        if self.bar is not None:
            self.bar.finished(self.counts["explained"], self.counts["queries"])

    def model_failed(self, row: Dict[str, Any]) -> None:
        # A clip the explanation raised on (explain_clips stored why); FAIL_FAST of them before
        # any clip is explained stop the run: the model cannot run, not one clip is bad.
        self.counts["failed"] += 1
        if not self.counts["explained"] and row["error"].startswith(MODEL_FAILED):
            self.counts["model_failed"] += 1
            if self.counts["model_failed"] >= FAIL_FAST:
                raise ModelFailedError(
                    f"explaining the first {FAIL_FAST} clips failed every time (and no clip was explained), "
                    f"e.g. {row['clip_id']}: {row['error']}; fix the model or its input (the failures are "
                    "stored and retried when the run is repeated)"
                )

    def failed(self, clip: Clip) -> None:
        self.results.write(error_record(clip))
        self.counts["failed"] += 1

    def dispatch(self, batch: List[Clip]) -> None:
        if self.bar is not None:
            self.bar.start_batch(len(batch))
        self.executor.submit(batch)
        for records in self.executor.completed(block=self.executor.full()):
            self.write(records)

    def drain(self) -> None:
        for records in self.executor.drain():
            self.write(records)


def _explain_new(feeder: _Feeder, clips: ClipSource, stored: Dict[str, Any], batch_size: int, path: str) -> set:
    """Explain the clips not yet in the store, in batches of one length; the ids of every clip seen."""
    seen = set()
    batch: List[Clip] = []
    for clip in clips:
        seen.add(clip.clip_id)
        feeder.counts["seen"] += 1
        state = stored.get(clip.clip_id)
        if state is not None and state[0] == "explained":
            if clip.fingerprint != state[1]:
                raise DatasetChangedError(
                    path, f"the samples of clip {clip.clip_id} differ from the ones it was explained on", [clip.clip_id]
                )
            continue
        if clip.error is not None:
            feeder.failed(clip)
            continue
        if batch and (len(batch) >= batch_size or _length(batch[0]) != _length(clip)):
            feeder.dispatch(batch)
            batch = []
        batch.append(clip)
    if batch:
        feeder.dispatch(batch)
    feeder.drain()
    return seen
