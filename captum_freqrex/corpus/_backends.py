"""Where a run's clips are explained: in this process, in local worker processes, or on Ray.

Every backend runs :func:`~captum_freqrex.corpus._explain.explain_clips` on batches of clips and
hands back its rows; only the driver (the process that called ``explain_dataset``) writes the store,
so no worker ever opens the SQLite file. Every clip is explained with the same options and seed
wherever it runs, so a worker (local or Ray) stores exactly the rows this process does. Workers
run torch with one thread each: one worker per core beats one process with a thread per core,
whose threads mostly wait on each other for these small model calls.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from captum_freqrex.corpus._explain import ClipRecord, ExplainOptions, explain_clips

__all__ = ["BACKENDS", "LocalBackend", "ProcessBackend", "RayBackend", "make_backend", "usable_cores"]

BACKENDS = ("local", "ray")

RAY_MISSING = "backend='ray' needs Ray: pip install captum_freqrex[ray] (or pip install 'ray>=2.9')"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


class LocalBackend:
    """Explains each batch when it is submitted, in this process (``workers=1``)."""

    name = "local"
    reports_queries = True  # FreqReX's model calls update the progress line

    def __init__(self, model: Callable, options: ExplainOptions,
                 targets: Optional[Mapping[str, Callable]] = None) -> None:
        self.model, self.options, self.targets = model, options, targets
        self._done: List[List[ClipRecord]] = []

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done = []

    def full(self) -> bool:
        return False

    def submit(self, clips: Sequence[Any]) -> None:
        self._done.append(explain_clips(self.model, clips, self.options, self.targets))

    def completed(self, block: bool = False) -> Iterator[List[ClipRecord]]:
        while self._done:
            yield self._done.pop(0)

    def drain(self) -> Iterator[List[ClipRecord]]:
        return self.completed()


#: Models built by the factories in this (worker) process, by run token: built once per worker.
_WORKER_MODELS: Dict[str, Tuple[Optional[Callable], Dict[str, Callable]]] = {}


def _one_thread() -> None:
    """One torch thread in this worker: a worker per core, not a thread per core per worker."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _worker_explain(token: str, shipped: Tuple[Any, Dict[str, Any]], factory: Optional[Callable],
                    target_factories: Mapping[str, Callable], clips: Sequence[Any],
                    options: ExplainOptions) -> List[ClipRecord]:
    """The task of a worker (Ray's or a local one): explain one batch with one torch thread. The
    model and the transfer targets come pickled, or (those with a factory) are built by their
    factory, once per worker."""
    _one_thread()
    model, targets = shipped
    if factory is not None or target_factories:
        if token not in _WORKER_MODELS:
            _WORKER_MODELS.clear()
            _WORKER_MODELS[token] = (
                None if factory is None else factory(), {name: make() for name, make in target_factories.items()}
            )
        built, built_targets = _WORKER_MODELS[token]
        model = built if factory is not None else model
        targets = {name: built_targets[name] if name in built_targets else target for name, target in targets.items()}
    return explain_clips(model, clips, options, targets or None)


#: A local worker's run: token, the unpickled (model, targets), factory and target factories.
_POOL_RUN: List[Any] = []


def _pool_start(token: str, shipped: bytes, factory: Optional[Callable],
                target_factories: Mapping[str, Callable]) -> None:
    """Start a local worker: Ctrl-C is the driver's to handle (it stops the workers), one torch
    thread, and the run's models unpickled once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _one_thread()
    _POOL_RUN[:] = [token, pickle.loads(shipped), factory, target_factories]


def _pool_explain(clips: Sequence[Any], options: ExplainOptions) -> List[ClipRecord]:
    """A local worker's task: the Ray task's work, with the models its start received."""
    token, shipped, factory, target_factories = _POOL_RUN
    return _worker_explain(token, shipped, factory, target_factories, clips, options)


def _unpicklable(error: Exception) -> ValueError:
    return ValueError(
        f"the model cannot be sent to workers ({type(error).__name__}: {error}); pass "
        "model_factory= (transfer_factories= for transfer targets), picklable functions that build the "
        "models in each worker, or workers=1 (local)"
    )


class ProcessBackend:
    r"""Explains batches in ``workers`` local processes (spawned), one torch thread each.

    The model and the transfer targets are pickled once and unpickled once in each worker (or,
    those with a factory, built there), as for Ray. Results come back in the order the batches
    were submitted, so the store is written in the order one process writes it. The workers
    ignore Ctrl-C: the driver gets it, stops them and keeps what it has stored.

    Args:
        model (Callable): The model.
        options (ExplainOptions): The run's options.
        workers (int): Worker processes (one is :class:`LocalBackend`).
        model_factory (Callable, optional): Builds the model in each worker instead of pickling it.
        targets (Mapping of str to Callable, optional): Transfer targets.
        target_factories (Mapping of str to Callable, optional): Build those targets in each worker.
    """

    name = "local"
    reports_queries = False

    def __init__(
        self,
        model: Callable,
        options: ExplainOptions,
        workers: int,
        model_factory: Optional[Callable[[], Callable]] = None,
        targets: Optional[Mapping[str, Callable]] = None,
        target_factories: Optional[Mapping[str, Callable[[], Callable]]] = None,
    ) -> None:
        self.model, self.options, self.workers, self.factory = model, options, workers, model_factory
        self.targets, self.target_factories = dict(targets or {}), dict(target_factories or {})
        self.max_in_flight = 2 * workers
        self.pending: Deque[Any] = deque()
        self.pool: Any = None

    def __enter__(self) -> "ProcessBackend":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        shipped_model = None if self.factory is not None else self.model
        targets = {name: None if name in self.target_factories else t for name, t in self.targets.items()}
        try:
            shipped = pickle.dumps((shipped_model, targets))
            pickle.dumps((self.factory, self.target_factories))
        except Exception as error:
            raise _unpicklable(error) from None
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_pool_start,
            initargs=(uuid.uuid4().hex, shipped, self.factory, self.target_factories),
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        if exc and exc[0] is not None:  # Ctrl-C or a failure: stop the clips in flight now
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def full(self) -> bool:
        return len(self.pending) >= self.max_in_flight

    def submit(self, clips: Sequence[Any]) -> None:
        self.pending.append(self.pool.submit(_pool_explain, list(clips), self.options))

    def completed(self, block: bool = False) -> Iterator[List[ClipRecord]]:
        """The finished batches at the head of the queue, in submission order (when ``block``,
        waiting for the head)."""
        while self.pending and (block or self.pending[0].done()):
            block = False
            yield self.pending.popleft().result()

    def drain(self) -> Iterator[List[ClipRecord]]:
        while self.pending:
            yield from self.completed(block=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError(RAY_MISSING) from error
    return ray


def _driver_path() -> str:
    """This process's module search path, for workers of a local cluster (so they import what we do)."""
    entries = [os.path.abspath(p or os.curdir) for p in sys.path]
    return os.pathsep.join(dict.fromkeys(entries))


class RayBackend:
    r"""Explains batches as Ray tasks, a few in flight per CPU.

    Args:
        model (Callable): The model, pickled once into Ray's object store (unless ``model_factory``).
        options (ExplainOptions): The run's options.
        address (str, optional): A running cluster (``"ray://host:10001"``, ``"host:6379"`` or
                    ``"auto"``); None starts a local cluster for this run and stops it after.
                    A Ray session already initialised in this process is used as it is.
        num_cpus (int, optional): CPUs of the local cluster. Default: all of this machine's.
        model_factory (Callable, optional): Builds the model in each worker instead (for models
                    that cannot be pickled, e.g. TorchScript). Default: None
        targets (Mapping of str to Callable, optional): Transfer targets, pickled like the model
                    (unless they have a factory). Default: None
        target_factories (Mapping of str to Callable, optional): Build those targets in each
                    worker instead. Default: None
    """

    name = "ray"
    reports_queries = False

    def __init__(
        self,
        model: Callable,
        options: ExplainOptions,
        address: Optional[str] = None,
        num_cpus: Optional[int] = None,
        model_factory: Optional[Callable[[], Callable]] = None,
        targets: Optional[Mapping[str, Callable]] = None,
        target_factories: Optional[Mapping[str, Callable[[], Callable]]] = None,
    ) -> None:
        self.ray = _import_ray()
        self.model, self.options, self.factory = model, options, model_factory
        self.targets, self.target_factories = dict(targets or {}), dict(target_factories or {})
        self.address, self.num_cpus = address, num_cpus
        self.started = False
        self.pending: List[Any] = []
        self.token = uuid.uuid4().hex

    def __enter__(self) -> "RayBackend":
        import logging

        ray = self.ray
        if not ray.is_initialized():
            kwargs: Dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": _driver_path()}}
            else:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self.started = True
        try:
            self.task = ray.remote(num_cpus=1)(_worker_explain)
            shipped = None if self.factory is not None else self.model
            targets = {name: None if name in self.target_factories else t for name, t in self.targets.items()}
            self.model_ref = ray.put((shipped, targets))
        except Exception as error:
            self.__exit__(None, None, None)
            raise _unpicklable(error) from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max(2, 2 * cpus)
        return self

    def __exit__(self, *exc: Any) -> None:
        for ref in self.pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is going away
                pass
        self.pending = []
        if self.started:
            self.ray.shutdown()
            self.started = False

    def full(self) -> bool:
        return len(self.pending) >= self.max_in_flight

    def submit(self, clips: Sequence[Any]) -> None:
        self.pending.append(self.task.remote(self.token, self.model_ref, self.factory, self.target_factories,
                                             list(clips), self.options))

    def completed(self, block: bool = False) -> Iterator[List[ClipRecord]]:
        if not self.pending:
            return
        ready, self.pending = self.ray.wait(self.pending, num_returns=1 if block else len(self.pending),
                                            timeout=None if block else 0)
        for ref in ready:
            yield self.ray.get(ref)

    def drain(self) -> Iterator[List[ClipRecord]]:
        while self.pending:
            yield from self.completed(block=True)


def make_backend(
    name: str,
    model: Callable,
    options: ExplainOptions,
    *,
    address: Optional[str] = None,
    num_cpus: Optional[int] = None,
    model_factory: Optional[Callable[[], Callable]] = None,
    targets: Optional[Mapping[str, Callable]] = None,
    target_factories: Optional[Mapping[str, Callable[[], Callable]]] = None,
    workers: Optional[int] = None,
) -> Any:
    r"""The backend called ``name`` (``"local"`` or ``"ray"``), not yet entered.

    ``"local"`` with ``workers`` processes (default: :func:`usable_cores`): one is this process
    (:class:`LocalBackend`), more are :class:`ProcessBackend`.

    Raises:
        ValueError: For an unknown name, Ray options with the local backend, or ``workers``
                    with Ray.
        ImportError: For ``"ray"`` without Ray installed (naming the ``ray`` extra).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("ray_address is for backend='ray'; pass backend='ray' too")
        count = usable_cores() if workers is None else workers
        if count == 1:
            return LocalBackend(model, options, targets)
        return ProcessBackend(model, options, count, model_factory, targets, target_factories)
    if workers is not None:
        raise ValueError("workers is for backend='local'; a local Ray cluster takes num_cpus (one worker per CPU)")
    return RayBackend(model, options, address, num_cpus, model_factory, targets, target_factories)
