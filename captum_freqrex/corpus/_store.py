"""The results of a data-set run in one SQLite file: per run, clip, set, bin, band and transfer target.

One store holds one run: its settings, the model and the package versions are recorded when it
is created, and a later run on the same store must match them (it then resumes: clips already
stored are skipped). Each clip's rows are written in one transaction, so an interrupted run loses
at most the clips in flight. The file is plain SQLite (stdlib ``sqlite3``): query it from Python,
pandas (``pd.read_sql("SELECT * FROM flips", sqlite3.connect(path))``) or the ``sqlite3`` shell.
The tables and every column are described in ``docs/datasets.md``.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from captum_freqrex.corpus._explain import ClipRecord
from captum_freqrex.corpus._grid import BandGrid

__all__ = [
    "ResultStore", "StoreError", "StoreMismatchError", "DatasetChangedError", "DamagedStoreError", "SCHEMA",
    "SCHEMA_VERSION",
]

#: Name and version of the layout; the version grows when a column changes meaning, goes away or
#: is added (a store of an older version gains the added columns when it is opened for writing).
SCHEMA = "captum_freqrex.corpus"
SCHEMA_VERSION = 2

#: The columns each version added, ``(table, column, type)``: 2, the SNR of the necessary-mode
#: answer's change (``sets`` rows of kind ``manipulation``).
_ADDED_COLUMNS = {2: (("sets", "snr_db", "REAL"),)}

_SQLITE_HEADER = b"SQLite format 3\x00"

_TRANSFERS = """
CREATE TABLE transfers (
    clip_id TEXT NOT NULL REFERENCES clips(clip_id), model TEXT NOT NULL,
    accepted INTEGER NOT NULL, signal_class INTEGER NOT NULL, signal_class_name TEXT,
    full_agrees INTEGER NOT NULL, full_class INTEGER NOT NULL, full_class_name TEXT,
    PRIMARY KEY (clip_id, model)
);
"""


_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run (
    run_id INTEGER PRIMARY KEY CHECK (run_id = 1),
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    source_kind TEXT NOT NULL, source TEXT NOT NULL,
    settings TEXT NOT NULL, model TEXT NOT NULL, versions TEXT NOT NULL
);
CREATE TABLE source_clips (position INTEGER PRIMARY KEY, clip_id TEXT NOT NULL UNIQUE);
CREATE TABLE bands (band INTEGER PRIMARY KEY, hz_low REAL NOT NULL, hz_high REAL NOT NULL, hz_centre REAL NOT NULL);
CREATE TABLE clips (
    clip_id TEXT PRIMARY KEY, position INTEGER NOT NULL, source TEXT, label TEXT, fingerprint TEXT,
    num_samples INTEGER, n_features INTEGER,
    decision INTEGER, decision_name TEXT, target INTEGER, target_name TEXT,
    decision_confidence REAL, target_confidence REAL, class_confidences TEXT,
    baseline_class INTEGER, baseline_decides INTEGER, flip_class INTEGER, certified INTEGER,
    target_is_decision INTEGER, stable INTEGER,
    queries INTEGER, forward_calls INTEGER, flip_queries INTEGER, model_seconds REAL, seconds REAL,
    stopped_by TEXT, warnings TEXT NOT NULL, notes TEXT NOT NULL, status TEXT NOT NULL, error TEXT
);
CREATE TABLE sets (
    clip_id TEXT NOT NULL REFERENCES clips(clip_id), kind TEXT NOT NULL,
    size INTEGER NOT NULL, n_bins INTEGER NOT NULL, certified INTEGER NOT NULL, note TEXT NOT NULL,
    energy_share REAL, level_db REAL, kept_class INTEGER, kept_confidence REAL,
    flips_to INTEGER, removed_confidence REAL, snr_db REAL,
    PRIMARY KEY (clip_id, kind)
);
CREATE TABLE set_bins (
    clip_id TEXT NOT NULL REFERENCES clips(clip_id), kind TEXT NOT NULL, feature INTEGER NOT NULL,
    rank INTEGER NOT NULL, bin_low INTEGER NOT NULL, bin_high INTEGER NOT NULL,
    hz_low REAL NOT NULL, hz_high REAL NOT NULL,
    PRIMARY KEY (clip_id, kind, feature)
);
CREATE TABLE band_responsibility (
    clip_id TEXT NOT NULL REFERENCES clips(clip_id), band INTEGER NOT NULL REFERENCES bands(band),
    responsibility REAL NOT NULL,
    PRIMARY KEY (clip_id, band)
);
CREATE TABLE flips (
    clip_id TEXT NOT NULL REFERENCES clips(clip_id), k INTEGER NOT NULL, flipped INTEGER NOT NULL,
    snr_db REAL, new_class INTEGER, new_class_name TEXT, target_confidence REAL,
    PRIMARY KEY (clip_id, k)
);
""" + "\n" + _TRANSFERS

#: Tables holding per-clip rows (all but ``clips`` itself), in the order they are written.
CLIP_TABLES = ("sets", "set_bins", "band_responsibility", "flips", "transfers")

#: Columns of the ``clips`` table that hold JSON lists.
_JSON_COLUMNS = ("class_confidences", "warnings", "notes")

#: Columns of the ``run`` table that hold JSON objects.
_RUN_JSON = ("settings", "model", "versions")

#: What a clip's ``status`` may be.
_STATUSES = ("explained", "error")


class StoreError(ValueError):
    """A store that cannot be used: not a results store, a newer schema, unreadable."""


class StoreMismatchError(StoreError):
    r"""The store holds a run with other settings or another model: the runs must not be mixed.

    Attributes:
        key (str): The first differing setting (``"seed"``, ``"max_queries"``, ...) or ``"model"``.
        stored (Any): Its value in the store.
        given (Any): Its value now.
        path (str): The store.
    """

    def __init__(self, path: str, key: str, stored: Any, given: Any) -> None:
        self.path, self.key, self.stored, self.given = path, key, stored, given
        super().__init__(
            f"{path} holds a run with {key}={stored!r}, not {given!r}; resume it with the same settings, "
            "or write the new run to another store"
        )


class DamagedStoreError(StoreError):
    r"""A results store whose file is damaged: SQLite finds it malformed, a table or column is
    missing, the run's record is not JSON, or a row says what no run writes. It is left as it is;
    a run cannot resume it.

    Attributes:
        path (str): The store.
        problem (str): What is wrong, in words.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(
            f"{path} is a damaged store ({problem}); it is left as it is and cannot be resumed: start a new store "
            "(another path, or move this file away)"
        )


class DatasetChangedError(StoreError):
    r"""The data set differs from the one the store's run explained (clips added, gone or changed).

    Attributes:
        path (str): The store.
        clip_ids (list of str): Some of the clips concerned.
    """

    def __init__(self, path: str, message: str, clip_ids: Sequence[str] = ()) -> None:
        self.path, self.clip_ids = path, list(clip_ids)
        super().__init__(f"the data set has changed since {path} was written: {message}")


@functools.lru_cache(maxsize=None)
def _layout() -> Dict[str, Tuple[str, ...]]:
    """``{table: columns}`` of the store's layout, as SQLite reads :data:`_TABLES`."""
    memory = sqlite3.connect(":memory:")
    try:
        memory.executescript(_TABLES)
        tables = [row[0] for row in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: tuple(row[1] for row in memory.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        memory.close()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _few(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def check_store_path(path: str) -> bool:
    r"""Whether ``path`` is an existing store (True), or free for a new one (False).

    Raises:
        StoreError: When ``path`` is a folder, or a file that is not a results store (a store
                    never takes over someone else's file).
    """
    if os.path.isdir(path):
        raise StoreError(f"{path} is a folder, not a results store file")
    if not os.path.lexists(path):
        return False
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror or error}") from None
    if header != _SQLITE_HEADER:
        raise StoreError(f"{path} exists and is not a results store (not an SQLite file); it is left as it is")
    return True


class ResultStore:
    r"""A results store: one SQLite file holding one data-set run.

    Args:
        path (str): The ``.sqlite`` file; created when missing. An existing file must be a store
                    written by this class (anything else is refused, never overwritten).
        readonly (bool, optional): Open an existing store for reading only. Default: False

    An existing store is checked when it is opened: SQLite's ``PRAGMA integrity_check``
    (``quick_check`` for ``readonly``, which skips the indexes' cross-check), every table and
    column of the layout, the run's JSON, the clips' status and (unless ``readonly``) per-clip
    rows left without their clip.

    Raises:
        StoreError: When ``path`` is not a store, or one of a newer schema.
        DamagedStoreError: When it is a damaged store.
    """

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = os.fspath(path)
        exists = check_store_path(self.path)
        if readonly:
            if not exists:
                raise StoreError(f"no results store at {self.path}")
            uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
            self.connection = sqlite3.connect(uri, uri=True)
        else:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            self.connection = sqlite3.connect(self.path)
        self.connection.row_factory = sqlite3.Row
        try:
            if exists:
                self._check_schema(thorough=not readonly, readonly=readonly)
            else:
                with self.connection:
                    self.connection.executescript(_TABLES)
                    self.connection.executemany(
                        "INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA), ("schema_version", str(SCHEMA_VERSION))]
                    )
        except BaseException:
            self.connection.close()
            raise

    def _check_schema(self, thorough: bool, readonly: bool = False) -> None:
        try:
            meta = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            self._check_integrity(thorough)  # a malformed file is a damaged store, not someone else's
            tables = {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if {"run", "clips"} <= tables:
                raise DamagedStoreError(self.path, "the table meta is missing") from None
            raise StoreError(f"{self.path} is an SQLite file but not a results store; it is left as it is") from None
        if meta.get("schema") != SCHEMA:
            raise StoreError(f"{self.path} is an SQLite file but not a results store; it is left as it is")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise DamagedStoreError(self.path, f"schema_version {meta.get('schema_version')!r} is not a number") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer captum_freqrex (store schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade captum_freqrex"
            )
        self._check_integrity(thorough)
        if version < SCHEMA_VERSION and not readonly:
            self._upgrade(version)
            version = SCHEMA_VERSION
        self._check_tables(version)
        self.run_record()  # its JSON decodes
        if thorough:  # a run would stop on them only after explaining the clip again
            for table in CLIP_TABLES:
                orphan = self.connection.execute(
                    f"SELECT clip_id FROM {table} WHERE clip_id NOT IN (SELECT clip_id FROM clips) LIMIT 1"
                ).fetchone()
                if orphan is not None:
                    raise DamagedStoreError(self.path, f"rows of clip {orphan[0]} are in {table} without the clip")
        statuses = ", ".join("?" * len(_STATUSES))
        odd = self.connection.execute(
            f"SELECT clip_id, status FROM clips WHERE status NOT IN ({statuses}) ORDER BY position LIMIT 3", _STATUSES
        ).fetchall()
        if odd:
            shown = ", ".join(f"{row[0]} has status {row[1]!r}" for row in odd)
            raise DamagedStoreError(self.path, f"{shown}; a run writes only {' or '.join(map(repr, _STATUSES))}")

    def _check_integrity(self, thorough: bool) -> None:
        """SQLite's own check of the file: ``integrity_check`` (``quick_check`` when only reading)."""
        pragma = "integrity_check" if thorough else "quick_check"
        try:
            found = [row[0] for row in self.connection.execute(f"PRAGMA {pragma}(5)").fetchall()]
        except sqlite3.DatabaseError as error:
            raise DamagedStoreError(self.path, f"SQLite: {error}") from None
        if found != ["ok"]:
            first = found[0].replace("*** in database main ***", "").strip().splitlines()[0] if found else "no answer"
            raise DamagedStoreError(self.path, f"SQLite's {pragma} fails: {first}")

    def _upgrade(self, version: int) -> None:
        """Add the columns of the versions after ``version``, and record the new version."""
        with self.connection:
            for later in range(version + 1, SCHEMA_VERSION + 1):
                for table, column, kind in _ADDED_COLUMNS.get(later, ()):
                    self.connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self.connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_tables(self, version: int = SCHEMA_VERSION) -> None:
        """Every table of the layout is there with its columns (extra tables and views are the user's;
        a store of an older ``version``, read only, lacks the columns added since)."""
        later = {(table, column) for v, added in _ADDED_COLUMNS.items() if v > version for table, column, _ in added}
        for table, columns in _layout().items():
            found = {row[1] for row in self.connection.execute(f"PRAGMA table_info({table})")}
            if not found:
                raise DamagedStoreError(self.path, f"the table {table} is missing")
            missing = [c for c in columns if c not in found and (table, c) not in later]
            if missing:
                raise DamagedStoreError(self.path, f"the table {table} has no column {', '.join(missing)}")

    def close(self) -> None:
        """Close the file."""
        self.connection.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ the run

    def run_record(self) -> Optional[Dict[str, Any]]:
        """The ``run`` row with its JSON decoded (None before a run starts)."""
        row = self.connection.execute("SELECT * FROM run").fetchone()
        if row is None:
            return None
        record = dict(row)
        for key in _RUN_JSON:
            try:
                record[key] = json.loads(record[key])
            except (TypeError, ValueError):
                raise DamagedStoreError(self.path, f"the run's {key} column is not JSON: {str(record[key])[:40]!r}") from None
            if not isinstance(record[key], dict):
                raise DamagedStoreError(
                    self.path, f"the run's {key} column is not a JSON object: {str(record[key])[:40]!r}"
                )
        return record

    def begin(
        self,
        settings: Dict[str, Any],
        model: Dict[str, Any],
        versions: Dict[str, Any],
        source_kind: str,
        source: str,
        source_ids: Optional[Sequence[str]],
        grid: BandGrid,
    ) -> List[str]:
        r"""Start a run, or check that the stored run is this one (then it resumes).

        Args:
            settings (dict): The options that decide results (JSON-safe).
            model (dict): The model's description (``fingerprint`` of its weights when it has any).
            versions (dict): Package versions.
            source_kind (str): The kind of source.
            source (str): Its description.
            source_ids (sequence of str, optional): Every clip id of the source, when known upfront.
            grid (BandGrid): The band grid.

        Returns:
            list of str: Notes for the user (e.g. package versions that differ from the stored run's).

        Raises:
            StoreMismatchError: When the stored run has other settings, another model or source kind.
            DatasetChangedError: When the source's clips differ from the stored run's.
        """
        stored = self.run_record()
        if stored is None:
            with self.connection:
                now = _now()
                self.connection.execute(
                    "INSERT INTO run VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                    (now, now, source_kind, source, json.dumps(settings), json.dumps(model), json.dumps(versions)),
                )
                self.connection.executemany(
                    "INSERT INTO bands VALUES (?, ?, ?, ?)",
                    [(i, grid.hz_low[i], grid.hz_high[i], grid.hz_centre[i]) for i in range(len(grid))],
                )
                if source_ids is not None:
                    self.connection.executemany(
                        "INSERT INTO source_clips VALUES (?, ?)", list(enumerate(source_ids))
                    )
            return []
        for key in list(settings) + [k for k in stored["settings"] if k not in settings]:
            if stored["settings"].get(key) != settings.get(key):
                raise StoreMismatchError(self.path, key, stored["settings"].get(key), settings.get(key))
        self._check_model(stored["model"], model)
        if stored["source_kind"] != source_kind:
            raise StoreMismatchError(self.path, "source", stored["source"], source)
        if source_ids is not None:
            self._check_ids(source_ids)
        notes = [
            f"{name} {versions.get(name)} differs from the stored run's {value}"
            for name, value in stored["versions"].items()
            if versions.get(name) != value
        ]
        with self.connection:
            self.connection.execute("UPDATE run SET updated_at = ?", (_now(),))
        return notes

    def _check_model(self, stored: Dict[str, Any], model: Dict[str, Any]) -> None:
        keys: List[str] = ["fingerprint", "type", "sample_rate", "num_samples", "class_names"]
        if stored.get("fingerprint") is None or model.get("fingerprint") is None:
            keys.append("name")  # nothing else tells two weightless models apart
        for key in keys:
            if stored.get(key) == model.get(key):
                continue
            if key == "fingerprint":
                raise StoreMismatchError(
                    self.path, "model", f"{stored.get('name')} (weights {stored.get(key)})",
                    f"{model.get('name')} (weights {model.get(key)})",
                )
            what = "model" if key in ("name", "type") else f"model {key}"
            raise StoreMismatchError(self.path, what, stored.get(key), model.get(key))

    def _check_ids(self, ids: Sequence[str]) -> None:
        stored = [row[0] for row in self.connection.execute("SELECT clip_id FROM source_clips ORDER BY position")]
        if not stored or stored == list(ids):
            return
        gone = [i for i in stored if i not in set(ids)]
        new = [i for i in ids if i not in set(stored)]
        if gone or new:
            parts = ([f"{len(gone)} clips are gone ({_few(gone)})"] if gone else []) + (
                [f"{len(new)} clips are new ({_few(new)})"] if new else []
            )
            raise DatasetChangedError(self.path, "; ".join(parts), gone + new)
        raise DatasetChangedError(self.path, "the clips are listed in another order", [])

    # ------------------------------------------------------------------ clips

    def stored_clips(self) -> Dict[str, Tuple[str, Optional[str]]]:
        """``{clip_id: (status, fingerprint)}`` of every stored clip."""
        rows = self.connection.execute("SELECT clip_id, status, fingerprint FROM clips")
        return {row[0]: (row[1], row[2]) for row in rows}

    def write(self, record: ClipRecord) -> None:
        r"""Write one clip's rows in one transaction (an earlier ``"error"`` row of it is replaced).

        Args:
            record (ClipRecord): The clip's rows (from the backends).

        Raises:
            StoreError: When the clip is already stored as explained (another run writing the same
                        store at the same time).
        """
        clip = dict(record.clip)
        for key in _JSON_COLUMNS:
            if key in clip:
                clip[key] = None if clip[key] is None else json.dumps(clip[key])
        columns = list(clip)
        try:
            with self.connection:
                self.connection.execute("DELETE FROM clips WHERE clip_id = ? AND status = 'error'", (clip["clip_id"],))
                self.connection.execute(
                    f"INSERT INTO clips ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [clip[c] for c in columns],
                )
                tables = (("sets", record.sets), ("set_bins", record.set_bins), ("flips", record.flips),
                          ("transfers", record.transfers))
                for table, rows in tables:
                    if rows:
                        names = list(rows[0])
                        self.connection.executemany(
                            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                            [[row[n] for n in names] for row in rows],
                        )
                if record.bands:
                    self.connection.executemany(
                        "INSERT INTO band_responsibility VALUES (?, ?, ?)",
                        [(clip["clip_id"], band, value) for band, value in enumerate(record.bands)],
                    )
        except sqlite3.IntegrityError as error:
            raise self._conflict(clip["clip_id"], error) from None

    def _conflict(self, clip_id: str, error: sqlite3.IntegrityError) -> StoreError:
        """Why a clip's rows could not be inserted: another run stored it meanwhile, or a damaged store."""
        row = self.connection.execute("SELECT status FROM clips WHERE clip_id = ?", (clip_id,)).fetchone()
        if row is not None and row[0] == "explained":
            return StoreError(
                f"clip {clip_id} is already in {self.path}: is another run writing to this store at the same time?"
            )
        left = [t for t in CLIP_TABLES if self.connection.execute(
            f"SELECT 1 FROM {t} WHERE clip_id = ? LIMIT 1", (clip_id,)).fetchone() is not None]
        if row is None and left:
            return DamagedStoreError(self.path, f"rows of clip {clip_id} are in {', '.join(left)} without the clip")
        return StoreError(f"clip {clip_id} cannot be written to {self.path}: {error}")

    # ------------------------------------------------------------------ reading

    def rows(self, table: str, order_by: Optional[str] = None) -> List[Dict[str, Any]]:
        r"""Every row of a table as dicts (JSON columns of ``clips`` decoded).

        Args:
            table (str): ``"clips"``, ``"sets"``, ``"set_bins"``, ``"band_responsibility"``,
                        ``"flips"``, ``"transfers"``, ``"bands"``, ``"source_clips"``, ``"run"`` or
                        ``"meta"``.
            order_by (str, optional): An ``ORDER BY`` clause. Default: the table's primary key.

        Returns:
            list of dict: The rows.
        """
        keys = {
            "clips": "clip_id", "sets": "clip_id, kind", "set_bins": "clip_id, kind, feature",
            "band_responsibility": "clip_id, band", "flips": "clip_id, k", "transfers": "clip_id, model", "bands": "band",
            "source_clips": "position", "run": "run_id", "meta": "key",
        }
        if table not in keys:
            raise ValueError(f"unknown table {table!r}; tables: {', '.join(keys)}")
        query = f"SELECT * FROM {table} ORDER BY {order_by or keys[table]}"
        out = []
        for row in self.connection.execute(query):
            record = dict(row)
            if table == "clips":
                for key in _JSON_COLUMNS:
                    if record.get(key) is not None:
                        try:
                            record[key] = json.loads(record[key])
                        except ValueError:
                            raise DamagedStoreError(
                                self.path, f"the {key} column of clip {record['clip_id']} is not JSON: {record[key][:40]!r}"
                            ) from None
            out.append(record)
        return out
