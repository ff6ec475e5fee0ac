"""Saving an :class:`~captum_freqrex.Explanation` to one file and reading it back.

The file is a ``torch.save`` of plain tensors, numbers and strings with a schema name and version,
read back with ``weights_only=True`` (no pickled code). :meth:`Explanation.save` and
:meth:`Explanation.load` are the public entry points; they call these functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import RfftDomain, SpectralDomain, StftDomain
from captum_freqrex._core.records import SetCertificate
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.records import ShrinkReport
from captum_freqrex._core.records import AlternativesReport
from captum_freqrex._core.spectral.space import SYNTHESIS, FeatureSpace
from captum_freqrex._core.records import QueryStats
from captum_freqrex._explanation.explanation import CausalSet, Explanation, FeatureLayout
from captum_freqrex._explanation.manipulation import Manipulation
from captum_freqrex._explanation.records import MANIPULATION, QUIET_SUFFICIENT, SET_NAMES, package_versions

#: Name and version of the file :meth:`Explanation.save` writes.
FILE_SCHEMA = "captum_freqrex.explanation"
FILE_SCHEMA_VERSION = 1


def _domain_from_record(record: Dict[str, Any]) -> Optional[SpectralDomain]:
    if record.get("name") == "rfft":
        return RfftDomain()
    if record.get("name") == "stft":
        return StftDomain(record["n_fft"], record["hop_length"], record["center"])
    return None


# ----------------------------------------------------------------------------- checks on load
#
# A saved file is data from outside: every field is checked against the others before anything
# is built from it, so that a damaged or edited file fails with one message that names the field
# instead of loading a wrong explanation or failing later with a KeyError or IndexError.


class Damaged(Exception):
    """A field of a saved explanation that cannot be right; the message starts with the field."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field(record: Dict[str, Any], key: str, where: str = "") -> Any:
    if not isinstance(record, dict):
        raise Damaged(f"{where or 'the file'} is {type(record).__name__}, not a dict")
    if key not in record:
        raise Damaged(f"{where + '.' if where else ''}{key} is missing")
    return record[key]


def _count(record: Dict[str, Any], key: str, where: str = "") -> int:
    value = _field(record, key, where)
    if not _is_int(value) or value < 0:
        raise Damaged(f"{where + '.' if where else ''}{key} is {value!r}, not a count (an int >= 0)")
    return value


def _tensor(value: Any, name: str, shape: Optional[Tuple[int, ...]] = None, kind: str = "float") -> Tensor:
    """``value`` as a tensor of the kind (``"float"``, ``"int"`` or ``"bool"``) and shape, or Damaged."""
    if not isinstance(value, Tensor):
        raise Damaged(f"{name} is {type(value).__name__}, not a tensor")
    ok = {
        "float": value.is_floating_point(),
        "int": not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool,
        "bool": value.dtype == torch.bool,
    }[kind]
    if not ok:
        raise Damaged(f"{name} has dtype {value.dtype}, not a {kind} tensor")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Damaged(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if kind == "float" and not bool(torch.isfinite(value).all()):
        raise Damaged(f"{name} holds NaN or infinite values")
    return value


def _shape_list(value: Any, name: str, lengths: Tuple[int, ...]) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) not in lengths or not all(_is_int(n) and n > 0 for n in value):
        raise Damaged(f"{name} is {value!r}, not a shape of {' or '.join(map(str, lengths))} positive ints")
    return tuple(value)


def _fields_of(value: Any, kind: type, required: Tuple[str, ...]) -> bool:
    """Whether ``value`` is a dict of ``kind``'s fields with at least ``required`` (older files lack newer ones)."""
    return isinstance(value, dict) and set(required) <= set(value) <= {f.name for f in fields(kind)}


def _check_probe(value: Any, name: str, n_classes: Optional[int]) -> None:
    if not _fields_of(value, ProbeResult, ("passes", "decided", "confidence")):
        raise Damaged(f"{name} is not a model verdict (the fields of ProbeResult)")
    if not isinstance(value["passes"], bool) or not isinstance(value.get("changed", False), (bool, type(None))):
        raise Damaged(f"{name}.passes or {name}.changed is not a bool")
    decided = value["decided"]
    if not _is_int(decided) or decided < 0 or (n_classes is not None and decided >= n_classes):
        raise Damaged(f"{name}.decided is {decided!r}, not a class of the model ({n_classes} classes)")
    if not _is_real(value["confidence"]) or not math.isfinite(value["confidence"]):
        raise Damaged(f"{name}.confidence is {value['confidence']!r}, not a finite number")
    for key in ("decided_confidence", "margin"):  # NaN: not computed
        number = value.get(key, math.nan)
        if not _is_real(number) or math.isinf(number):
            raise Damaged(f"{name}.{key} is {number!r}, not a number")


def _check_header(record: Dict[str, Any]) -> None:
    version = _field(record, "schema_version")
    if not _is_int(version) or version < 1:
        raise Damaged(f"schema_version is {version!r}, not a version (1 to {FILE_SCHEMA_VERSION})")
    if not isinstance(_field(record, "versions"), dict):
        raise Damaged("versions is not a dict of package versions")


def _check_results(record: Dict[str, Any]) -> int:
    """The responsibility and the ranking; returns the number of features."""
    values = _tensor(_field(record, "feature_responsibility"), "feature_responsibility")
    if values.dim() != 1 or values.numel() == 0:
        raise Damaged(f"feature_responsibility has shape {tuple(values.shape)}, not (n_features,)")
    n = values.numel()
    ranking = _tensor(_field(record, "ranking"), "ranking", (n,), "int")
    if not torch.equal(ranking.sort().values, torch.arange(n, dtype=ranking.dtype)):
        raise Damaged(f"ranking is not an ordering of the {n} features (each id 0 to {n - 1} once)")
    return n


def _check_domain(record: Dict[str, Any]) -> Tuple[Optional[SpectralDomain], int]:
    """The domain record; returns the domain rebuilt from it (None if not built in) and its grid_ndim."""
    domain = _field(record, "domain")
    if not isinstance(domain, dict) or not isinstance(domain.get("name"), str) or not isinstance(domain.get("repr"), str):
        raise Damaged("domain is not a domain record (name, repr, grid_ndim)")
    grid_ndim = domain.get("grid_ndim")
    if grid_ndim not in (1, 2) or isinstance(grid_ndim, bool):
        raise Damaged(f"domain.grid_ndim is {grid_ndim!r}, not 1 or 2")
    try:
        rebuilt = _domain_from_record(domain)
    except (KeyError, TypeError, ValueError) as error:
        raise Damaged(f"domain {domain.get('name')!r} cannot be rebuilt ({type(error).__name__}: {error})") from None
    if rebuilt is not None and len(rebuilt.grid_shape(2)) != grid_ndim:
        raise Damaged(f"domain.grid_ndim is {grid_ndim}, but the {domain['name']} domain has {len(rebuilt.grid_shape(2))}")
    return rebuilt, grid_ndim


def _check_grids(record: Dict[str, Any]) -> Tuple[List[Tuple[int, ...]], List[Tuple[int, ...]]]:
    """The example shapes and feature grids, against each other and the domain."""
    is_tuple = _field(record, "is_tuple")
    if not isinstance(is_tuple, bool):
        raise Damaged(f"is_tuple is {is_tuple!r}, not a bool")
    shapes_value, grids_value = _field(record, "example_shapes"), _field(record, "feature_grids")
    if not isinstance(shapes_value, list) or not shapes_value or (not is_tuple and len(shapes_value) != 1):
        raise Damaged(f"example_shapes is {shapes_value!r}, not one shape per input")
    if not isinstance(grids_value, list) or len(grids_value) != len(shapes_value):
        raise Damaged(f"feature_grids is {grids_value!r}, not one grid per input ({len(shapes_value)})")
    domain, grid_ndim = _check_domain(record)
    shapes = [_shape_list(s, f"example_shapes[{i}]", (1, 2)) for i, s in enumerate(shapes_value)]
    grids = [_shape_list(g, f"feature_grids[{i}]", (grid_ndim, grid_ndim + 1)) for i, g in enumerate(grids_value)]
    for i, (shape, grid) in enumerate(zip(shapes, grids)):
        expected = None if domain is None else tuple(domain.grid_shape(shape[-1]))
        per_channel = len(grid) > grid_ndim
        if (expected is not None and grid[-grid_ndim:] != expected) or (per_channel and (len(shape) != 2 or grid[0] != shape[0])):
            raise Damaged(
                f"feature_grids[{i}] is {list(grid)}, which does not fit example_shapes[{i}] = {list(shape)}"
                + ("" if expected is None else f" in the {record['domain']['name']} domain (grid {list(expected)})")
            )
    return shapes, grids


def _check_feature_ids(record: Dict[str, Any], grids: List[Tuple[int, ...]], n: int) -> Tensor:
    """The feature ids against the grids and the features; returns the bins of each feature."""
    ids = _field(record, "feature_ids")
    if ids is None:
        total = sum(math.prod(g) for g in grids)
        if total != n:
            raise Damaged(f"feature_grids hold {total} bins, one feature each, but there are {n} features")
        return torch.ones(n, dtype=torch.long)
    if not isinstance(ids, list) or len(ids) != len(grids):
        raise Damaged(f"feature_ids is not one id tensor per input ({len(grids)})")
    flat = torch.cat([_tensor(t, f"feature_ids[{i}]", g, "int").reshape(-1) for i, (t, g) in enumerate(zip(ids, grids))])
    if bool((flat < 0).any()) or bool((flat >= n).any()):
        raise Damaged(f"feature_ids hold ids outside 0 to {n - 1}")
    sizes = torch.bincount(flat.long(), minlength=n)
    if bool((sizes == 0).any()):
        raise Damaged(f"feature_ids leave feature {int((sizes == 0).nonzero()[0])} without a bin")
    return sizes


def _check_verdicts(record: Dict[str, Any]) -> Optional[int]:
    """Class confidences, target, the model on the input and on the baseline; returns the number of classes."""
    confidences = _field(record, "class_confidences")
    n_classes = None
    if confidences is not None:
        n_classes = _tensor(confidences, "class_confidences").numel()
        if confidences.dim() != 1 or n_classes == 0:
            raise Damaged(f"class_confidences has shape {tuple(confidences.shape)}, not (n_classes,)")
    target = _field(record, "target")
    if not _is_int(target) or target < 0 or (n_classes is not None and target >= n_classes):
        raise Damaged(f"target is {target!r}, not a class of the model ({n_classes} classes)")
    _check_probe(_field(record, "original"), "original", n_classes)
    if _field(record, "baseline") is not None:
        _check_probe(record["baseline"], "baseline", n_classes)
    return n_classes


def _check_certificate(cert: Any, name: str, size: int, n_classes: Optional[int]) -> None:
    where = f"{name}.certificate"
    if _count(cert, "size", where) != size:
        raise Damaged(f"{where}.size is {cert['size']}, but the set's mask holds {size} features")
    _check_probe(_field(cert, "kept", where), f"{where}.kept", n_classes)
    if _field(cert, "removed", where) is not None:
        _check_probe(cert["removed"], f"{where}.removed", n_classes)
    if not isinstance(_field(cert, "certified", where), bool) or not isinstance(_field(cert, "exact", where), bool):
        raise Damaged(f"{where}.certified or .exact is not a bool")
    if not (_field(cert, "note", where) is None or isinstance(cert["note"], str)):
        raise Damaged(f"{where}.note is {cert['note']!r}, not text")
    shrink = cert.get("shrink")
    if shrink is None:
        return
    if not isinstance(shrink, dict) or set(shrink) != {f.name for f in fields(ShrinkReport)}:
        raise Damaged(f"{where}.shrink is not a shrink report (the fields of ShrinkReport)")
    counts = ("prefix_size", "start_size", "size", "queries", "checked", "removable")
    if not all(_is_int(shrink[k]) and shrink[k] >= 0 for k in counts) or shrink["size"] != size:
        raise Damaged(f"{where}.shrink has sizes or counts that are not counts of this set ({size} features)")
    if not isinstance(shrink["start"], str) or not isinstance(shrink["exhaustive"], bool):
        raise Damaged(f"{where}.shrink.start or .exhaustive has the wrong type")


def _check_sets(record: Dict[str, Any], n: int, sizes: Tensor, n_classes: Optional[int]) -> None:
    sets = _field(record, "sets")
    if not isinstance(sets, dict):
        raise Damaged("sets is not a dict of the three sets")
    for name in SET_NAMES:
        chosen = _field(sets, name, "sets")
        if chosen is not None:
            _check_set(chosen, f"sets.{name}", n, sizes, n_classes)


def _check_set(chosen: Any, where: str, n: int, sizes: Tensor, n_classes: Optional[int]) -> Tensor:
    """One set's record; returns its mask."""
    mask = _tensor(_field(chosen, "mask", where), f"{where}.mask", (n,), "bool")
    bins = int(sizes[mask].sum())
    if _count(chosen, "n_bins", where) != bins:
        raise Damaged(f"{where}.n_bins is {chosen['n_bins']}, but its features cover {bins} bins")
    share, level = _field(chosen, "energy_share", where), _field(chosen, "level_db", where)
    if not _is_real(share) or not (math.isnan(share) or -1e-6 <= share <= 1 + 1e-6):
        raise Damaged(f"{where}.energy_share is {share!r}, not a share in [0, 1]")
    if not _is_real(level) or level == math.inf:
        raise Damaged(f"{where}.level_db is {level!r}, not a level in dB")
    _check_certificate(_field(chosen, "certificate", where), where, int(mask.sum()), n_classes)
    return mask


def _check_alternatives(record: Dict[str, Any], n: int, sizes: Tensor, n_classes: Optional[int]) -> None:
    """The further disjoint sufficient sets (absent from older files) and their report."""
    alternatives, report = record.get("alternatives", []), record.get("alternatives_report")
    if not isinstance(alternatives, list):
        raise Damaged(f"alternatives is {type(alternatives).__name__}, not a list of sets")
    if report is None:
        if alternatives:
            raise Damaged("alternatives_report is missing, but there are alternative sets")
        return
    if not isinstance(report, dict) or set(report) != {f.name for f in fields(AlternativesReport)}:
        raise Damaged("alternatives_report is not a report (the fields of AlternativesReport)")
    requested, queries = report["requested"], report["queries"]
    if not _is_int(requested) or requested < 1 or len(alternatives) + 1 > requested:
        raise Damaged(f"alternatives_report.requested is {requested!r}, not a count of at least {len(alternatives) + 1} sets")
    if not isinstance(queries, list) or len(queries) != len(alternatives) or not all(_is_int(q) and q >= 0 for q in queries):
        raise Damaged(f"alternatives_report.queries is {queries!r}, not one count per alternative ({len(alternatives)})")
    if not isinstance(report["stopped"], str):
        raise Damaged(f"alternatives_report.stopped is {report['stopped']!r}, not text")
    _count(report, "stop_queries", "alternatives_report")
    if not alternatives:
        return
    if record["sets"]["sufficient"] is None:
        raise Damaged("alternatives are stored without the sufficient set they are disjoint from")
    taken = record["sets"]["sufficient"]["mask"].clone()
    for i, chosen in enumerate(alternatives):
        where = f"alternatives[{i}]"
        mask = _check_returned_set(chosen, where, n, sizes, n_classes)
        if bool((mask & taken).any()):
            raise Damaged(f"{where} overlaps the sufficient set or an earlier alternative (they must be disjoint)")
        taken |= mask


def _check_returned_set(chosen: Any, where: str, n: int, sizes: Tensor, n_classes: Optional[int]) -> Tensor:
    """An alternative or the quiet sufficient set: a set's record that must be certified and
    non-empty (no other such set is returned); returns its mask."""
    mask = _check_set(chosen, where, n, sizes, n_classes)
    if not chosen["certificate"]["certified"] or not bool(mask.any()):
        raise Damaged(f"{where} is not a certified non-empty set (only those are returned)")
    return mask


def _check_quiet_sufficient(record: Dict[str, Any], n: int, sizes: Tensor, n_classes: Optional[int]) -> None:
    """The quiet sufficient set the sufficient set replaced (absent from older files, None mostly)."""
    quiet = record.get(QUIET_SUFFICIENT)
    if quiet is None:
        return
    _check_returned_set(quiet, QUIET_SUFFICIENT, n, sizes, n_classes)
    if record["sets"]["sufficient"] is None:
        raise Damaged(f"{QUIET_SUFFICIENT} is stored without the sufficient set that replaced it")


def _check_manipulation(record: Dict[str, Any], n: int, sizes: Tensor, n_classes: Optional[int]) -> None:
    """The necessary-mode answer (absent from older files, None in sufficient mode)."""
    found = record.get(MANIPULATION)
    if found is None:
        return
    if not isinstance(found, dict):
        raise Damaged(f"{MANIPULATION} is not a dict")
    mask = _tensor(_field(found, "mask", MANIPULATION), f"{MANIPULATION}.mask", (n,), "bool")
    if not bool(mask.any()):
        raise Damaged(f"{MANIPULATION}.mask is empty: only a removal of some features is returned")
    bins = int(sizes[mask].sum())
    if _count(found, "n_bins", MANIPULATION) != bins:
        raise Damaged(f"{MANIPULATION}.n_bins is {found['n_bins']}, but its features cover {bins} bins")
    _check_probe(_field(found, "removed", MANIPULATION), f"{MANIPULATION}.removed", n_classes)
    if not isinstance(_field(found, "certified", MANIPULATION), bool):
        raise Damaged(f"{MANIPULATION}.certified is not a bool")
    if found["certified"] and not found["removed"].get("changed", not found["removed"]["passes"]):
        raise Damaged(f"{MANIPULATION} is certified, but its removal did not change the decision")
    for key in ("snr_db", "energy_share", "level_db"):
        if not _is_real(_field(found, key, MANIPULATION)):
            raise Damaged(f"{MANIPULATION}.{key} is {found[key]!r}, not a number")
    if not isinstance(_field(found, "note", MANIPULATION), str):
        raise Damaged(f"{MANIPULATION}.note is not a string")


def _check_plain(value: Any, name: str) -> None:
    """JSON-safe values only, as settings_record writes them."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{name}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))):
        raise Damaged(f"{name} is {value!r}, not a plain setting (a number, text, bool, None or list)")


def _check_run(record: Dict[str, Any]) -> None:
    """Cost, stop reason, warnings, stability, settings and sample rate."""
    stats = _field(record, "stats")
    if not _fields_of(stats, QueryStats, ()):
        raise Damaged("stats is not a query count (the fields of QueryStats)")
    for key in ("queries", "forward_calls"):
        if key in stats:
            _count(stats, key, "stats")
    for key in ("model_seconds", "total_seconds"):
        if key in stats and (not _is_real(stats[key]) or not math.isfinite(stats[key]) or stats[key] < 0):
            raise Damaged(f"stats.{key} is {stats[key]!r}, not a time in seconds")
    _count(record, "responsibility_queries")
    _count(record, "extraction_queries")
    if not isinstance(_field(record, "stopped_by"), str):
        raise Damaged(f"stopped_by is {record['stopped_by']!r}, not text")
    warnings = _field(record, "warnings")
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise Damaged("warnings is not a list of text")
    if record.get("model_stable") is not None and not isinstance(record["model_stable"], bool):
        raise Damaged(f"model_stable is {record['model_stable']!r}, not a bool or None")
    settings = _field(record, "settings")
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise Damaged(f"settings is {type(settings).__name__}, not a dict of options by name")
    for key, value in settings.items():
        _check_plain(value, f"settings[{key!r}]")
    if not (settings.get("seed") is None or _is_int(settings["seed"])):
        raise Damaged(f"settings['seed'] is {settings['seed']!r}, not an int")
    if "synthesis" in settings and settings["synthesis"] not in SYNTHESIS:
        raise Damaged(f"settings['synthesis'] is {settings['synthesis']!r}, not one of {SYNTHESIS}")
    rate = _field(record, "sample_rate")
    if rate is not None and (not _is_real(rate) or not math.isfinite(rate) or rate <= 0):
        raise Damaged(f"sample_rate is {rate!r}, not a rate in Hz")
    names = record.get("class_names")  # absent from older files
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise Damaged(f"class_names is {names!r}, not a list of class names")


def _check_waveforms(record: Dict[str, Any], shapes: List[Tuple[int, ...]]) -> None:
    """The stored waveforms (include_inputs=True) and whether each baseline is silence."""
    zero = _field(record, "baseline_is_zero")
    if zero is not None and (not isinstance(zero, list) or len(zero) != len(shapes) or not all(isinstance(z, bool) for z in zero)):
        raise Damaged(f"baseline_is_zero is {zero!r}, not one bool per input ({len(shapes)})")
    inputs, baselines = _field(record, "inputs"), _field(record, "baselines")
    if (inputs is None) != (baselines is None) or (inputs is not None and zero is None):
        raise Damaged("inputs, baselines and baseline_is_zero are not stored together")
    for key, waves in (("inputs", inputs), ("baselines", baselines)):
        if waves is None:
            continue
        if not isinstance(waves, list) or len(waves) != len(shapes):
            raise Damaged(f"{key} is not one waveform per input ({len(shapes)})")
        for i, (wave, shape) in enumerate(zip(waves, shapes)):
            _tensor(wave, f"{key}[{i}]", shape)


def check_record(record: Dict[str, Any]) -> None:
    r"""Check every field of a loaded file against the others (what :func:`save_explanation` writes).

    Args:
        record (dict): The ``torch.load`` of a file whose ``schema`` is :data:`FILE_SCHEMA`.

    Raises:
        Damaged: For the first field that cannot be right; the message starts with the field.
    """
    _check_header(record)
    n = _check_results(record)
    shapes, grids = _check_grids(record)
    sizes = _check_feature_ids(record, grids, n)
    n_classes = _check_verdicts(record)
    _check_sets(record, n, sizes, n_classes)
    _check_alternatives(record, n, sizes, n_classes)
    _check_quiet_sufficient(record, n, sizes, n_classes)
    _check_manipulation(record, n, sizes, n_classes)
    _check_run(record)
    _check_waveforms(record, shapes)


# ----------------------------------------------------------------------------- saving and loading


def _probe_record(result: Optional[ProbeResult]) -> Optional[Dict[str, Any]]:
    return None if result is None else asdict(result)


def _set_record(chosen: Optional[CausalSet]) -> Optional[Dict[str, Any]]:
    if chosen is None:
        return None
    cert = chosen.certificate
    shrink = getattr(cert, "shrink", None)
    return {
        "mask": chosen.mask.detach().cpu().bool(),
        "n_bins": int(chosen.n_bins),
        "energy_share": float(chosen.energy_share),
        "level_db": float(chosen.level_db),
        "certificate": {
            "size": cert.size,
            "kept": _probe_record(cert.kept),
            "removed": _probe_record(cert.removed),
            "certified": cert.certified,
            "exact": cert.exact,
            "note": cert.note,
            "shrink": None if shrink is None else asdict(shrink),
        },
    }


def _manipulation_record(found: Optional[Manipulation]) -> Optional[Dict[str, Any]]:
    if found is None:
        return None
    return {
        "mask": found.mask.detach().cpu().bool(), "n_bins": int(found.n_bins), "removed": _probe_record(found.removed),
        "certified": bool(found.certified), "snr_db": float(found.snr_db), "energy_share": float(found.energy_share),
        "level_db": float(found.level_db), "note": found.note,
    }


def _manipulation_from_record(d: Optional[Dict[str, Any]]) -> Optional[Manipulation]:
    if d is None:
        return None
    removed = cast(ProbeResult, _probe_from_record(d["removed"]))
    return Manipulation(d["mask"].bool(), d["n_bins"], removed, d["certified"], d["snr_db"], d["energy_share"],
                        d["level_db"], d["note"])


def _explanation_record(explanation: Explanation) -> Dict[str, Any]:
    """Everything but the waveforms: the results, the verdicts, the cost and the layout."""
    layout = explanation.layout
    identity = all(
        bool((ids.reshape(-1) == torch.arange(ids.numel()) + offset).all())
        for ids, offset in zip(layout.ids, _offsets(layout.ids))
    )
    return {
        "schema": FILE_SCHEMA,
        "schema_version": FILE_SCHEMA_VERSION,
        "versions": package_versions(),
        "feature_responsibility": explanation.feature_responsibility.detach().cpu(),
        "ranking": explanation.ranking.detach().cpu(),
        "target": int(explanation.target),
        "original": _probe_record(explanation.original),
        "baseline": _probe_record(explanation.baseline),
        "sets": {name: _set_record(s) for name, s in explanation.sets.items()},
        "alternatives": [_set_record(s) for s in explanation.alternatives],
        "alternatives_report": None if explanation.alternatives_report is None else asdict(explanation.alternatives_report),
        QUIET_SUFFICIENT: None if explanation.quiet_sufficient is None else _set_record(explanation.quiet_sufficient),
        MANIPULATION: _manipulation_record(explanation.manipulation),
        "stats": vars(explanation.stats).copy(),
        "responsibility_queries": int(explanation.responsibility_queries),
        "extraction_queries": int(explanation.extraction_queries),
        "stopped_by": explanation.stopped_by,
        "warnings": list(explanation.warnings),
        "model_stable": explanation.model_stable,
        "settings": dict(explanation.settings),
        "class_confidences": None if explanation.class_confidences is None else explanation.class_confidences.detach().cpu(),
        "sample_rate": explanation.sample_rate,
        "class_names": None if explanation.class_names is None else list(explanation.class_names),
        "is_tuple": bool(explanation.is_tuple),
        "example_shapes": [list(s) for s in layout.example_shapes],
        "feature_grids": [list(ids.shape) for ids in layout.ids],
        "feature_ids": None if identity else list(layout.ids),
        "domain": dict(layout.domain_record),
        "inputs": None,
        "baselines": None,
        "baseline_is_zero": None,
    }


def save_explanation(explanation: Explanation, path: str, include_inputs: bool = False) -> str:
    r"""Write ``explanation`` to ``path``; see :meth:`Explanation.save`.

    Args:
        explanation (Explanation): The explanation.
        path (str): The file to write.
        include_inputs (bool, optional): Also store the explained waveform and its baseline.
                    Default: False

    Returns:
        str: The path.
    """
    record = _explanation_record(explanation)
    bases = explanation.baseline_waveforms()
    if bases is not None:
        record["baseline_is_zero"] = [bool((b == 0).all()) for b in bases]
        if include_inputs:
            original = explanation.original_waveform()  # a tuple exactly when explanation.is_tuple
            record["inputs"] = [w.detach().cpu() for w in (original if isinstance(original, tuple) else (original,))]
            record["baselines"] = [b.detach().cpu() for b in bases]
    elif include_inputs:
        raise ValueError("this explanation has no inputs to include (it was loaded without them)")
    torch.save(record, path)
    return path


def _read_record(path: str) -> Dict[str, Any]:
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read {path} as a saved explanation ({type(error).__name__}: {error})") from None
    if not isinstance(record, dict) or record.get("schema") != FILE_SCHEMA:
        raise ValueError(f"{path} is not an explanation saved by Explanation.save")
    version: Any = record.get("schema_version")
    if _is_int(version) and version > FILE_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema version {version}, newer than this captum_freqrex reads "
            f"({FILE_SCHEMA_VERSION}): upgrade captum_freqrex"
        )
    try:
        check_record(record)
    except Damaged as damage:
        raise ValueError(f"this saved explanation is damaged: {damage} ({path})") from None
    return record


def _layout_from_record(record: Dict[str, Any], domain: Optional[SpectralDomain]) -> FeatureLayout:
    shapes = tuple(tuple(s) for s in record["example_shapes"])
    grids = [tuple(g) for g in record["feature_grids"]]
    if record["feature_ids"] is None:
        ids = tuple(
            (torch.arange(math.prod(g)) + o).reshape(g) for g, o in zip(grids, _offsets_of_sizes([math.prod(g) for g in grids]))
        )
    else:
        ids = tuple(t.long() for t in record["feature_ids"])
    domain = domain or _domain_from_record(record["domain"])
    return FeatureLayout(ids, shapes, domain, dict(record["domain"]))


def _probe_from_record(d: Optional[Dict[str, Any]]) -> Optional[ProbeResult]:
    return None if d is None else ProbeResult(**d)


def _set_from_record(name: str, d: Dict[str, Any]) -> CausalSet:
    c = d["certificate"]
    # save_explanation always writes a set's "kept" probe.
    kept = cast(ProbeResult, _probe_from_record(c["kept"]))
    cert = SetCertificate(c["size"], kept, _probe_from_record(c["removed"]), c["certified"], c["exact"], c["note"])
    if c.get("shrink") is not None:
        cert.shrink = ShrinkReport(**c["shrink"])
    return CausalSet(name, d["mask"].bool(), d["n_bins"], cert, d["energy_share"], d["level_db"])


def _sets_from_record(record: Dict[str, Any]) -> List[Optional[CausalSet]]:
    return [None if record["sets"][name] is None else _set_from_record(name, record["sets"][name]) for name in SET_NAMES]


def _space_from_record(
    record: Dict[str, Any],
    layout: FeatureLayout,
    inputs: Union[None, Tensor, Tuple[Tensor, ...]],
    baselines: Union[None, Tensor, Tuple[Tensor, ...]],
    dtype: torch.dtype,
) -> Optional[FeatureSpace]:
    """The explained example's feature space, from ``inputs`` or the stored waveforms (None without)."""
    shapes, ids, domain = layout.example_shapes, layout.ids, layout.domain
    waves = _as_examples(inputs, shapes, "inputs") if inputs is not None else record["inputs"]
    if waves is None:
        return None
    if inputs is not None and baselines is not None:
        bases = _as_examples(baselines, shapes, "baselines")
    elif inputs is None and record["baselines"] is not None:
        bases = record["baselines"]
    else:
        nonzero = [not z for z in (record["baseline_is_zero"] or [])]
        if any(nonzero):
            raise ValueError(
                "the explanation's baseline was not silence: pass baselines=... (the baseline "
                "waveform) with inputs, or save with include_inputs=True"
            )
        bases = [torch.zeros(s, dtype=torch.float32) for s in shapes]
    if domain is None:
        raise ValueError(
            f"cannot rebuild the domain {record['domain'].get('repr')!r}: pass domain=... to load"
        )
    waves = [w.unsqueeze(0).to(dtype) for w in waves]
    bases = [b.unsqueeze(0).to(dtype) for b in bases]
    per_channel = any(layout.axes(i)[0] is not None for i in range(len(ids)))
    # Rebuilt waveforms use the synthesis the sets were certified with (older files: "auto").
    synthesis = record["settings"].get("synthesis", "auto")
    synthesis = synthesis if synthesis in SYNTHESIS else "auto"
    return FeatureSpace(waves, bases, ids, domain, per_channel, synthesis=synthesis)


def load_explanation(
    path: str,
    inputs: Union[None, Tensor, Tuple[Tensor, ...]] = None,
    baselines: Union[None, Tensor, Tuple[Tensor, ...]] = None,
    domain: Optional[SpectralDomain] = None,
) -> Explanation:
    r"""Read an explanation written by :func:`save_explanation`; see :meth:`Explanation.load`.

    Args:
        path (str): The file.
        inputs (Tensor or tuple of Tensor, optional): The explained waveform. Default: None
        baselines (Tensor or tuple of Tensor, optional): Its baseline waveform. Default: None
        domain (SpectralDomain, optional): The explanation's domain. Default: from the file

    Returns:
        Explanation: The explanation.
    """
    record = _read_record(path)
    layout = _layout_from_record(record, domain)
    sufficient, sufficient_necessary, complete = _sets_from_record(record)  # one per SET_NAMES
    is_tuple = bool(record["is_tuple"])
    values = record["feature_responsibility"]
    grid_values = tuple(values[i.reshape(-1)].reshape(i.shape) for i in layout.ids)
    space = _space_from_record(record, layout, inputs, baselines, values.dtype)
    original = cast(ProbeResult, _probe_from_record(record["original"]))  # save_explanation always writes it
    return Explanation(
        grid_values if is_tuple else grid_values[0],
        values,
        record["ranking"],
        record["target"],
        original,
        sufficient,
        sufficient_necessary,
        complete,
        QueryStats(**record["stats"]),
        record["responsibility_queries"],
        record["extraction_queries"],
        record["stopped_by"],
        space,
        0,
        is_tuple,
        baseline=_probe_from_record(record["baseline"]),
        warnings=list(record["warnings"]),
        model_stable=record.get("model_stable"),
        settings=dict(record["settings"]),
        class_confidences=record["class_confidences"],
        sample_rate=record["sample_rate"],
        class_names=None if record.get("class_names") is None else tuple(record["class_names"]),
        stored_layout=layout,
        alternatives=[_set_from_record("sufficient", d) for d in record.get("alternatives", [])],
        alternatives_report=None if record.get("alternatives_report") is None else AlternativesReport(**record["alternatives_report"]),
        quiet_sufficient=None if record.get(QUIET_SUFFICIENT) is None else _set_from_record("sufficient", record[QUIET_SUFFICIENT]),
        manipulation=_manipulation_from_record(record.get(MANIPULATION)),
    )

def _offsets_of_sizes(sizes: Sequence[int]) -> List[int]:
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += size
    return offsets


def _offsets(ids: Sequence[Tensor]) -> List[int]:
    return _offsets_of_sizes([t.numel() for t in ids])


def _as_examples(values: Union[Tensor, Tuple[Tensor, ...]], shapes: Sequence[Tuple[int, ...]], name: str) -> List[Tensor]:
    """One example per input, shaped like the explained example (a batch dimension of one is dropped)."""
    per_input = values if isinstance(values, tuple) else (values,)
    if len(per_input) != len(shapes):
        raise ValueError(f"{name} has {len(per_input)} tensors but the explanation has {len(shapes)} inputs")
    out = []
    for wave, shape in zip(per_input, shapes):
        wave = torch.as_tensor(wave).detach().cpu()
        if wave.dim() == len(shape) + 1 and wave.shape[0] == 1:
            wave = wave[0]
        if tuple(wave.shape) != tuple(shape):
            raise ValueError(
                f"{name} of shape {tuple(wave.shape)} does not match the explained example {tuple(shape)}"
            )
        out.append(wave)
    return out
