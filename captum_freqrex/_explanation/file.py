"""Saving an :class:`~captum_freqrex.Explanation` to one file and reading it back.

The file is a ``torch.save`` of plain tensors, numbers and strings with a schema name and version,
read back with ``weights_only=True`` (no pickled code). :meth:`Explanation.save` and
:meth:`Explanation.load` are the public entry points; they call these functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import RfftDomain, SpectralDomain, StftDomain
from captum_freqrex._core.certify.prefix import ProbeResult, SetCertificate
from captum_freqrex._core.certify.shrink import ShrinkReport
from captum_freqrex._core.spectral.space import SYNTHESIS, FeatureSpace
from captum_freqrex._core.model.querier import QueryStats
from captum_freqrex._explanation.explanation import CausalSet, Explanation, FeatureLayout
from captum_freqrex._explanation.records import SET_NAMES, package_versions

#: Name and version of the file :meth:`Explanation.save` writes.
FILE_SCHEMA = "captum_freqrex.explanation"
FILE_SCHEMA_VERSION = 1


def _domain_from_record(record: Dict[str, Any]) -> Optional[SpectralDomain]:
    if record.get("name") == "rfft":
        return RfftDomain()
    if record.get("name") == "stft":
        return StftDomain(record["n_fft"], record["hop_length"], record["center"])
    return None


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
        "stats": vars(explanation.stats).copy(),
        "responsibility_queries": int(explanation.responsibility_queries),
        "extraction_queries": int(explanation.extraction_queries),
        "stopped_by": explanation.stopped_by,
        "warnings": list(explanation.warnings),
        "model_stable": explanation.model_stable,
        "settings": dict(explanation.settings),
        "class_confidences": None if explanation.class_confidences is None else explanation.class_confidences.detach().cpu(),
        "sample_rate": explanation.sample_rate,
        "is_tuple": bool(explanation._is_tuple),
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
    if explanation._space is not None:
        bases = explanation._space.baseline_waveforms(explanation._example)
        record["baseline_is_zero"] = [bool((b == 0).all()) for b in bases]
        if include_inputs:
            original = explanation.original_waveform()  # a tuple exactly when explanation._is_tuple
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
    version = int(record.get("schema_version", 0))
    if version > FILE_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema version {version}, newer than this captum_freqrex reads "
            f"({FILE_SCHEMA_VERSION}): upgrade captum_freqrex"
        )
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


def _sets_from_record(record: Dict[str, Any]) -> List[Optional[CausalSet]]:
    sets: List[Optional[CausalSet]] = []
    for name in SET_NAMES:
        d = record["sets"][name]
        if d is None:
            sets.append(None)
            continue
        c = d["certificate"]
        # save_explanation always writes a set's "kept" probe.
        kept = cast(ProbeResult, _probe_from_record(c["kept"]))
        cert = SetCertificate(c["size"], kept, _probe_from_record(c["removed"]), c["certified"], c["exact"], c["note"])
        if c.get("shrink") is not None:
            cert.shrink = ShrinkReport(**c["shrink"])
        sets.append(CausalSet(name, d["mask"].bool(), d["n_bins"], cert, d["energy_share"], d["level_db"]))
    return sets


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
        _layout=layout,
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
