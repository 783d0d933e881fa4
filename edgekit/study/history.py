"""A results history: every bench, run and evaluate can append its records to one SQLite file (stdlib sqlite3).

Appending is opt-in, so tests and one-off runs never write behind the user's back: a command appends when it
is given ``--history [PATH]`` or when EDGEKIT_HISTORY is set (the variable also moves the database). The
default database is ``$XDG_DATA_HOME/edgekit/history.sqlite`` (``~/.local/share/edgekit/history.sqlite``).

Each record is stored as the JSON of a one-row results run (the shape of results.json: ``environment`` and
``rows`` with one ``bench`` entry, the per-process figures inside), so compare, export and plot read it with
the same code as results files; the figures one filters on are indexed columns beside it. WAL mode, one
``BEGIN IMMEDIATE`` transaction per record and a long busy timeout let two studies append at once and lose
nothing. A file that is not an edgekit history (corrupt, or another program's database) is an error, and
nothing is written into it.
"""

import hashlib
import json
import os
import sqlite3
import time

from device_bench.errors import EdgekitError

ENV_VAR = "EDGEKIT_HISTORY"
FORMAT = 1  # the history's own layout version, kept in its meta table
BUSY_TIMEOUT_S = 60.0
COLUMNS = ("id", "created", "label", "kind", "device", "model", "precision", "runtime", "runtime_version",
           "threads", "p50_ms", "peak_rss_mb", "top1", "model_sha256", "edgekit_version")
_CREATE = f"""
CREATE TABLE edgekit_history (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, label TEXT, kind TEXT NOT NULL,
  device TEXT, model TEXT, precision TEXT, runtime TEXT, runtime_version TEXT, threads INTEGER, p50_ms REAL,
  peak_rss_mb REAL, top1 REAL, model_sha256 TEXT, edgekit_version TEXT, bundle TEXT, record TEXT NOT NULL);
CREATE INDEX records_label ON records (label);
CREATE INDEX records_configuration ON records (model, precision, runtime, threads, device);
CREATE INDEX records_created ON records (created);
INSERT INTO edgekit_history VALUES ('format', '{FORMAT}');
"""


def default_path():
    """Where the history lives when no PATH is given: EDGEKIT_HISTORY, else the user's data folder."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "edgekit", "history.sqlite")


def wanted(option):
    """The history a command appends to: ``--history PATH`` (``""``: --history alone, the default), else
    EDGEKIT_HISTORY when set; None: no appending."""
    if option is None:
        return os.environ.get(ENV_VAR) or None
    return option or default_path()


class History:
    """An open history database; ``History(path)`` checks the file before any work is done."""

    def __init__(self, path=None, create=True):
        self.path = os.path.abspath(os.fspath(path or default_path()))
        if os.path.isdir(self.path):
            raise EdgekitError(f"{self.path}: a folder, not a history database (give a file path)")
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            if not create:
                raise EdgekitError(f"{self.path}: no history there (append with --history or EDGEKIT_HISTORY)")
            self._make_parent()
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._check()
        except sqlite3.Error as e:
            raise EdgekitError(f"{self.path}: cannot open the history ({e})") from None

    def _make_parent(self):
        parent = os.path.dirname(self.path)
        if self.path == os.path.abspath(default_path()):
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise EdgekitError(f"cannot write {self.path}: {e.strerror or e}") from None
        if not os.path.isdir(parent):
            raise EdgekitError(f"cannot write {self.path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise EdgekitError(f"cannot write {self.path}: folder {parent} is not writable")

    def _check(self):
        """Read the layout; make it in an empty database only. A database of something else is left alone."""
        self.db.execute("BEGIN IMMEDIATE")  # two first writers: one makes the tables, the other sees them
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                for statement in filter(str.strip, _CREATE.split(";")):  # executescript would commit first
                    self.db.execute(statement)
            elif "edgekit_history" not in tables or "records" not in tables:
                raise EdgekitError(f"{self.path}: an SQLite database, but not an edgekit history "
                                   f"(its tables: {', '.join(sorted(tables))[:120]}); left untouched")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        found = dict(self.db.execute("SELECT key, value FROM edgekit_history"))
        if found.get("format") != str(FORMAT):
            raise EdgekitError(f"{self.path}: history format {found.get('format')}; this edgekit reads format "
                               f"{FORMAT}")
        self.db.execute("PRAGMA journal_mode=WAL")

    def close(self):
        self.db.close()

    def append(self, runs, kind, label=None):
        """Append every (row, bench entry) of results runs as one record each, one transaction per record;
        returns the new ids."""
        from device_bench import __version__
        ids = []
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for record in split_runs(runs):
            row = _flat(record)
            values = dict(created=created, label=label, kind=kind, device=row["device"], model=row["model"],
                          precision=row["precision"], runtime=row["runtime"],
                          runtime_version=(row.get("runtime_record") or {}).get("version"), threads=row["threads"],
                          p50_ms=row.get("p50_ms"), peak_rss_mb=row.get("peak_rss_mb"), top1=row.get("top1"),
                          model_sha256=_sha256(record["rows"][0].get("bundle")), edgekit_version=__version__,
                          bundle=json.dumps(_bundle_settings(record["rows"][0].get("bundle"))),
                          record=json.dumps(record))
            try:
                self.db.execute("BEGIN IMMEDIATE")
                cur = self.db.execute(f"INSERT INTO records ({', '.join(values)}) VALUES "
                                      f"({', '.join('?' * len(values))})", list(values.values()))
                self.db.execute("COMMIT")
            except sqlite3.Error as e:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise EdgekitError(f"{self.path}: cannot append to the history ({e})") from None
            ids.append(cur.lastrowid)
        return ids

    def records(self, label=None, model=None, ids=None, limit=None):
        """Stored records, oldest first, as dicts (the indexed columns, ``bundle`` and ``record`` decoded)."""
        where, args = [], []
        for column, value in (("label", label), ("model", model)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if ids is not None:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args += list(ids)
        sql = "SELECT * FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY id', 'ORDER BY id DESC')} LIMIT {int(limit)}) ORDER BY id"
        try:
            cur = self.db.execute(sql, args)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        except sqlite3.Error as e:
            raise EdgekitError(f"{self.path}: cannot read the history ({e})") from None
        for r in rows:
            r["bundle"] = json.loads(r["bundle"]) if r["bundle"] else None
            r["record"] = json.loads(r["record"])
        return rows


def split_runs(runs):
    """One results run per (row, bench entry): the unit a history record keeps. Per-image predictions are
    left out (the accuracy figures stay)."""
    for run in runs:
        for row in run["rows"]:
            row = {k: v for k, v in row.items() if k != "predictions"}
            for b in row.get("bench") or [None]:
                one = dict(row, bench=[b]) if b else {k: v for k, v in row.items() if k != "bench"}
                yield {"schema": run.get("schema", 1), "environment": run["environment"],
                       "meta": {k: run.get("meta", {}).get(k) for k in ("created", "command") if run.get("meta")},
                       "rows": [one]}


def _flat(record):
    from edgekit.study.rows import table_rows
    return table_rows(record)[0]


def _sha256(path):
    """The sha256 of the model file a bundle or .tflite path holds; None when it cannot be read here."""
    if not path:
        return None
    from device_bench.manifest import read_bundle
    try:
        with open(read_bundle(path, verify=False).tflite_path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (EdgekitError, OSError):
        return None


def _bundle_settings(path):
    """A bundle's manifest (precision, input, output, source, versions...): how the build was made."""
    if not path:
        return None
    from device_bench.manifest import read_bundle
    try:
        return read_bundle(path, verify=False).manifest
    except (EdgekitError, OSError):
        return None


EXPORT_FORMATS = ("csv", "json")


def export(records, output, fmt=None, force=False):
    """Write records as CSV (the indexed columns) or JSON (everything stored), atomically; the format from
    ``fmt`` or the file's extension."""
    from device_bench.safe_write import check_output, write_json_atomic
    from device_bench.views import write_csv
    fmt = fmt or os.path.splitext(os.fspath(output))[1].lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise EdgekitError(f"{output}: cannot tell the export format; name a .csv or .json file or give --format")
    check_output(output, force)
    if fmt == "json":
        write_json_atomic(output, records)
    else:
        write_csv(output, [{k: r[k] for k in COLUMNS} for r in records], force=True)
    return fmt


def evaluation_runs(results, model, runtime=None, api=None):
    """`edgekit evaluate` records as results runs (no bench entry: top-1 and top-5 only), for the history."""
    from device_bench.environment import collect
    from device_bench.manifest import read_bundle
    from device_bench.runtime import resolve_runtime
    try:
        precision = (read_bundle(model, verify=False).manifest or {}).get("precision")
    except (EdgekitError, OSError):
        precision = None
    here = None
    runs = []
    for r in results:
        if r.error or r.top1 is None:
            continue
        if r.target:
            env = {"cpu": None, "arch": None, **(r.device or {}), "board": r.target}
        else:
            here = here or collect(resolve_runtime(runtime, api))
            env = here
        runs.append({"schema": 1, "environment": env, "rows": [
            {"model": r.model, "precision": precision, "bundle": os.path.abspath(os.fspath(model)),
             "dataset": r.dataset, "count": r.count, "top1": r.top1, "top5": r.top5}]})
    return runs
