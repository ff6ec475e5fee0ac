"""Where a run's clips are explained: in this process, or on a Ray cluster.

Both backends run :func:`~captum_freqrex.corpus._explain.explain_clips` on batches of clips and
hand back its rows; only the driver (the process that called ``explain_dataset``) writes the store,
so no worker ever opens the SQLite file. Every clip is explained with the same options and seed
wherever it runs, so a Ray run stores exactly the rows a local run does.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from captum_freqrex.corpus._explain import ClipRecord, ExplainOptions, explain_clips

__all__ = ["BACKENDS", "LocalBackend", "RayBackend", "make_backend"]

BACKENDS = ("local", "ray")

RAY_MISSING = "backend='ray' needs Ray: pip install captum_freqrex[ray] (or pip install 'ray>=2.9')"


class LocalBackend:
    """Explains each batch when it is submitted, in this process."""

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


def _worker_explain(token: str, shipped: Tuple[Any, Dict[str, Any]], factory: Optional[Callable],
                    target_factories: Mapping[str, Callable], clips: Sequence[Any],
                    options: ExplainOptions) -> List[ClipRecord]:
    """The Ray task: explain one batch in a worker. The model and the transfer targets come
    pickled, or (those with a factory) are built by their factory, once per worker."""
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
            raise ValueError(
                f"the model cannot be sent to Ray workers ({type(error).__name__}: {error}); pass "
                "model_factory= (transfer_factories= for transfer targets), picklable functions that build the "
                "models in each worker"
            ) from None
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
) -> Any:
    r"""The backend called ``name`` (``"local"`` or ``"ray"``), not yet entered.

    Raises:
        ValueError: For an unknown name, or Ray options with the local backend.
        ImportError: For ``"ray"`` without Ray installed (naming the ``ray`` extra).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("ray_address is for backend='ray'; pass backend='ray' too")
        return LocalBackend(model, options, targets)
    return RayBackend(model, options, address, num_cpus, model_factory, targets, target_factories)
