"""The methods of a comparison by name: each entry of ``methods`` resolved to its runner."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Tuple

from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex.compare._runners import (
    CallableMethod,
    CaptumMethod,
    FreqReXMethod,
    Naive,
    PerClipMethod,
    inner_method,
    require_sklearn,
)
from captum_freqrex.compare._shap import SHAP_METHODS, ShapMethod, require_shap


#: Every method :func:`compare_methods` knows, in table order.
METHODS: Tuple[str, ...] = (
    "FreqReX",
    "FreqReX-necessary",
    "IntegratedGradients",
    "KernelShap",
    "Lime",
    "FeatureAblation",
    "ShapleyValueSampling",
    "magnitude",
    "random",
)

#: Methods whose cost grows with the number of features (they get a band mask when there are many).
PER_FEATURE_COST = frozenset({"KernelShap", "Lime", "FeatureAblation", "ShapleyValueSampling"})


def _samples(queries: int, n_features: int) -> Dict[str, Any]:
    """KernelShap's and Lime's budget: as many samples as FreqReX made queries."""
    return {"n_samples": max(queries, 2)}


def _permutations(queries: int, n_features: int) -> Dict[str, Any]:
    """ShapleyValueSampling's budget: the permutations closest to as many queries as FreqReX made."""
    return {"n_samples": max(1, round((queries - 1) / n_features))}


def _builtin(name: str, ig_steps: int, ppe: int) -> Any:
    """The runner of a built-in name (:data:`METHODS` and :data:`SHAP_METHODS`)."""
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, Lime, ShapleyValueSampling

    if name in SHAP_METHODS:
        return ShapMethod(name)
    if name in ("magnitude", "random"):
        return Naive(name)
    coarse = name in PER_FEATURE_COST
    table: Dict[str, Callable[[], Any]] = {
        "FreqReX": lambda: FreqReXMethod(),
        "FreqReX-necessary": lambda: FreqReXMethod(mode="necessary"),
        "IntegratedGradients": lambda: CaptumMethod(IntegratedGradients, n_steps=ig_steps, internal_batch_size=ppe),
        "KernelShap": lambda: CaptumMethod(KernelShap, per_feature_cost=coarse, budget=_samples),
        "Lime": lambda: CaptumMethod(Lime, per_feature_cost=coarse, budget=_samples),
        "FeatureAblation": lambda: CaptumMethod(FeatureAblation, per_feature_cost=coarse),
        "ShapleyValueSampling": lambda: CaptumMethod(ShapleyValueSampling, per_feature_cost=coarse, budget=_permutations),
    }
    return table[name]()


def _runner(method: Any, ig_steps: int, ppe: int) -> Any:
    """The runner of one registry entry: a name, a runner, a FreqReX, a Captum class or instance, a callable."""
    from captum.attr import Attribution

    if isinstance(method, str):
        return _builtin(method, ig_steps, ppe)
    if isinstance(method, (FreqReXMethod, PerClipMethod, Naive)):
        return method
    if isinstance(method, FreqReX):
        return FreqReXMethod(method)
    if isinstance(method, Attribution) or (isinstance(method, type) and issubclass(method, Attribution)):
        return CaptumMethod(method)
    if callable(method):
        return CallableMethod(method)
    raise TypeError(
        f"a method is a name, a Captum Attribution class or instance, a FreqReX, a CaptumMethod / ShapMethod / "
        f"FreqReXMethod or a function (wrapped, inputs, target) -> attributions; got {type(method).__name__}"
    )


def _method_name(method: Any) -> str:
    """The row name of a method given in a sequence: its name, its class's, or its function's."""
    if isinstance(method, str):
        return method
    if isinstance(method, ShapMethod):
        return method.explainer
    if isinstance(method, (FreqReX, FreqReXMethod)):
        return "FreqReX"
    if isinstance(method, type):
        return method.__name__
    attribution = method.method if isinstance(method, CaptumMethod) else method
    inner = getattr(attribution, "attribution_method", None)  # NoiseTunnel(IntegratedGradients(...))
    if inner is not None:
        return f"{type(attribution).__name__}({type(inner).__name__})"
    return getattr(attribution, "__name__", type(attribution).__name__)


def build_registry(methods: Any, ig_steps: int, ppe: int) -> Dict[str, Any]:
    """``methods`` as ``{name: runner}``, in table order; unknown names and duplicates raise."""
    if methods is None:
        entries = [(name, name) for name in METHODS]
    elif isinstance(methods, Mapping):
        entries = [(str(name), method) for name, method in methods.items()]
    elif isinstance(methods, str):
        entries = [(methods, methods)]
    else:
        entries = [(_method_name(method), method) for method in methods]
    known = METHODS + SHAP_METHODS
    unknown = [m for _, m in entries if isinstance(m, str) and m not in known]
    if unknown or not entries:
        raise ValueError(f"unknown methods {unknown}; choose from {list(known)}, or pass Captum methods or functions")
    names = [name for name, _ in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"methods named twice: {repeated}; name them with a mapping, e.g. {{'IG-16': ..., 'IG-64': ...}}")
    return {name: _runner(method, ig_steps, ppe) for name, method in entries}


def check_extras(registry: Dict[str, Any]) -> None:
    """Raise now, before any work, when a method's optional dependency is missing (``strict``)."""
    from captum.attr import Lime

    for name, runner in registry.items():
        if isinstance(runner, CaptumMethod) and isinstance(inner_method(runner.method), Lime):
            require_sklearn(name)
        elif isinstance(runner, ShapMethod):
            require_shap(name)
