"""Bulk classification of a tweet archive: ``edgerep batch INPUT... -o OUTPUT --bundle BUNDLE``.

Inputs are read in order (JSONL, CSV, Parquet, plain text with one tweet a line, or a RepLab 2013
corpus folder: every English tweet with text of its ``training`` split, with its entity's name
and timestamp) and cut
into shards of ``shard_size`` rows; shard k is rows ``[k * shard_size, (k + 1) * shard_size)`` of
the inputs taken one after another, so the cut is the same on every run. Each shard becomes one
Parquet file, written atomically (a temporary name, then a rename)::

    OUTPUT/
      _edgerep_batch.json     what the output was made from: bundle SHA-256, inputs (path,
                              bytes, SHA-256), fields, shard size; a re-run must match it
      part-00000.parquet      columns: id, entity, time (UTC timestamp), label, p_negative,
                              p_neutral, p_positive, related, p_related, error, text
                              (the tweet, with ``keep_text``; else null);
      part-00001.parquet      file metadata: edgerep.bundle_sha256, edgerep.bundle, edgerep.version
      summary.json            rows, labels, unrelated rows, errors, tweets/s, engine, workers (at the end)

Re-running the same command skips the finished shards and does the rest; another bundle, input
or setting for the same output directory is refused. A row whose text is unusable (missing
field, not a string, empty after normalization, no entity for an entity-conditioned bundle,
a JSONL line that is not JSON, a time that is neither Unix seconds nor ISO 8601) is written with
its ``error`` and no label: never dropped. ``related`` (bool) and ``p_related`` (P(related)) come
from a bundle that decides relatedness and are null from a polarity-only one; the polarity
probabilities are then those given relatedness (:func:`edgerep.device.runtime.relatedness_split`). The entity and time columns carry each row's context
into the output, so ``edgerep monitor`` aggregates it without the inputs.

Engines (identical labels and probabilities for the same input):

* ``local``: N worker processes (N = cores by default), each a
  :class:`~edgerep.device.runtime.PolarityClassifier` with 1 LiteRT thread, one shard at a time.
* ``ray``: Ray Data (``edgerep[ray]``), one pipeline per wave of :data:`RAY_WAVE_SHARDS` shards:
  ``ray.data.from_arrow`` -> ``map_batches`` with an actor class that loads the bundle once per
  actor (``concurrency`` = N actors, 1 CPU each; the bundle's bytes travel through Ray's object
  store) -> ``iter_batches`` in input order (``preserve_order``); the driver writes each shard
  as soon as its rows are back. ``address``: ``auto`` or
  ``ray://host:port`` joins an existing cluster; none starts a local one with N CPUs. The driver
  reads the inputs for both engines: the row-level checks and the deterministic shard cut live in
  one reader; parsing costs microseconds a tweet next to milliseconds of inference.

Needs ``pyarrow`` (``edgerep[batch]``); the light runtime imports neither pyarrow nor ray.
"""

from __future__ import annotations

import csv
import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edgerep import LABELS, __version__
from edgerep.errors import ConfigError, DataError, EdgerepError, InputTextError
from edgerep.io import atomic_write_json
from edgerep.log import log, progress
from edgerep.registry import BATCH_ENGINES, BATCH_FORMATS

FORMATS = BATCH_FORMATS
ENGINES = BATCH_ENGINES
MANIFEST = "_edgerep_batch.json"
COLUMNS = ("id", "entity", "time", "label", "p_negative", "p_neutral", "p_positive", "related", "p_related", "error", "text")
#: The format of the output's shards and ``_edgerep_batch.json``.
SCHEMA = "edgerep.batch/3"
#: The input format of a directory: a RepLab 2013 corpus root (or one of its split folders).
REPLAB_FORMAT = "replab"
REPLAB_SPLIT = "training"


@dataclass(frozen=True)
class BatchConfig:
    """Settings of one batch job (saved in the output's ``_edgerep_batch.json``).

    Attributes:
        text_field / id_field / entity_field / time_field: column (CSV, Parquet) or key (JSONL)
            names; a row without an id gets ``FILE:LINE`` (text files always); the time is Unix
            seconds or ISO 8601 (:func:`parse_time`), absent allowed.
        entity: the entity for every row that has none (entity-conditioned bundles).
        shard_size: rows per output file.
        engine: ``local`` or ``ray``.
        workers: worker processes or Ray actors; ``None`` = this machine's cores.
        address: Ray cluster to join (``auto``, ``ray://host:port``); ``None`` starts a local one.
        batch_size: rows per Ray ``map_batches`` call.
        keep_text: write each row's text into the output (``text`` column; null otherwise), so
            ``edgerep monitor --show-text`` can show an alert's tweets.
    """

    text_field: str = "text"
    id_field: str = "id"
    entity_field: str = "entity"
    time_field: str = "time"
    entity: str | None = None
    shard_size: int = 50_000
    engine: str = "local"
    workers: int | None = None
    address: str | None = None
    batch_size: int = 256
    keep_text: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.shard_size < 1 or self.batch_size < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError("shard_size, batch_size and workers must be >= 1")
        if self.address is not None and self.engine != "ray":
            raise ConfigError("--address joins a Ray cluster: give --engine ray too")

    @property
    def n_workers(self) -> int:
        """``workers``, else the cores this process may run on."""
        if self.workers:
            return self.workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Row:
    """One input row: ``id`` (str), ``text`` and ``entity`` (str or None), ``error`` (why the row
    cannot be classified, or None), ``time`` (Unix seconds, UTC, or None)."""

    id: str
    text: str | None
    entity: str | None
    error: str | None = None
    time: int | None = None


def parse_time(value) -> int | None:
    """A row's time as Unix seconds (UTC).

    Args:
        value: ``None`` or ``""`` (no time); an int or float (Unix seconds); a string of digits
            (Unix seconds); an ISO 8601 string (``2012-06-01T12:00:00Z``, ``2012-06-01 12:00:00+02:00``,
            ``2012-06-01``; without an offset it is UTC), or a ``datetime`` (pyarrow timestamps).

    Raises:
        ValueError: anything else; the message quotes the value.
    """
    import datetime as dt

    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        if value != value or abs(value) > 1e11:  # NaN, or milliseconds/microseconds
            raise ValueError(f"{value!r} is not Unix seconds")
        return int(value)
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp())
    if isinstance(value, str):
        v = value.strip()
        if v.lstrip("-").isdigit():
            return parse_time(int(v))
        try:
            t = dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v)
        except ValueError:
            raise ValueError(f"{value!r} is neither Unix seconds nor ISO 8601") from None
        return parse_time(t)
    raise ValueError(f"{type(value).__name__} {value!r} is not a time")


def input_format(path: Path) -> str:
    """The format of an input file, from its suffix.

    Raises:
        ConfigError: an unknown suffix (the message lists the known ones).

    A directory is a RepLab 2013 corpus folder (:data:`REPLAB_FORMAT`).
    """
    if path.is_dir():
        return REPLAB_FORMAT
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unknown input format {path.suffix or '(no suffix)'!r}; valid: {', '.join(FORMATS)}")
    return fmt


def _row(path: Path, line: int, rec: dict, cfg: BatchConfig) -> Row:
    rid = rec.get(cfg.id_field)
    rid = f"{path.name}:{line}" if rid is None or rid == "" else str(rid)
    text, entity = rec.get(cfg.text_field), rec.get(cfg.entity_field)
    entity = entity if isinstance(entity, str) and entity.strip() else cfg.entity
    try:
        time = parse_time(rec.get(cfg.time_field))
    except ValueError as exc:
        return Row(rid, None, entity, f"{cfg.time_field!r}: {exc}")
    if text is None:
        return Row(rid, None, entity, f"no {cfg.text_field!r} field", time)
    if not isinstance(text, str):
        return Row(rid, None, entity, f"{cfg.text_field!r} is {type(text).__name__}, not a string", time)
    return Row(rid, text, entity, None, time)


def read_rows(path: Path, cfg: BatchConfig) -> Iterator[Row]:
    """The rows of one input file, in order.

    Raises:
        DataError: a missing or unreadable file, a text column that does not exist (CSV,
            Parquet), a CSV row with broken quoting: the message names the file and row.
    """
    fmt = input_format(path)
    if fmt == REPLAB_FORMAT:
        yield from _replab_rows(path)
        return
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    if fmt == "parquet":
        yield from _parquet_rows(path, cfg)
        return
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        if fmt == "text":
            for i, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                yield Row(f"{path.name}:{i}", line, cfg.entity)
        elif fmt == "jsonl":
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Row(f"{path.name}:{i}", None, None, f"line {i} is not JSON ({exc.msg})")
                    continue
                yield (
                    _row(path, i, rec, cfg)
                    if isinstance(rec, dict)
                    else Row(f"{path.name}:{i}", None, None, f"line {i} is not a JSON object")
                )
        else:
            reader = csv.DictReader(f, strict=True)
            if reader.fieldnames is None or cfg.text_field not in reader.fieldnames:
                raise DataError(
                    f"{path}: no column {cfg.text_field!r} (columns: {', '.join(reader.fieldnames or []) or 'none'}); see --text-field"
                )
            while True:
                start = reader.line_num + 1  # the line the next row starts on
                try:
                    rec = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise DataError(f"{path}: row starting on line {start}: broken CSV ({exc})") from None
                yield _row(path, start, rec, cfg)


def _parquet_rows(path: Path, cfg: BatchConfig) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
        raise DataError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    names = pf.schema_arrow.names
    if cfg.text_field not in names:
        raise DataError(f"{path}: no column {cfg.text_field!r} (columns: {', '.join(names)}); see --text-field")
    cols = [c for c in (cfg.id_field, cfg.text_field, cfg.entity_field, cfg.time_field) if c in names]
    line = 0
    for batch in pf.iter_batches(columns=cols, batch_size=8192):
        for rec in batch.to_pylist():
            line += 1
            yield _row(path, line, rec, cfg)


def _replab_rows(path: Path) -> Iterator[Row]:
    """Every English tweet with text of a RepLab 2013 corpus folder (the root, or its
    ``training`` split folder), in file order: id, text, the entity's name, the timestamp."""
    from edgerep.data.replab import entity_names, load_texts

    root, split = (path.parent, path.name) if (path / "tweet_info").is_dir() else (path, REPLAB_SPLIT)
    names = entity_names(root)
    tweets, _ = load_texts(root, split)
    for t in tweets:
        yield Row(t.tweet_id, t.text, names.get(t.entity_id, t.entity_id), None, t.timestamp)


def read_inputs(paths: Sequence[Path], cfg: BatchConfig) -> Iterator[Row]:
    """The rows of every input, one file after another (see :func:`read_rows`)."""
    for p in paths:
        yield from read_rows(Path(p), cfg)


def shards(rows: Iterator[Row], size: int) -> Iterator[tuple[int, list[Row]]]:
    """``(k, rows of shard k)`` for consecutive blocks of ``size`` rows."""
    k, block = 0, []
    for r in rows:
        block.append(r)
        if len(block) == size:
            yield k, block
            k, block = k + 1, []
    if block:
        yield k, block


# ----------------------------------------------------------------------------- classifying


def classify_rows(clf, rows: Sequence[Row], keep_text: bool = False) -> dict[str, list]:
    """Columns of :data:`COLUMNS` for ``rows`` with a loaded classifier (one tweet at a time, the
    runtime's fastest path on one thread); an unusable row gets ``error`` and no label; ``text``
    holds the tweet with ``keep_text``, else null."""
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for r in rows:
        err, pred = r.error, None
        if err is None:
            try:
                pred = clf.classify(r.text, r.entity if clf.entity_conditioned else None)
            except InputTextError as exc:
                err = str(exc)
        out["id"].append(r.id)
        out["entity"].append(r.entity)
        out["time"].append(r.time)
        out["error"].append(err)
        out["label"].append(pred.label if pred else None)
        for lab in LABELS:
            out[f"p_{lab.lower()}"].append(pred.probabilities[lab] if pred else None)
        out["related"].append(pred.related if pred else None)
        out["p_related"].append(pred.p_related if pred else None)
        out["text"].append(r.text if keep_text else None)
    return out


def _table(columns: dict[str, list], meta: dict[str, str]):
    import pyarrow as pa

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("entity", pa.string()),
            ("time", pa.timestamp("s", tz="UTC")),
            ("label", pa.string()),
            ("p_negative", pa.float32()),
            ("p_neutral", pa.float32()),
            ("p_positive", pa.float32()),
            ("related", pa.bool_()),
            ("p_related", pa.float32()),
            ("error", pa.string()),
            ("text", pa.string()),
        ],
        metadata={k.encode(): v.encode() for k, v in meta.items()},
    )
    return pa.Table.from_pydict({c: columns[c] for c in COLUMNS}, schema=schema)


def write_shard(path: Path, columns: dict[str, list], meta: dict[str, str]) -> tuple[int, int]:
    """Write one shard atomically; returns ``(rows, rows with an error)``."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(_table(columns, meta), tmp)
    os.replace(tmp, path)
    return len(columns["id"]), sum(e is not None for e in columns["error"])


_WORKER: dict = {}


def _init_worker(bundle: str, queue) -> None:
    from edgerep.device.runtime import PolarityClassifier

    _WORKER["clf"] = PolarityClassifier(bundle, num_threads=1)
    _WORKER["queue"] = queue


def _local_shard(path: str, rows: list[Row], meta: dict[str, str], keep_text: bool = False, step: int = 200) -> tuple[int, int]:
    clf, queue = _WORKER["clf"], _WORKER["queue"]
    parts: dict[str, list] = {c: [] for c in COLUMNS}
    for i in range(0, len(rows), step):
        for c, v in classify_rows(clf, rows[i : i + step], keep_text).items():
            parts[c].extend(v)
        queue.put(min(step, len(rows) - i))
    return write_shard(Path(path), parts, meta)


class _RayClassifier:
    """Ray Data actor: loads the bundle once, classifies NumPy batches of rows. The bundle's files
    travel as bytes (Ray's object store), so cluster nodes need no shared file system."""

    def __init__(self, files: list):
        import tempfile

        import ray

        from edgerep.device.runtime import PolarityClassifier

        contents: dict[str, bytes] = ray.get(files[0])  # a reference inside a list: Ray passes it on unresolved

        self._dir = tempfile.TemporaryDirectory(prefix="edgerep-bundle-")
        for name, data in contents.items():
            Path(self._dir.name, name).write_bytes(data)
        self.clf = PolarityClassifier(self._dir.name, num_threads=1)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [
            Row(str(i), t, e, err, None if tm < 0 else int(tm))
            for i, t, e, err, tm in zip(batch["id"], batch["text"], batch["entity"], batch["error"], batch["time"])
        ]
        cols = classify_rows(self.clf, rows)
        return {
            "id": np.asarray(cols["id"], dtype=object),
            "entity": np.asarray(cols["entity"], dtype=object),
            "time": np.asarray([-1 if v is None else v for v in cols["time"]], dtype=np.int64),
            "label": np.asarray(cols["label"], dtype=object),
            **{
                f"p_{lab.lower()}": np.asarray([np.nan if v is None else v for v in cols[f"p_{lab.lower()}"]], dtype=np.float32)
                for lab in LABELS
            },
            "related": np.asarray([-1 if v is None else int(v) for v in cols["related"]], dtype=np.int8),  # -1: none
            "p_related": np.asarray([np.nan if v is None else v for v in cols["p_related"]], dtype=np.float32),
            "error": np.asarray(cols["error"], dtype=object),
        }


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a Ray address that does not answer (``ray.init`` itself waits for minutes):
    a TCP connection to ``HOST:PORT`` (``ray://HOST:PORT`` or a GCS address) within ``timeout_s``.
    ``None`` and ``auto`` are left to Ray.

    Raises:
        ConfigError: a malformed address, or no answer (the message names the address).
    """
    import socket

    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"Ray cluster at {address} does not answer ({exc.strerror or exc}); start it with `ray start --head` or fix --address"
        ) from None


def _ray_init(cfg: BatchConfig):
    import logging

    import ray

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        if cfg.address is None:
            ray.init(num_cpus=cfg.n_workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=cfg.address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = (
            "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
            if cfg.address
            else ""
        )
        raise ConfigError(
            f"cannot use the Ray cluster at {cfg.address or '(a new local one)'}: {str(exc).splitlines()[0][:300]}{hint}"
        ) from None
    ctx = ray.data.DataContext.get_current()  # imports ray.data, which sets up its own loggers
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # edgerep's own bar counts the rows
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray


#: Shards classified by one Ray Data pipeline (one actor pool): bounds the rows held in Ray's
#: object store at a time (8 x 50,000 short tweets: about 100 MB) while actor start-up is paid
#: once per wave, not per shard.
RAY_WAVE_SHARDS = 8


def _ray_run(ray, files: list, pending, out: Path, meta: dict, cfg: BatchConfig, advance) -> None:
    wave: list = []
    for item in pending:
        wave.append(item)
        if len(wave) == RAY_WAVE_SHARDS:
            _ray_wave(ray, files, wave, out, meta, cfg, advance)
            wave = []
    if wave:
        _ray_wave(ray, files, wave, out, meta, cfg, advance)


def _ray_wave(ray, files: list, wave: list, out: Path, meta: dict, cfg: BatchConfig, advance) -> None:
    """One Ray Data pipeline over the rows of ``wave`` shards, in input order; each shard is
    written as soon as its last row is back."""
    import pyarrow as pa

    rows = [r for _, rs in wave for r in rs]
    src = pa.table(
        {
            "id": [r.id for r in rows],
            "text": [r.text for r in rows],
            "entity": [r.entity for r in rows],
            "error": [r.error for r in rows],
            "time": [-1 if r.time is None else r.time for r in rows],  # -1: none (Ray's numpy batches hold no nulls)
        },
        schema=pa.schema(
            [("id", pa.string()), ("text", pa.string()), ("entity", pa.string()), ("error", pa.string()), ("time", pa.int64())]
        ),
    )
    step = max(1, min(4 * cfg.batch_size, -(-len(rows) // cfg.n_workers)))
    # blocks made here, not by a repartition task: the actors hold every CPU of a local cluster
    # max_restarts=0: the actors' constructor argument (the bundle) lives in the object store, where a
    # restarted actor could not count on it (Ray logs an error line saying so otherwise); a failed
    # wave fails its shards, which a re-run of the same command redoes. Ray 2.60 has no named
    # parameter for it yet and marks the keyword form deprecated.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
        ds = ray.data.from_arrow([src.slice(i, step) for i in range(0, len(rows), step)]).map_batches(
            _RayClassifier,
            fn_constructor_args=(files,),
            batch_size=cfg.batch_size,
            concurrency=cfg.n_workers,
            num_cpus=1,
            batch_format="numpy",
            max_restarts=0,
        )
    buf: dict[str, list] = {c: [] for c in COLUMNS if c != "text"}  # the driver adds the text it read
    queue = list(wave)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        cols = batch.to_pydict()
        for key in (*(f"p_{lab.lower()}" for lab in LABELS), "p_related"):  # NaN: no probability in Ray's numpy batches
            cols[key] = [None if v != v else v for v in cols[key]]
        cols["related"] = [None if v < 0 else bool(v) for v in cols["related"]]
        cols["time"] = [None if v < 0 else v for v in cols["time"]]
        for c in buf:
            buf[c].extend(cols[c])
        advance(batch.num_rows)
        while queue and len(buf["id"]) >= len(queue[0][1]):
            k, rs = queue.pop(0)
            n = len(rs)
            text = [r.text if cfg.keep_text else None for r in rs]
            write_shard(out / f"part-{k:05d}.parquet", {**{c: v[:n] for c, v in buf.items()}, "text": text}, meta)
            buf = {c: v[n:] for c, v in buf.items()}
    if queue or buf["id"]:
        raise EdgerepError(
            f"Ray returned {sum(len(rs) for _, rs in wave) - sum(len(rs) for _, rs in queue) + len(buf['id'])} rows for {len(rows)}"
        )


# ----------------------------------------------------------------------------- the job


def _check_output(out: Path, identity: dict) -> None:
    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise ConfigError(f"{path}: unreadable; remove {out} or choose another output directory") from None
        diff = [k for k in sorted(set(identity) | set(old)) if identity.get(k) != old.get(k)]
        if diff:
            raise ConfigError(f"{out} holds the output of another job ({', '.join(diff)} differ); choose another output directory")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not an edgerep batch output; choose another output directory")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, identity)


def run_batch(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    bundle: str | os.PathLike,
    cfg: BatchConfig = BatchConfig(),
    show_progress: bool = True,
) -> dict:
    """Classify every row of ``inputs`` into Parquet shards under ``output``; return the summary.

    Resumes: finished shards (``part-K.parquet``) are skipped.

    Raises:
        DataError: a missing or unreadable input, a missing text column, broken CSV quoting
            (file and row named; finished shards are kept).
        ConfigError: the output directory belongs to another job; an unknown format or engine;
            a Ray address that does not answer. BundleError: an invalid bundle.
    """
    from edgerep.io import sha256_tree

    paths = [Path(p) for p in inputs]
    _check_job(paths, bundle, cfg)
    bundle_sha = sha256_tree(bundle, suffixes=(".tflite", ".onnx", ".json"))
    out = Path(output)
    identity = _identity(paths, cfg, bundle_sha)
    total = sum(1 for _ in read_inputs(paths, cfg))  # every input is read through before anything is written
    _check_output(out, identity)
    meta = {"edgerep.bundle_sha256": bundle_sha, "edgerep.bundle": str(Path(bundle).resolve()), "edgerep.version": __version__}
    done_before = sorted(out.glob("part-*.parquet"))
    n_workers = cfg.n_workers
    log(
        f"batch: {total:,} rows in {len(paths)} file(s) -> {out} ({cfg.engine} engine, {n_workers} workers, "
        f"shards of {cfg.shard_size:,}; {len(done_before)} finished shard(s) kept)"
    )
    t0, new_rows = time.perf_counter(), 0
    pending = ((k, rows) for k, rows in shards(read_inputs(paths, cfg), cfg.shard_size) if not (out / f"part-{k:05d}.parquet").is_file())
    with progress("batch", total, show=show_progress) as bar:
        bar.advance(min(total, len(done_before) * cfg.shard_size))

        def advance(n: int) -> None:
            nonlocal new_rows
            new_rows += n
            rate = new_rows / max(time.perf_counter() - t0, 1e-9)
            bar.advance(n, info=f"{rate:,.0f} tweets/s")

        if cfg.engine == "local":
            _local(pending, out, str(bundle), meta, n_workers, advance, cfg.keep_text)
        else:
            ray = _ray_init(cfg)
            try:
                files = [ray.put({f.name: f.read_bytes() for f in Path(bundle).iterdir() if f.is_file()})]
                _ray_run(ray, files, pending, out, meta, cfg, advance)
            finally:
                ray.shutdown()
    seconds = time.perf_counter() - t0
    summary = _summary(out, cfg, n_workers, total, new_rows, seconds, bundle_sha)
    atomic_write_json(out / "summary.json", summary)
    return summary


def _check_job(paths: list[Path], bundle: str | os.PathLike, cfg: BatchConfig) -> None:
    """Refuse a job that cannot run before anything is read or written.

    Raises:
        DataError: a missing input file. ConfigError: ``--entity`` for a bundle without entity
            conditioning; Ray missing or its address not answering. BundleError: an invalid bundle.
    """
    from edgerep.device.manifest import Manifest

    for p in paths:
        if input_format(p) != REPLAB_FORMAT and not p.is_file():
            raise DataError(f"{p}: input file not found")
    manifest = Manifest.read(bundle)
    if cfg.entity is not None and not manifest.entity_conditioned:
        raise ConfigError(f"--entity: {bundle} was trained without entity conditioning and takes no entity")
    if cfg.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--engine ray needs Ray: pip install 'edgerep[ray]'") from None
        check_ray_address(cfg.address)


def _identity(paths: list[Path], cfg: BatchConfig, bundle_sha: str) -> dict:
    """What the output is made from (``_edgerep_batch.json``): a re-run must match it."""
    return {
        "bundle_sha256": bundle_sha,
        "inputs": [_input_identity(p) for p in paths],
        "fields": {
            "text": cfg.text_field,
            "id": cfg.id_field,
            "entity": cfg.entity_field,
            "time": cfg.time_field,
            "default_entity": cfg.entity,
        },
        "shard_size": cfg.shard_size,
        "keep_text": cfg.keep_text,
        "schema": SCHEMA,
    }


def _input_identity(path: Path) -> dict:
    """What an input was: its path, bytes and SHA-256 (a RepLab folder: of its tweet files)."""
    from edgerep.io import sha256_file, sha256_tree

    if path.is_dir():
        files = [f for f in path.rglob("*") if f.is_file() and f.suffix in (".dat", ".tsv")]
        return {
            "path": str(path.resolve()),
            "bytes": sum(f.stat().st_size for f in files),
            "sha256": sha256_tree(path, suffixes=(".dat", ".tsv")),
        }
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _local(pending, out: Path, bundle: str, meta: dict, n_workers: int, advance, keep_text: bool = False) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no inherited threads or locks
    q = ctx.Queue()
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(bundle, q)) as pool:
        running: set = set()

        def drain(timeout: float) -> None:
            try:
                advance(q.get(timeout=timeout))
                while True:
                    advance(q.get_nowait())
            except queue_mod.Empty:
                pass

        for k, rows in pending:
            while len(running) >= 2 * n_workers:
                drain(0.2)
                finished, running = wait(running, timeout=0, return_when=FIRST_COMPLETED)
                for f in finished:
                    f.result()
            running.add(pool.submit(_local_shard, str(out / f"part-{k:05d}.parquet"), rows, meta, keep_text))
        while running:
            drain(0.2)
            finished, running = wait(running, timeout=0, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()
        drain(0.05)


def _summary(out: Path, cfg: BatchConfig, n_workers: int, total: int, new_rows: int, seconds: float, bundle_sha: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    labels = {lab: 0 for lab in LABELS}
    rows = errors = unrelated = 0
    for f in sorted(out.glob("part-*.parquet")):
        t = pq.read_table(f, columns=["label", "related", "error"])
        rows += t.num_rows
        errors += t.num_rows - int(pc.sum(pc.is_null(t["error"])).as_py() or 0)
        unrelated += int(pc.sum(pc.invert(pc.fill_null(t["related"], True))).as_py() or 0)
        for item in pc.value_counts(t["label"]).to_pylist():
            if item["values"] is not None:
                labels[item["values"]] += item["counts"]
    return {
        "schema": "edgerep.batch_summary",
        "edgerep_version": __version__,
        "rows": rows,
        "input_rows": total,
        "errors": errors,
        "labels": labels,
        "unrelated": unrelated,
        "classified_this_run": new_rows,
        "seconds_this_run": round(seconds, 2),
        "tweets_per_s_this_run": round(new_rows / seconds, 1) if seconds > 0 and new_rows else None,
        "engine": cfg.engine,
        "workers": n_workers,
        "bundle_sha256": bundle_sha,
        "config": asdict(cfg),
    }
