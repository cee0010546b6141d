"""``edgerep monitor``: an entity's reputation over time from classified archives.

Reads the Parquet shards of one or more ``edgerep batch`` outputs (the same bundle for all) and
writes, per entity and per time window (UTC day, ISO week or calendar month)::

    OUT/monitor.json     edgerep.monitor record: settings, the bundle, per entity its windows
                         (related tweet count, unrelated count, the three polarity shares by
                         every method with 95% intervals) and its alerts
    OUT/dashboard.html   one self-contained page (plotly.js inlined, opens offline): an overview
                         of every entity and a timeline per entity with the alerts marked
    OUT/edgerep.log      the log lines of the run

Tweets the bundle calls unrelated (``related`` false: a bundle that decides relatedness) are
counted beside and left out of every share, count and alert; from a polarity-only bundle every
tweet counts as related.

Aggregation runs in DuckDB over the Parquet files (no Python loop over rows); the expectation-
maximisation quantifier runs per window in NumPy on the posteriors DuckDB hands over.

Shares (:mod:`edgerep.measure.quantify`): ``cc`` (classify and count), ``pcc`` (mean posterior),
``acc`` (adjusted with the bundle's validation confusion matrix) and ``em`` (Saerens et al.'s
prior re-estimation from the validation class shares). ``acc`` and ``em`` need the bundle's
evaluation record (``evaluation.json`` beside the shipped bundle, or ``--evaluation``); without
it only ``cc`` and ``pcc`` are given. ``method`` names the share the dashboard and the alerts'
share figures show.

Alerts: a window whose count of tweets predicted NEGATIVE is improbably high given the entity's
recent windows. The baseline is the pooled negative rate of the ``baseline_windows`` previous
windows with at least ``min_tweets`` tweets (at least :data:`MIN_BASELINE` of them); the
window-to-window variation of real streams exceeds the binomial, so the count is tested against a
beta-binomial whose overdispersion is fitted to the baseline windows by the method of moments
(Kleinman, JASA 1973; Williams, Applied Statistics 1982). A window alerts when its upper-tail
p-value is below ``false_alarms_per_year / windows_per_year`` (Bonferroni over an entity's
windows of a year: at most ``false_alarms_per_year`` expected false alarms per entity-year when
the test is calibrated) and at least :data:`MIN_ALERT_NEGATIVES` tweets are predicted NEGATIVE.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerep import LABELS
from edgerep.errors import ConfigError, DataError, RecordError
from edgerep.io import atomic_write_json, atomic_write_text
from edgerep.log import configure, log

WINDOWS = {"day": 365.25, "week": 365.25 / 7, "month": 12.0}
METHODS = ("cc", "pcc", "acc", "em")
MIN_BASELINE = 3
MIN_ALERT_NEGATIVES = 3
BATCH_MANIFEST = "_edgerep_batch.json"
BATCH_SCHEMA = "edgerep.batch/3"
NEGATIVE = LABELS.index("NEGATIVE")


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of ``edgerep monitor``.

    Attributes:
        window: ``day``, ``week`` or ``month`` (UTC; weeks start on Monday, ISO 8601).
        min_tweets: a window with fewer tweets gets counts but no shares ("too few").
        method: the share shown on the dashboard and in alerts (one of :data:`METHODS`).
        baseline_windows: previous windows pooled into an entity's baseline.
        false_alarms_per_year: the alert threshold's expected false alarms per entity-year.
        top_ids: ids of the tweets most likely NEGATIVE named per alert.
        evaluation: the bundle's ``edgerep.evaluation`` record (validation confusion matrix and
            class shares); ``None``: ``evaluation.json`` beside the bundle, if any.
        show_text: give each alert's most negative tweets with their text (``top_negative``:
            id and text), from a batch output made with ``keep_text``.
    """

    window: str = "week"
    min_tweets: int = 30
    method: str = "pcc"
    baseline_windows: int = 8
    false_alarms_per_year: float = 0.5
    top_ids: int = 10
    evaluation: str | None = None
    show_text: bool = False

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ConfigError(f"window {self.window!r} unknown; valid: {', '.join(WINDOWS)}")
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r} unknown; valid: {', '.join(METHODS)}")
        if self.min_tweets < 1 or self.baseline_windows < MIN_BASELINE or self.top_ids < 0:
            raise ConfigError(f"min_tweets must be >= 1, baseline_windows >= {MIN_BASELINE}, top_ids >= 0")
        if not 0 < self.false_alarms_per_year < WINDOWS[self.window]:
            raise ConfigError(f"false_alarms_per_year must be in (0, {WINDOWS[self.window]:.0f}) for {self.window} windows")

    @property
    def alpha(self) -> float:
        """The per-window p-value threshold: ``false_alarms_per_year / windows per year``."""
        return self.false_alarms_per_year / WINDOWS[self.window]


# ----------------------------------------------------------------------------- inputs


def check_outputs(dirs: Sequence[str | os.PathLike]) -> tuple[list[Path], dict]:
    """The batch outputs' Parquet files and their common ``_edgerep_batch.json``.

    Raises:
        DataError: a folder that is not an ``edgerep batch`` output, one made without the entity
            and time columns, or one with no finished shard.
        ConfigError: outputs made with different bundles (mixed shards are refused).
    """
    files: list[Path] = []
    first: dict | None = None
    for d in map(Path, dirs):
        path = d / BATCH_MANIFEST
        if not path.is_file():
            raise DataError(f"{d}: not an edgerep batch output (no {BATCH_MANIFEST}); make one with edgerep batch")
        try:
            ident = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable ({exc})") from None
        if ident.get("schema") != BATCH_SCHEMA:
            raise DataError(
                f"{d}: a batch output in another format ({ident.get('schema')}, not {BATCH_SCHEMA}); classify it again with edgerep batch"
            )
        if first is not None and ident["bundle_sha256"] != first["bundle_sha256"]:
            raise ConfigError(
                f"{d} was classified by another bundle ({ident['bundle_sha256'][:12]}...) than {dirs[0]} "
                f"({first['bundle_sha256'][:12]}...); monitor outputs of one bundle together"
            )
        first = first or ident
        parts = sorted(d.glob("part-*.parquet"))
        if not parts:
            raise DataError(f"{d}: no finished shard (part-*.parquet); let edgerep batch finish")
        files += parts
    if first is None:
        raise ConfigError("give at least one batch output folder")
    return files, first


def bundle_of(files: Sequence[Path]) -> str | None:
    """The bundle path recorded in the shards' Parquet metadata (``edgerep.bundle``)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(files[0]).metadata or {}
    value = meta.get(b"edgerep.bundle")
    return value.decode() if value else None


def load_rates(evaluation: str | os.PathLike | None, bundle: str | None) -> tuple[dict | None, str | None]:
    """The bundle's validation error rates and class shares, and where they came from.

    Returns:
        ``({"confusion": int [3, 3], "tpr": [3], "fpr": [3], "priors": [3], "n": int}, path)``,
        or ``(None, None)`` when no record is given and none lies beside the bundle.

    Raises:
        RecordError: the given record is missing, not an evaluation, or its labels differ.
    """
    from edgerep.measure.quantify import one_vs_rest_rates
    from edgerep.measure.records import read_record

    path = Path(evaluation) if evaluation else (Path(bundle) / "evaluation.json" if bundle else None)
    if path is None or (evaluation is None and not path.is_file()):
        return None, None
    rec = read_record(path, "evaluation")
    m = rec["metrics"]
    if list(m["labels"]) != list(LABELS):
        raise RecordError(f"{path}: labels {m['labels']} differ from {list(LABELS)}")
    cm = np.asarray(m["confusion_matrix"], dtype=np.int64)
    tpr, fpr = one_vs_rest_rates(cm)
    priors = cm.sum(axis=1) / cm.sum()
    return {"confusion": cm, "tpr": tpr, "fpr": fpr, "priors": priors, "n": int(cm.sum())}, str(path)


# ----------------------------------------------------------------------------- aggregation


def _connect():
    try:
        import duckdb
    except ImportError:
        raise ConfigError("edgerep monitor needs DuckDB and plotly: pip install 'edgerep[monitor]'") from None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _parquet_sql(files: Sequence[Path]) -> str:
    """``read_parquet([...])`` over the shards (paths quoted as SQL strings)."""
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return f"read_parquet([{paths}])"


def _rows_sql(files: Sequence[Path], window: str) -> str:
    return (
        f"SELECT id, entity, CAST(epoch(date_trunc('{window}', time)) AS BIGINT) AS w, label, p_negative, p_neutral, p_positive, "
        f"related IS NOT FALSE AS rel, text FROM {_parquet_sql(files)} WHERE error IS NULL AND time IS NOT NULL AND entity IS NOT NULL"
    )


def aggregate(files: Sequence[Path], cfg: MonitorConfig, con=None) -> dict:
    """Per (entity, window): counts of related rows (``n``), of unrelated rows (``unrelated``)
    and of predicted labels, and the mean posteriors of the related rows (DuckDB), and the EM
    input (the related rows' posteriors ordered by entity and window).

    Returns:
        ``{"windows": {column: array}, "posteriors": float32 [n, 3], "bounds": int64 [g + 1],
        "rows": {total, used, unrelated, errors, no_time}}``; window ``g``'s posteriors are
        ``posteriors[bounds[g]:bounds[g + 1]]``.
    """
    con = con or _connect()
    rows = _rows_sql(files, cfg.window)
    totals = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE error IS NOT NULL), count(*) FILTER (WHERE error IS NULL AND time IS NULL) "
        f"FROM {_parquet_sql(files)}"
    ).fetchone()
    agg = con.execute(
        "SELECT entity, w, count(*) FILTER (WHERE rel) AS n, count(*) FILTER (WHERE NOT rel) AS unrelated, "
        + ", ".join(f"count(*) FILTER (WHERE rel AND label = '{lab}') AS k_{lab.lower()}" for lab in LABELS)
        + ", "
        + ", ".join(f"avg(p_{lab.lower()}) FILTER (WHERE rel) AS pcc_{lab.lower()}" for lab in LABELS)
        + f" FROM ({rows}) GROUP BY entity, w ORDER BY entity, w"
    ).fetchnumpy()
    post = con.execute(f"SELECT p_negative, p_neutral, p_positive FROM ({rows}) WHERE rel ORDER BY entity, w").fetchnumpy()
    posteriors = np.stack([np.asarray(post[f"p_{lab.lower()}"], dtype=np.float32) for lab in LABELS], axis=1)
    n = np.asarray(agg["n"], dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(n)])
    used = int(n.sum())
    return {
        "windows": {k: np.asarray(v) for k, v in agg.items()},
        "posteriors": posteriors,
        "bounds": bounds,
        "rows": {
            "total": int(totals[0]),
            "used": used,
            "unrelated": int(np.sum(agg["unrelated"])),
            "errors": int(totals[1]),
            "no_time": int(totals[2]),
        },
    }


def shares(agg: dict, rates: dict | None, min_tweets: int) -> dict[str, dict[str, np.ndarray]]:
    """The three shares and their 95% intervals per window by every method available.

    Returns:
        ``{method: {"share": float [g, 3], "low": float [g, 3], "high": float [g, 3]}}``; rows
        of windows under ``min_tweets`` are NaN.
    """
    from edgerep.measure.quantify import adjusted_count, em_priors, renormalise, wilson_interval

    w = agg["windows"]
    n = w["n"].astype(np.float64)
    counts = np.stack([w[f"k_{lab.lower()}"] for lab in LABELS], axis=1).astype(np.float64)
    enough = n >= min_tweets
    out: dict[str, dict[str, np.ndarray]] = {}
    cc = counts / n[:, None]
    lo, hi = wilson_interval(counts, n[:, None])
    out["cc"] = {"share": cc, "low": lo, "high": hi}
    pcc = np.stack([w[f"pcc_{lab.lower()}"] for lab in LABELS], axis=1).astype(np.float64)
    lo, hi = wilson_interval(pcc * n[:, None], n[:, None])
    out["pcc"] = {"share": pcc, "low": lo, "high": hi}
    if rates is not None:
        acc = renormalise(adjusted_count(cc, rates["tpr"], rates["fpr"]))
        lo = np.minimum(adjusted_count(out["cc"]["low"], rates["tpr"], rates["fpr"]), acc)
        hi = np.maximum(adjusted_count(out["cc"]["high"], rates["tpr"], rates["fpr"]), acc)
        out["acc"] = {"share": acc, "low": lo, "high": hi}
        em = np.full_like(cc, np.nan)
        b, post = agg["bounds"], agg["posteriors"]
        for g in np.flatnonzero(enough):
            em[g], _ = em_priors(post[b[g] : b[g + 1]], rates["priors"])
        lo, hi = wilson_interval(em * n[:, None], n[:, None])
        out["em"] = {"share": em, "low": lo, "high": hi}
    for est in out.values():
        for key in est:
            est[key] = np.where(enough[:, None], est[key], np.nan)
    return out


# ----------------------------------------------------------------------------- alerts


def beta_binomial_pvalue(k: int, n: int, baseline_k: np.ndarray, baseline_n: np.ndarray) -> tuple[float, float, float]:
    """Upper-tail p-value ``P(X >= k)`` of ``k`` negatives in ``n`` tweets against baseline windows.

    The baseline rate is the pooled ``sum(baseline_k) / sum(baseline_n)``; the beta-binomial's
    intra-window correlation ``rho`` is the method-of-moments estimate from the baseline windows'
    rates (their variance beyond the binomial; Kleinman, JASA 1973), 0 when there is none.

    Returns:
        ``(p_value, baseline_rate, rho)``.
    """
    from scipy.stats import betabinom, binom

    bk, bn = np.asarray(baseline_k, dtype=np.float64), np.asarray(baseline_n, dtype=np.float64)
    mu = float(np.clip(bk.sum() / bn.sum(), 1e-4, 1 - 1e-4))
    rates = bk / bn
    observed = float(np.average((rates - mu) ** 2, weights=bn)) * len(bn) / max(len(bn) - 1, 1)
    binomial = mu * (1 - mu) * len(bn) / bn.sum()
    extra = max(observed - binomial, 0.0)
    rho = float(np.clip(extra / (mu * (1 - mu)), 0.0, 0.5))
    if rho < 1e-6:
        return float(binom.sf(k - 1, n, mu)), mu, 0.0
    ab = (1 - rho) / rho
    return float(betabinom.sf(k - 1, n, mu * ab, (1 - mu) * ab)), mu, rho


def alerts(agg: dict, est: dict, cfg: MonitorConfig) -> list[dict]:
    """The alerts of every entity (module docstring): one dict per alerting window with entity,
    window start (Unix seconds), count, negatives, share and baseline with intervals, p-value,
    threshold and the overdispersion ``rho``."""
    from edgerep.measure.quantify import wilson_interval

    w = agg["windows"]
    ents, starts, n, k = w["entity"], w["w"], w["n"], w["k_negative"]
    out = []
    for e in np.unique(ents):
        idx = np.flatnonzero(ents == e)
        usable = [i for i in idx if n[i] >= cfg.min_tweets]
        for j, i in enumerate(usable):
            base = usable[max(0, j - cfg.baseline_windows) : j]
            if len(base) < MIN_BASELINE or k[i] < MIN_ALERT_NEGATIVES:
                continue
            p, mu, rho = beta_binomial_pvalue(int(k[i]), int(n[i]), k[base], n[base])
            if p >= cfg.alpha or k[i] / n[i] <= mu:
                continue
            lo, hi = wilson_interval(int(k[base].sum()), int(n[base].sum()))
            share = est[cfg.method]
            out.append(
                {
                    "entity": str(e),
                    "window": int(starts[i]),
                    "tweets": int(n[i]),
                    "negatives": int(k[i]),
                    "negative_share": _r(share["share"][i, NEGATIVE]),
                    "negative_share_interval": [_r(share["low"][i, NEGATIVE]), _r(share["high"][i, NEGATIVE])],
                    "baseline_rate": _r(mu),
                    "baseline_interval": [_r(float(lo)), _r(float(hi))],
                    "baseline_windows": len(base),
                    "rho": _r(rho),
                    "p_value": float(f"{p:.3g}"),
                    "threshold": float(f"{cfg.alpha:.3g}"),
                    "_row": int(i),
                }
            )
    return out


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _top_negative(con, files: Sequence[Path], cfg: MonitorConfig, entity: str, window: int) -> list[tuple[str, str | None]]:
    """``(id, text)`` of the window's related tweets most likely NEGATIVE, most likely first."""
    rows = _rows_sql(files, cfg.window)
    got = con.execute(
        f"SELECT id, text FROM ({rows}) WHERE rel AND entity = ? AND w = ? ORDER BY p_negative DESC LIMIT ?", [entity, window, cfg.top_ids]
    )
    return [(r[0], r[1]) for r in got.fetchall()]


# ----------------------------------------------------------------------------- the job


def monitor(dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, cfg: MonitorConfig = MonitorConfig()) -> dict:
    """Aggregate batch outputs into ``OUT/monitor.json`` and ``OUT/dashboard.html``; return the record.

    Raises:
        DataError: a folder that is not a batch output (or lacks entity/time columns), no rows
            with an entity and a time.
        ConfigError: mixed bundles; ``method`` acc/em without an evaluation record; DuckDB or
            plotly missing.
        RecordError: a given evaluation record that cannot be read.
    """
    from edgerep.app.dashboard import render_dashboard
    from edgerep.measure.records import make_record

    t0 = time.perf_counter()
    files, ident = check_outputs(dirs)
    if cfg.show_text and not ident.get("keep_text"):
        raise ConfigError(f"--show-text: {dirs[0]} holds no tweet texts; classify the archive with edgerep batch --keep-text")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configure(log_file=out / "edgerep.log")
    bundle = bundle_of(files)
    rates, rates_path = load_rates(cfg.evaluation, bundle)
    if rates is None and cfg.method in ("acc", "em"):
        raise ConfigError(
            f"--method {cfg.method} needs the bundle's validation record: give --evaluation (edgerep evaluate BUNDLE -o FILE)"
        )
    if rates is None:
        log("[yellow]monitor[/]: no evaluation record of the bundle (give --evaluation): shares by cc and pcc only")
    con = _connect()
    agg = aggregate(files, cfg, con)
    if agg["rows"]["used"] == 0:
        raise DataError(f"{', '.join(map(str, dirs))}: no classified row with an entity and a time (see batch --time-field)")
    est = shares(agg, rates, cfg.min_tweets)
    found = alerts(agg, est, cfg)
    for a in found:
        top = _top_negative(con, files, cfg, a["entity"], a["window"])
        a["top_negative_ids"] = [i for i, _ in top]
        if cfg.show_text:
            a["top_negative"] = [{"id": i, "text": t} for i, t in top]
    entities = _entities(agg, est, found, cfg)
    record = make_record(
        "monitor",
        {
            "inputs": [str(Path(d).resolve()) for d in dirs],
            "bundle": bundle,
            "bundle_sha256": ident["bundle_sha256"],
            "evaluation": rates_path,
            "settings": asdict(cfg) | {"alpha": cfg.alpha},
            "methods": list(est),
            "rows": agg["rows"],
            "entities": entities,
            "alerts": [{k: v for k, v in a.items() if not k.startswith("_")} for a in found],
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )
    atomic_write_json(out / "monitor.json", record)
    atomic_write_text(out / "dashboard.html", render_dashboard(record))
    log(
        f"monitor: {agg['rows']['used']:,} related tweets ({agg['rows']['unrelated']:,} unrelated left out), {len(entities)} entities, {sum(len(e['windows']) for e in entities):,} "
        f"{cfg.window}s, {len(found)} alert(s) -> {out / 'dashboard.html'} in {record['seconds']:.1f} s"
    )
    return record


def _entities(agg: dict, est: dict, found: list[dict], cfg: MonitorConfig) -> list[dict]:
    w = agg["windows"]
    ents = w["entity"]
    by_row = {a["_row"] for a in found}
    out = []
    for e in np.unique(ents):
        idx = np.flatnonzero(ents == e)
        windows = []
        for i in idx:
            row = {
                "start": int(w["w"][i]),
                "tweets": int(w["n"][i]),
                "unrelated": int(w["unrelated"][i]),
                "counts": {lab: int(w[f"k_{lab.lower()}"][i]) for lab in LABELS},
            }
            if w["n"][i] >= cfg.min_tweets:
                row["shares"] = {
                    m: {lab: [_r(s["share"][i, c]), _r(s["low"][i, c]), _r(s["high"][i, c])] for c, lab in enumerate(LABELS)}
                    for m, s in est.items()
                }
            else:
                row["too_few"] = True
            if i in by_row:
                row["alert"] = True
            windows.append(row)
        out.append({"entity": str(e), "tweets": int(w["n"][idx].sum()), "unrelated": int(w["unrelated"][idx].sum()), "windows": windows})
    return out
