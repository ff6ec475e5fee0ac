"""What the ``freqrex`` commands share: option values, model loading, targets, baselines, safe writing.

``freqrex explain-dataset`` (:mod:`captum_freqrex.corpus._cli`) uses these too, so every name here
that another module uses is public; this module imports nothing else of the command line.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.options import MAX_SEED
# The generated baselines (anything else given to --baseline is an audio file) and their noise level.
from captum_freqrex.audio import BASELINE_KINDS, NOISE_LEVEL_DB
from captum_freqrex._core.model.layout import layout_note
from captum_freqrex._core.model.oracle import class_name_counts, mark_raised_by_model
from captum_freqrex._core.model.outputs import OutputSelector, check_model_outputs, check_output_selector

__all__ = [
    "DEMO_MODEL", "ZOO_PREFIX", "CALLABLE_SPEC", "FACTORY_RULE", "SEARCHES", "MIN_MAX_QUERIES", "NOISE_LEVEL_DB",
    "CliError", "LoadedModel", "Baseline", "say",
    "int_option", "parse_seed", "parse_sample_rate", "parse_count", "parse_clip_index", "parse_max_queries", "parse_explanations",
    "parse_output", "add_common_options", "add_output_option", "add_search_options", "add_explanations_option",
    "parse_complete_tolerance", "add_complete_tolerance_option",
    "add_rows_option",
    "zoo_available", "zoo_names", "load_zoo", "load_model", "check_output", "class_name", "parse_target",
    "parse_baseline", "exists_error", "input_files", "check_out", "check_not_inputs", "open_new",
]

DEMO_MODEL = "instruments"

#: Prefix that names a zoo model even when a file or folder of that name exists here.
ZOO_PREFIX = "zoo:"

#: ``--model package.module:callable`` (dotted names on both sides of one colon).
CALLABLE_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: ``--search`` choices (see :class:`FreqReX`'s ``search=``).
SEARCHES = ("auto", "refinement", "interleaved", "energy", "adaptive", "band_screening")


#: Smallest FreqReX query budget: one refinement step of the default 4 pieces (a step runs only
#: where all its 2**4 - 1 mutants fit, though it may ask only 5 of them).
MIN_MAX_QUERIES = 15


class CliError(Exception):
    """A user error reported as one line."""


@dataclass
class LoadedModel:
    """The model a ``--model`` names, with what the command needs to know about it."""

    model: Any
    name: str
    sample_rate: int
    num_samples: Optional[int]
    class_names: Optional[Tuple[str, ...]]
    zoo_name: Optional[str] = None
    pad_short_clips: bool = True  # False: a shorter clip is explained at its own length (any-length models)


def say(message: str) -> None:
    """Print a progress or note line on stderr (stdout holds the results)."""
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- option values


def int_option(low: int, high: Optional[int] = None, why: str = "") -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in ``[low, high]``; ``why`` explains the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}{why}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


parse_seed = int_option(0, MAX_SEED, " (2**63 - 1, a 64-bit generator seed)")
parse_sample_rate = int_option(1, None, " (a sample rate in Hz)")
parse_count = int_option(1)
parse_clip_index = int_option(0)
parse_max_queries = int_option(MIN_MAX_QUERIES, None, " (one FreqReX refinement step takes up to 15 queries)")
parse_explanations = int_option(1, None, "")


def parse_output(text: str) -> OutputSelector:
    """``--output KEY``: an integer is a tuple index, anything else a key or attribute name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a key or attribute name, or a tuple index, got an empty string")
    return check_output_selector(int(text) if re.fullmatch(r"[+-]?\d+", text) else text)


def add_common_options(parser: argparse.ArgumentParser, out: str) -> None:
    """``--max-queries``, ``--out`` (default ``out``), ``--overwrite``, ``--seed`` and ``--baseline``."""
    parser.add_argument(
        "--max-queries", type=parse_max_queries, default=1000,
        help="FreqReX's query budget per clip (>= 15, default 1000)",
    )
    parser.add_argument("--out", default=out, help=f"result folder (default: {out})")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace result files of an earlier run in --out (default: refuse)"
    )
    parser.add_argument("--seed", type=parse_seed, default=0, help="seed of the search and of noise baselines (default 0)")
    parser.add_argument(
        "--baseline", default="silence", metavar="silence|noise|pink|FILE",
        help="what removed frequencies are replaced by: silence (default), white or pink noise "
        f"{-NOISE_LEVEL_DB:.0f} dB below the clip's RMS (seeded by --seed), or an audio file",
    )


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """``--output KEY``: where the scores are in what the model returns."""
    parser.add_argument(
        "--output", type=parse_output, default=None, metavar="KEY",
        help="where the scores are in what the model returns: a dict key or attribute (e.g. logits), or a "
        "tuple index (e.g. 0) (default: a tensor as is, else .logits, a dict's 'logits', a tuple's first element)",
    )


def add_rows_option(parser: argparse.ArgumentParser) -> None:
    """``--rows-per-call N``: most waveforms per model call (``perturbations_per_eval``)."""
    parser.add_argument(
        "--rows-per-call", type=parse_count, default=None, metavar="N",
        help="most waveforms per model call (default: chosen from the available memory, at most 128); "
        "1 for a model that takes one waveform at a time",
    )


def add_explanations_option(parser: argparse.ArgumentParser) -> None:
    """``--explanations K``: up to K pairwise-disjoint certified sufficient sets (``n_explanations``)."""
    parser.add_argument(
        "--explanations", type=parse_explanations, default=1, metavar="K",
        help="up to K pairwise-disjoint certified sufficient sets (default 1; with --mode sufficient)",
    )


def parse_complete_tolerance(text: str) -> float:
    """``--complete-tolerance T``: a float in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1) (a drop in confidence), got {text}")
    return value


def add_complete_tolerance_option(parser: argparse.ArgumentParser) -> None:
    """``--complete-tolerance T``: how far below the input's confidence the complete set may stop."""
    parser.add_argument(
        "--complete-tolerance", type=parse_complete_tolerance, default=0.05, metavar="T",
        help="the complete set must reach the clip's confidence minus T (default 0.05); a larger T gives a smaller set",
    )


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """``--bands``, ``--mode`` and ``--search``: what FreqReX explains and how it searches."""
    parser.add_argument(
        "--bands", type=parse_count, default=None, metavar="N",
        help="explain N log-spaced frequency bands instead of single rfft bins (default: bins)",
    )
    parser.add_argument(
        "--mode", choices=("sufficient", "necessary"), default="sufficient",
        help="sufficient (default): what keeps the decision; necessary: the fewest frequencies whose removal "
        "changes it (needs a baseline that changes the decision)",
    )
    parser.add_argument(
        "--search", choices=SEARCHES, default=None,
        help="how responsibility is searched (default: auto, chosen per clip: band screening with --mode "
        "necessary, the refinement over bands otherwise, other feature orders when bands leave the set scattered)",
    )


# ----------------------------------------------------------------------------- model and target


def zoo_available() -> bool:
    """Whether the example-model zoo (``captum_freqrex.zoo``) is installed."""
    import importlib.util

    return importlib.util.find_spec("captum_freqrex.zoo") is not None


def zoo_names() -> List[str]:
    """The zoo's model names (none without the zoo)."""
    if not zoo_available():
        return []
    from captum_freqrex import zoo

    return zoo.available()


def load_zoo(name: str) -> LoadedModel:
    """The zoo model ``name``; an unknown name or a missing extra is a :class:`CliError`."""
    try:
        from captum_freqrex import zoo

        loaded = zoo.load(name)
    except (ValueError, ImportError) as error:
        raise CliError(str(error)) from None
    return LoadedModel(
        loaded.model, loaded.name, loaded.sample_rate, loaded.num_samples, tuple(loaded.class_names), loaded.name,
        loaded.pad_short_clips,
    )


def _model_attribute(spec: str, holders: Sequence[Any], name: str, check: Callable[[Any], Any]) -> Any:
    """The first ``name`` attribute found on ``holders`` (model, then module), checked; None if none."""
    for holder in holders:
        value = getattr(holder, name, None)
        if value is not None:
            try:
                return check(value)
            except (TypeError, ValueError) as error:
                raise CliError(f"--model {spec}: its {name} {value!r} is invalid ({error})") from None
    return None


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError("expected a positive integer")
    return int(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected True or False")
    return value


def _names(value: Any) -> Tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected a sequence of class names, not one string")
    return tuple(str(name) for name in value)


#: How ``--model package.module:callable`` is used (docs/any_model.md states the same rule).
FACTORY_RULE = (
    "a class, a function without parameters, or a function whose parameters all have defaults and whose return "
    "annotation is a model (torch.nn.Module or a Callable) is called once to make the model; anything else "
    "callable as model(waveforms) is the model"
)


def _returns_model(function: Any) -> Optional[bool]:
    """Whether ``function``'s return annotation is a model type (True), another type (False), or absent (None)."""
    import collections.abc
    import inspect
    import typing

    try:
        annotation = inspect.signature(function, eval_str=True).return_annotation
    except Exception:  # a string annotation that does not resolve here (a TYPE_CHECKING import)
        return None
    if annotation is inspect.Signature.empty or isinstance(annotation, str):
        return None
    if isinstance(annotation, type) and issubclass(annotation, torch.nn.Module):
        return True
    return (typing.get_origin(annotation) or annotation) is collections.abc.Callable


def _is_factory(spec: str, attribute: str, obj: Any) -> bool:
    """Whether ``obj`` is called once to make the model (:data:`FACTORY_RULE`); ambiguity is a :class:`CliError`."""
    import inspect

    if isinstance(obj, type):
        return True
    if isinstance(obj, torch.nn.Module) or not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        return False
    signature = inspect.signature(obj)
    parameters = list(signature.parameters.values())
    if not parameters:
        return True
    if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return False  # a required parameter: the waveforms
    # Only defaults: callable without arguments and with the waveforms alike; its annotation decides.
    returns_model = _returns_model(obj)
    if returns_model is None:
        raise CliError(
            f"--model {spec}: {attribute}{signature} could be a factory or the model itself (its parameters all "
            f"have defaults): annotate it '-> torch.nn.Module' to have it called once to make the model, or "
            f"make the waveforms a required parameter ({FACTORY_RULE})"
        )
    return returns_model


def _check_takes_waveforms(spec: str, what: str, model: Any) -> None:
    """Refuse a model that cannot be called as ``model(waveforms)`` where its signature says so."""
    import inspect

    try:
        signature = inspect.signature(model)
    except (TypeError, ValueError):  # no signature to read (some builtins): the first model call tells
        return
    try:
        signature.bind(None)
    except TypeError:
        raise CliError(
            f"--model {spec}: {what} takes {signature}, so it cannot be called as model(waveforms) ({FACTORY_RULE})"
        ) from None


def _import_module_of(spec: str) -> Any:
    """The module of ``--model package.module:callable``, imported with the current folder on the path."""
    import importlib

    module_name = spec.partition(":")[0]
    # The console script's sys.path[0] is its own folder; put the current folder first, as python -m does.
    try:
        here = os.getcwd()
    except OSError:  # the current folder was removed: there is nothing here to import
        here = None
    if here is not None and not any(os.path.abspath(entry or os.curdir) == here for entry in sys.path):
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        where = "" if missing == module_name else f" (needed by {module_name})"
        raise CliError(f"--model {spec}: no module named {missing!r}{where}; is its folder on PYTHONPATH?") from None
    except Exception as error:
        raise CliError(f"--model {spec}: importing {module_name} failed ({type(error).__name__}: {error})") from None


def _make_model(spec: str, attribute: str, obj: Any) -> Any:
    """The model that ``obj`` is or makes (:data:`FACTORY_RULE`), checked to take the waveforms."""
    if not callable(obj):
        raise CliError(
            f"--model {spec}: {attribute} is of type {type(obj).__name__}, not a model or a function making one"
        )
    if not _is_factory(spec, attribute, obj):
        _check_takes_waveforms(spec, attribute, obj)
        return obj
    try:
        model = obj()
    except Exception as error:
        raise CliError(f"--model {spec}: calling {attribute}() failed ({type(error).__name__}: {error})") from None
    if not callable(model):
        raise CliError(
            f"--model {spec}: {attribute}() returned an object of type {type(model).__name__}, not a model "
            "(a callable mapping (batch, time) waveforms to scores)"
        )
    _check_takes_waveforms(spec, f"what {attribute}() returned", model)
    return model


def _load_callable(spec: str, sample_rate: Optional[int]) -> LoadedModel:
    r"""Load ``--model package.module:callable``.

    The module is imported (from ``sys.path`` with the current folder first, as ``python -m``
    puts it, so a module here or on ``PYTHONPATH``) and the dotted name after the colon looked
    up in it. :data:`FACTORY_RULE` says whether it is called once to make the model or is the
    model itself. The model maps waveforms ``(batch, time)`` to scores ``(batch, classes)`` (a
    tensor, or a Hugging Face ``ModelOutput``, dict or tuple holding the logits, see FreqReX's
    ``output=``). Optional attributes of the model, else of the module: ``sample_rate`` (Hz;
    ``--sample-rate`` overrides it; else a Hugging Face ``feature_extractor.sampling_rate``;
    default 16000), ``num_samples`` (the input length clips are fitted to), ``pad_short_clips``
    (False: a shorter clip is not zero-padded to ``num_samples`` but explained at its own length,
    for a model that takes any length; default True) and ``class_names`` (printed instead of class
    numbers, and accepted by ``--target``; one name per output, checked on the first model call;
    else a Hugging Face ``config.id2label``).
    """
    module = _import_module_of(spec)
    module_name, _, attribute = spec.partition(":")
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise CliError(f"--model {spec}: {module_name} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    model = _make_model(spec, attribute, obj)
    if isinstance(model, torch.nn.Module):
        model = model.eval()
    holders = (model, module)
    rate = (
        sample_rate or _model_attribute(spec, holders, "sample_rate", _positive_int)
        or _model_attribute(spec, _feature_extractors(holders), "sampling_rate", _positive_int) or 16000
    )
    num_samples = _model_attribute(spec, holders, "num_samples", _positive_int)
    class_names = _model_attribute(spec, holders, "class_names", _names)
    if class_names is None:
        configs = [getattr(holder, "config", None) for holder in holders]
        class_names = _model_attribute(spec, [c for c in configs if c is not None], "id2label", _id2label)
    pad_short_clips = _model_attribute(spec, holders, "pad_short_clips", _flag)
    return LoadedModel(model, spec, rate, num_samples, class_names, pad_short_clips=pad_short_clips is not False)


def _feature_extractors(holders: Sequence[Any]) -> List[Any]:
    """The Hugging Face feature extractors of the model or module (``feature_extractor``, or a
    ``processor``'s), whose ``sampling_rate`` is the rate the model was trained at."""
    found = []
    for holder in holders:
        for extractor in (getattr(holder, "feature_extractor", None),
                          getattr(getattr(holder, "processor", None), "feature_extractor", None)):
            if extractor is not None:
                found.append(extractor)
    return found


def _id2label(value: Any) -> Tuple[str, ...]:
    # A Hugging Face config's {index: label}: names in index order, every index from 0 present.
    labels = {int(index): str(label) for index, label in dict(value).items()}
    if sorted(labels) != list(range(len(labels))):
        raise ValueError(f"expected the indices 0..{len(labels) - 1}, got {sorted(labels)}")
    return tuple(labels[i] for i in range(len(labels)))


def load_model(name_or_path: str, sample_rate: Optional[int]) -> LoadedModel:
    r"""Load ``--model``: ``zoo:NAME``, a zoo name, a TorchScript file, or ``package.module:callable``.

    A bare zoo name that is also a file or folder here is ambiguous and refused; ``./NAME`` picks
    the file, ``zoo:NAME`` the zoo model. ``module:callable`` is described in :func:`_load_callable`.

    Args:
        name_or_path (str): What ``--model`` says.
        sample_rate (int, optional): ``--sample-rate``, for a model that is not in the zoo.

    Returns:
        LoadedModel: The model in eval mode, its name, rate, input length and class names.

    Raises:
        CliError: When the model cannot be found, loaded or made, or the name is ambiguous.
    """
    if name_or_path.startswith(ZOO_PREFIX):
        return load_zoo(name_or_path[len(ZOO_PREFIX) :])
    if CALLABLE_SPEC.match(name_or_path) and not os.path.lexists(name_or_path):
        return _load_callable(name_or_path, sample_rate)
    if name_or_path in zoo_names() and os.path.lexists(name_or_path):
        kind = "folder" if os.path.isdir(name_or_path) else "file"
        raise CliError(
            f"--model {name_or_path} is ambiguous: a {kind} {name_or_path} exists here and "
            f"{name_or_path!r} is also a zoo model; pass ./{name_or_path} for the {kind}, or "
            f"{ZOO_PREFIX}{name_or_path} for the zoo model"
        )
    if os.path.isdir(name_or_path):
        raise CliError(f"--model {name_or_path} is a folder, not a TorchScript model file")
    if os.path.isfile(name_or_path):
        try:
            model = torch.jit.load(name_or_path, map_location="cpu").eval()
        except Exception as error:
            raise CliError(f"cannot load {name_or_path} as a TorchScript model ({type(error).__name__})") from None
        return LoadedModel(model, os.path.basename(name_or_path), sample_rate or 16000, None, None)
    known_names = zoo_names()
    looks_like_path = os.sep in name_or_path or bool(os.altsep and os.altsep in name_or_path)
    if name_or_path not in known_names and (looks_like_path or "." in name_or_path):
        known = f"; zoo models: {', '.join(known_names)}" if known_names else ""
        raise CliError(f"no such model file: {name_or_path}{known}")
    loaded = load_zoo(name_or_path)
    if sample_rate is not None and sample_rate != loaded.sample_rate:
        say(f"--sample-rate {sample_rate} is ignored: zoo model {loaded.name} runs at {loaded.sample_rate} Hz")
    return loaded


def check_output(model: LoadedModel, waveforms: Tensor, output: OutputSelector) -> None:
    """One model call on ``waveforms`` ``(1, time)`` before any search: scores that ``--output`` (or
    the default unwrapping) cannot find are a user error, said in one line with what the model returned."""

    def scores_one_row(one: Tensor) -> bool:
        try:
            with torch.inference_mode():
                check_model_outputs(model.model(one), 1, output)
        except Exception:
            return False
        return True

    def in_another_layout(error: Exception, by_model: bool) -> CliError:
        # A model that takes (batch, 1, time) fails on the command line's (1, time) clips, or
        # scores one as an unbatched channel: one more call says so, and the error names the fix.
        # Otherwise the error goes on as it was, the model's own where the model raised it (exit
        # status 2, "the model failed on FreqReX's waveforms"), as in the calls of the search.
        note = layout_note(waveforms, scores_one_row)
        if note is None:
            if by_model:
                mark_raised_by_model(error)
            raise error
        return CliError(f"--model {model.name}: {type(error).__name__}: {' '.join(str(error).split())}; {note}")

    with torch.inference_mode():
        try:
            outputs = model.model(waveforms)
        except TypeError as error:  # e.g. a builtin without a signature to check beforehand
            raise CliError(
                f"--model {model.name}: calling it on waveforms of shape {tuple(waveforms.shape)} failed "
                f"(TypeError: {error}); a model is called as model(waveforms)"
            ) from None
        except Exception as error:
            raise in_another_layout(error, by_model=True) from None
    try:
        scores = check_model_outputs(outputs, waveforms.shape[0], output)
    except TypeError as error:
        if output is not None:
            raise CliError(f"--output {output}: {error}") from None
        raise CliError(f"{error} (on the command line: --output KEY or --output INDEX)") from None
    except ValueError as error:
        raise in_another_layout(error, by_model=False) from None
    _check_class_names(model, scores.shape[-1])


def _check_class_names(model: LoadedModel, outputs: int) -> None:
    """A ``module:callable`` model's ``class_names``: one per output (two for one sigmoid output)."""
    names = model.class_names
    if names is None or model.zoo_name is not None:
        return
    if len(names) not in class_name_counts(outputs):
        what = "one name per output, or two for a single (thresholded) output" if outputs == 1 else "one per output"
        raise CliError(
            f"--model {model.name}: its class_names has {len(names)} names but the model returns {outputs} "
            f"score{'s' if outputs != 1 else ''} per clip; give {what}"
        )


def class_name(model: LoadedModel, index: Optional[int]) -> Any:
    """The model's name of class ``index`` where it names its classes, else the index itself."""
    if index is None:
        return None
    if model.class_names and 0 <= index < len(model.class_names):
        return model.class_names[index]
    return index


def parse_target(target: Optional[str], model: LoadedModel) -> Optional[int]:
    """``--target`` as a class index, checked against the model's classes when they are known."""
    if target is None:
        return None
    names = model.class_names
    try:
        index = int(target)
    except ValueError:
        index = None
    if index is not None:
        if names and not 0 <= index < len(names):
            listed = ", ".join(f"{i} {n}" for i, n in enumerate(names))
            raise CliError(f"--target {target} is out of range: {model.name} has {len(names)} classes ({listed})")
        if index < 0:
            raise CliError(f"--target {target} is out of range: a class index is >= 0")
        return index
    if names and target in names:
        return names.index(target)
    if not names:
        raise CliError(f"unknown target {target!r}: {model.name} has no class names; use a class index")
    raise CliError(f"unknown target {target!r}; use a class index or one of: {', '.join(names)}")


# ----------------------------------------------------------------------------- baselines


@dataclass
class Baseline:
    """What ``--baseline`` asks for, and (for a file) its audio at the model's rate."""

    kind: str
    seed: int
    path: Optional[str] = None
    waveform: Optional[Tensor] = None
    notes: List[str] = field(default_factory=list)

    def for_clip(self, clip: Tensor, sample_rate: int) -> Tuple[Optional[Tensor], Dict[str, Any]]:
        """The baseline waveform for ``clip`` ``(time,)`` (None: silence) and its summary record."""
        from captum_freqrex.audio import fit_length, noise_like

        if self.kind == "silence":
            return None, {"kind": "silence"}
        if self.kind in ("noise", "pink"):
            color = "white" if self.kind == "noise" else "pink"
            noise = noise_like(clip, color, NOISE_LEVEL_DB, torch.Generator().manual_seed(self.seed))
            record = {"kind": self.kind, "color": color, "level_db": NOISE_LEVEL_DB, "seed": self.seed}
            return noise, record
        assert self.waveform is not None and self.path is not None
        wave, fitted = fit_length(self.waveform, clip.shape[-1], sample_rate)
        return wave, {"kind": "file", "path": os.path.abspath(self.path), "notes": self.notes + fitted}

    def describe(self) -> str:
        """A few words for the human summary."""
        if self.kind == "file":
            return f"the audio file {self.path}"
        if self.kind == "silence":
            return "silence"
        color = "white" if self.kind == "noise" else "pink"
        return f"{color} noise {-NOISE_LEVEL_DB:.0f} dB below the clip's RMS (seed {self.seed})"


def parse_baseline(spec: str, model: LoadedModel, seed: int) -> Baseline:
    """``--baseline silence|noise|pink|FILE``; a file is read and fitted to the model."""
    if spec in BASELINE_KINDS:
        if os.path.lexists(spec):
            say(f"--baseline {spec}: using generated {spec}; to use the file {spec} here, pass ./{spec}")
        return Baseline(spec, seed)
    from captum_freqrex.audio import AudioError, load_audio

    if not os.path.isfile(spec):
        raise CliError(f"--baseline {spec}: not one of {', '.join(BASELINE_KINDS)}, and no such audio file")
    try:
        audio = load_audio(spec, model.sample_rate, model.num_samples, allow_silent=True)
    except AudioError as error:
        raise CliError(f"--baseline: {error}") from None
    for note in audio.notes:
        say(f"baseline {os.path.basename(spec)}: {note}")
    return Baseline("file", seed, spec, audio.waveform, list(audio.notes))


# ----------------------------------------------------------------------------- result folders


def exists_error(path: str) -> CliError:
    """The error for a result file that exists where ``--overwrite`` was not given."""
    return CliError(
        f"{path} already exists (from an earlier run?); pass --overwrite to replace it, or choose another --out"
    )


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def input_files(args: argparse.Namespace) -> List[Tuple[str, str]]:
    r"""The files a command reads, as ``(what, path)`` pairs: no output may ever be one of them.

    Args:
        args (argparse.Namespace): The parsed command line: its audio files (``audio``), a
                    ``--baseline`` file, a ``--model`` file, a data set CSV (``data``) and
                    ``--transfer-to`` model files, where the command has them.

    Returns:
        list of (str, str): What each file is (``"audio file"``, ``"--baseline file"``, ...) and its
        path as given; only files that exist.
    """
    from captum_freqrex.audio import BASELINE_KINDS

    given = [("audio file", path) for path in getattr(args, "audio", None) or []]
    baseline = getattr(args, "baseline", None)
    if baseline is not None and baseline not in BASELINE_KINDS:
        given.append(("--baseline file", baseline))
    given += [("--model file", spec) for spec in [getattr(args, "model", None)] if spec is not None]
    given += [("data set CSV", data) for data in [getattr(args, "data", None)] if data is not None]
    given += [("--transfer-to model file", spec) for spec in getattr(args, "transfer_to", None) or []]
    return [(what, path) for what, path in given if os.path.isfile(path)]


def _input_at(path: str, inputs: Sequence[Tuple[str, str]]) -> Optional[Tuple[str, str]]:
    """The input that ``path`` is (the same file: same path, a symbolic or a hard link), if any."""
    if not os.path.exists(path):
        return None
    for what, given in inputs:
        try:
            if os.path.samefile(path, given):  # same device and inode: any spelling, symlink or hard link
                return what, given
        except OSError:  # the input vanished meanwhile: it cannot be this output
            continue
    return None


def check_out(
    folder: str, names: Sequence[str], overwrite: bool, inputs: Sequence[Tuple[str, str]] = ()
) -> None:
    r"""Refuse, before any work, a result folder the command must not or cannot write.

    Args:
        folder (str): The result folder (``--out``, or one clip's subfolder of it).
        names (sequence of str): File names the command may write in it.
        overwrite (bool): Whether ``--overwrite`` allows replacing existing files.
        inputs (sequence of (str, str), optional): The files the command reads
                    (:func:`input_files`): none of ``names`` may be one of them, even with
                    ``overwrite``. Default: ()

    Raises:
        CliError: When ``folder`` is a file, cannot be created or written, one of ``names`` in
                    it is one of ``inputs``, or (without ``overwrite``) already holds one of
                    ``names``.
    """
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise CliError(f"{folder} is a file, not a folder; choose another --out")
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise CliError(f"cannot create the folder {folder}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {folder}: {existing} is not writable; choose another --out")
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            raise CliError(f"{path} is a folder where a result file goes; choose another --out")
    check_not_inputs(folder, names, inputs)
    for name in names:
        path = os.path.join(folder, name)
        if not overwrite and os.path.lexists(path):
            raise exists_error(path)


def check_not_inputs(folder: str, names: Sequence[str], inputs: Sequence[Tuple[str, str]]) -> None:
    r"""Refuse result files that are one of the command's inputs (``--overwrite`` or not).

    Args:
        folder (str): The result folder.
        names (sequence of str): File names the command may write in it.
        inputs (sequence of (str, str)): The files the command reads (:func:`input_files`).

    Raises:
        CliError: When ``folder/name`` is one of ``inputs``: the same path, or a symbolic or hard
                    link to it (compared by device and inode, :func:`os.path.samefile`).
    """
    for name in names:
        path = os.path.join(folder, name)
        same = _input_at(path, inputs)
        if same is not None:
            raise CliError(
                f"{path} is the {same[0]} {same[1]}: a result would replace it (even --overwrite never replaces "
                "an input); choose another --out"
            )


def open_new(path: str, mode: str, overwrite: bool) -> Any:
    """``open(path, mode)``; without ``overwrite`` the file is created exclusively (never replaced)."""
    try:
        return open(path, mode if overwrite else mode.replace("w", "x"))
    except FileExistsError:
        raise exists_error(path) from None
