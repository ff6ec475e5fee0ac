"""``freqrex explain-dataset``: explain a folder, CSV or built data set into a resumable store.

``--out RESULTS`` is a folder holding ``results.sqlite`` (the store) and ``aggregates.json`` /
``aggregates.csv`` (rewritten from the store at the end of every run), with the per-class
acceptance matrix of the ``--transfer-to`` models when there are any. The per-class table counts
the trusted clips, and one warning line names the clips a figure leaves out or counts untrusted,
why, and the fix. Running the same command
again resumes; a store of another run (other options, model or data set) is refused with one line
naming what differs. Like the other subcommands, every user error is one ``freqrex: error: ...``
line and exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any, Callable, Optional

from captum_freqrex.cli import _common as common
from captum_freqrex.cli._common import CliError

__all__ = ["add_parser", "run_command", "STORE_NAME", "AGGREGATE_FILES"]

STORE_NAME = "results.sqlite"
AGGREGATE_FILES = ("aggregates.json", "aggregates.csv")
DEFAULT_OUT = "freqrex_out/dataset"

#: The option that sets each recorded setting (for the one-line mismatch error).
OPTION_OF = {
    "seed": "--seed", "max_queries": "--max-queries", "mode": "--mode", "search": "--search", "bands": "--bands",
    "baseline": "--baseline", "ks": "--ks", "sample_rate": "--sample-rate", "output": "--output",
    "source": "DIR_OR_CSV", "model": "--model", "model sample_rate": "--sample-rate", "transfer_to": "--transfer-to",
}


def add_parser(sub: Any) -> None:
    """Register ``explain-dataset`` on the ``freqrex`` subparsers."""
    parser = sub.add_parser(
        "explain-dataset", help="explain every clip of a folder, CSV or built data set into a resumable store",
        description="Explain every clip of a data set with FreqReX into RESULTS/results.sqlite, with class-level "
        "aggregates in RESULTS/aggregates.json and .csv. Run the same command again to resume an interrupted run.",
    )
    parser.add_argument(
        "data", metavar="DIR_OR_CSV",
        help="a folder of audio files (recursive; label = top-level folder), a CSV with columns path[,label], "
        "or a folder built by scripts/build_datasets.py (with manifest.json)",
    )
    parser.add_argument(
        "--model", required=True,
        help="zoo model name (or zoo:NAME), TorchScript file, or package.module:callable",
    )
    parser.add_argument(
        "--transfer-to", nargs="+", default=None, metavar="MODEL",
        help="other models of the task (each given like --model) fed every clip's certified sufficient "
        "signal and the clip: a per-class acceptance matrix in the aggregates",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"result folder (default: {DEFAULT_OUT})")
    parser.add_argument("--split", default="test", help="split of a built data set (default: test)")
    parser.add_argument(
        "--sample-rate", type=common.parse_sample_rate,
        help="sample rate of a TorchScript or module:callable model (default: its sample_rate, else 16000)",
    )
    parser.add_argument(
        "--max-queries", type=common.parse_max_queries, default=1000, help="FreqReX's query budget per clip (default 1000)"
    )
    parser.add_argument("--seed", type=common.parse_seed, default=0, help="seed of the search and of noise baselines (default 0)")
    parser.add_argument(
        "--baseline", default="silence", metavar="silence|noise|pink|FILE",
        help="what removed frequencies are replaced by: silence (default), white or pink noise "
        f"{-common.NOISE_LEVEL_DB:.0f} dB below each clip's RMS (seeded by --seed), or an audio file",
    )
    common.add_search_options(parser)
    common.add_output_option(parser)
    common.add_rows_option(parser)
    parser.add_argument(
        "--ks", type=common.parse_count, nargs="+", default=[1, 5], help="top-k sizes of the flip rates (default 1 5)"
    )
    _add_execution_options(parser)
    parser.set_defaults(run=run_command)


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    """Where and how the clips are explained: ``--batch-size``, ``--backend``, ``--workers`` and
    the Ray options (none of them a setting of the run)."""
    parser.add_argument(
        "--batch-size", type=common.parse_count, default=1,
        help="clips per explain call and per Ray task; results do not depend on it (default 1)",
    )
    parser.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="local (default): this machine, --workers processes; ray: Ray workers (pip install captum_freqrex[ray])",
    )
    parser.add_argument(
        "--workers", type=common.parse_count, default=None, metavar="N",
        help="local worker processes, one torch thread each (default: the usable cores; 1: this process, "
        "with torch's threads)",
    )
    parser.add_argument(
        "--ray-address", default=None, metavar="ADDR",
        help="a running Ray cluster (e.g. ray://head:10001 or auto); default: start a local one for this run",
    )
    parser.add_argument(
        "--num-cpus", type=common.parse_count, default=None, help="CPUs of the local Ray cluster (default: all)"
    )


def _worker_model(spec: str, sample_rate: Optional[int]) -> Callable:
    """The model, loaded in a worker (Ray's or a local one) from the driver's resolved ``--model``."""
    return common.load_model(spec, sample_rate).model


def _worker_spec(spec: str, model: Any) -> str:
    """``--model`` as a worker (another folder, maybe another machine) resolves it to the same model."""
    if model.zoo_name is not None:
        return common.ZOO_PREFIX + model.zoo_name
    if os.path.isfile(spec):
        return os.path.abspath(spec)
    return spec


def _check_out(out: str, args: argparse.Namespace) -> str:
    """The store's path; refuses an ``--out`` that holds files a new run must not replace, or inputs."""
    from captum_freqrex.corpus._store import StoreError, check_store_path

    common.check_out(out, (), False)
    common.check_not_inputs(out, (STORE_NAME, *AGGREGATE_FILES), common.input_files(args))
    store = os.path.join(out, STORE_NAME)
    try:
        existing = check_store_path(store)
    except StoreError as error:
        raise CliError(f"{error}; choose another --out") from None
    for name in AGGREGATE_FILES:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            raise CliError(f"{path} is a folder where a result file goes; choose another --out")
        if not existing and os.path.lexists(path):
            raise CliError(f"{path} already exists but {store} does not (not this command's files?); choose another --out")
    return store


def _stored_count(store: str) -> int:
    from captum_freqrex.corpus._store import ResultStore

    try:
        with ResultStore(store, readonly=True) as opened:
            return sum(row["status"] == "explained" for row in opened.rows("clips"))
    except Exception:  # no store yet, or unreadable: nothing to count
        return 0


def _targets_shown(stored: Any, given: Any) -> tuple:
    """Two ``transfer_to`` records as model names (with their weights when the names are the same)."""

    def names(record: Any, weights: bool) -> str:
        if not record:
            return "(none)"
        return " ".join(
            t["name"] + (f" (weights {t['fingerprint']})" if weights and t.get("fingerprint") else "") for t in record
        )

    same = names(stored, False) == names(given, False)
    return names(stored, same), names(given, same)


def _mismatch(error: Any, store: str) -> CliError:
    option = OPTION_OF.get(error.key, error.key)
    stored, given = error.stored, error.given
    if error.key == "transfer_to":
        stored, given = _targets_shown(stored, given)
    return CliError(
        f"{store} holds a run with {option} {stored}, not {given}: pass the same options to resume it, "
        "or --out another folder for the new run"
    )



def _damaged(error: Any) -> str:
    """The one error line for a damaged store: what is wrong, and how to start over."""
    return (
        f"{error.path} is a damaged store ({error.problem}); it cannot be resumed: --out another folder starts a "
        "new store (move the damaged one away to keep it)"
    )

def _load_targets(specs: Optional[list], model: Any, sample_rate: Optional[int]) -> tuple:
    """The ``--transfer-to`` models by name, and a factory per target for workers (local or Ray)."""
    targets: dict = {}
    factories: dict = {}
    for spec in specs or []:
        target = common.load_model(spec, sample_rate)
        checks = (
            ("runs at", f"{target.sample_rate} Hz", f"{model.sample_rate} Hz"),
            ("takes clips of", target.num_samples and f"{target.num_samples} samples",
             model.num_samples and f"{model.num_samples} samples"),
            ("has the classes", target.class_names and ", ".join(target.class_names),
             model.class_names and ", ".join(model.class_names)),
        )
        for what, own, theirs in checks:
            if own and theirs and own != theirs:
                raise CliError(
                    f"--transfer-to {spec} {what} {own} but --model {model.name} {what} {theirs}: a transfer "
                    "target must take the model's clips and decide over its classes"
                )
        if target.name in targets:
            raise CliError(f"--transfer-to names {target.name} twice")
        targets[target.name] = target.model
        factories[target.name] = functools.partial(_worker_model, _worker_spec(spec, target), sample_rate)
    return targets, factories


def run_command(args: argparse.Namespace) -> int:
    """Run ``freqrex explain-dataset``; returns the exit status (user errors raise :class:`CliError`)."""
    store = _check_out(args.out, args)
    if not os.path.exists(args.data):
        raise CliError(f"no such folder or CSV file: {args.data}")
    if args.ray_address is not None and args.backend != "ray":
        raise CliError("--ray-address needs --backend ray")
    if args.workers is not None and args.backend != "local":
        raise CliError("--workers is for --backend local; a local Ray cluster takes --num-cpus")
    run = _explain_into(store, args)
    for note in run.notes:
        common.say(f"note: {note}")
    done = "resumed" if run.resumed else "explained"
    common.say(f"{done}: {run.explained} clips explained now, {run.skipped} already stored, {run.failed} failed")
    if run.failed:
        _report_failures(store)
    _write_aggregates(store, args.out)
    return 0


def _explain_into(store: str, args: argparse.Namespace) -> Any:
    """Load the models and the baseline, and explain the data set into ``store``; returns the run."""
    from captum_freqrex.corpus._run import ModelFailedError, explain_dataset
    from captum_freqrex.corpus._sources import SourceError
    from captum_freqrex.corpus._store import DamagedStoreError, DatasetChangedError, StoreError, StoreMismatchError

    model = common.load_model(args.model, args.sample_rate)
    baseline = common.parse_baseline(args.baseline, model, args.seed)
    baseline_value: Any = baseline.kind if baseline.kind != "file" else baseline.waveform
    targets, target_factories = _load_targets(args.transfer_to, model, args.sample_rate)
    # Workers (Ray's, or local ones) load the model as the driver did: TorchScript cannot be pickled.
    factory = functools.partial(_worker_model, _worker_spec(args.model, model), args.sample_rate)
    common.say(f"explaining {args.data} with {model.name} into {store}")
    try:
        return explain_dataset(
            model.model, args.data, store, sample_rate=model.sample_rate, num_samples=model.num_samples,
            pad_short_clips=model.pad_short_clips,
            class_names=model.class_names, model_name=model.name, split=args.split, seed=args.seed, mode=args.mode,
            search=args.search, max_queries=args.max_queries, bands=args.bands, baseline=baseline_value,
            output=getattr(args, "output", None), ks=args.ks, rows_per_call=args.rows_per_call,
            batch_size=args.batch_size, backend=args.backend,
            workers=args.workers, ray_address=args.ray_address, num_cpus=args.num_cpus, model_factory=factory,
            transfer_to=targets or None, transfer_factories=target_factories,
            show_progress=True,
        )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted: {_stored_count(store)} clips are stored in {store}; run the same command again to resume"
        ) from None
    except StoreMismatchError as error:
        raise _mismatch(error, store) from None
    except DatasetChangedError as error:
        raise CliError(f"{error}; --out another folder to explain this data set") from None
    except DamagedStoreError as error:
        raise CliError(_damaged(error)) from None
    except StoreError as error:
        raise CliError(f"{error}; choose another --out") from None
    except ImportError as error:
        raise CliError(str(error)) from None
    except SourceError as error:
        raise CliError(str(error)) from None
    except ModelFailedError as error:
        raise CliError(f"--model {args.model}: {error}") from None


def _write_aggregates(store: str, out: str) -> None:
    """Rewrite ``aggregates.json`` and ``.csv`` from the store, and print the per-class tables."""
    from captum_freqrex.corpus._aggregate import write_aggregates
    from captum_freqrex.corpus._store import DamagedStoreError

    json_path, csv_path = (os.path.join(out, name) for name in AGGREGATE_FILES)
    try:
        written = write_aggregates(store, json_path, csv_path)
    except OSError as error:
        raise CliError(f"cannot write {error.filename or out}: {error.strerror or error}") from None
    except DamagedStoreError as error:  # damaged while it ran
        raise CliError(_damaged(error)) from None
    by_target = written["target"]
    assert by_target is not None, "write_aggregates always groups by target"
    print(by_target.table())
    notice = by_target.notice()
    if notice is not None:  # the clips a figure leaves out or counts untrusted: never silently
        common.say(f"freqrex: warning: {notice}")
    transfer = by_target.transfer_table()
    if transfer is not None:
        print()
        print(transfer)
    common.say(f"results in {store}; aggregates in {json_path} and {csv_path}")


def _report_failures(store: str) -> None:
    from captum_freqrex.corpus._store import ResultStore

    with ResultStore(store, readonly=True) as opened:
        failed = [row for row in opened.rows("clips", order_by="position") if row["status"] == "error"]
    for row in failed[:5]:
        common.say(f"freqrex: warning: {row['clip_id']}: {row['error']}")
    if len(failed) > 5:
        common.say(f"freqrex: warning: ... and {len(failed) - 5} more (clips with status 'error' in {store})")
    common.say("clips that failed are retried when the command is run again")
