"""Scaling of ``edgerep batch`` on this machine: local engine with 1 and 2 worker processes and
Ray Data with 2 actors, on one archive built from the corpus; tweets/s, scaling efficiency,
peak RSS per worker, Ray's overhead against the local engine, and a capacity projection.

    python benchmarks/batch_scaling.py --bundle runs/default/bundles/recommended \\
        --data ../shared/data/replab2013 --tweets 1000000 --work runs/batch-scaling

The archive (``WORK/archive.jsonl``, built once): every English tweet of the training split
that has a text (labelled or not; 35,979) with its entity's name, repeated in corpus order
until ``--tweets`` rows; the k-th copy of tweet T listed under entity E has id ``T:E:k`` (472
rows of the corpus list one tweet under two entities, so ``T:k`` alone repeats). Copies keep the
text, so each row costs a real inference (the runtime caches nothing between tweets).

Checked after each run: the output holds every input row once (row count, distinct ids, ids in
input order) and, across runs, the same labels and probabilities as the first run.

Peak RSS per worker: the largest resident set of any worker process (the local engine's
spawned processes; Ray's ``_RayClassifier`` actors) sampled every 0.5 s by psutil. Each run
writes into a fresh output folder; the record is ``WORK/scaling.json`` (``edgerep.batch_scaling``).
The projection (cores for 100M tweets in an hour) divides the required rate by the measured
per-worker rate at 2 workers: a projection from this machine, not a measurement of a cluster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def build_archive(data_root: Path, path: Path, n: int) -> Path:
    """The ``n``-row JSONL archive described in the module docstring (reused when complete)."""
    from edgerep.data.replab import entity_names, load_texts

    if path.is_file() and sum(1 for _ in open(path)) == n:
        return path
    raw, _ = load_texts(data_root, "training")
    names = entity_names(data_root)
    # 472 rows of the corpus list one tweet under two entities: the entity id keeps archive ids unique
    base = [(r.tweet_id, r.entity_id, r.text, names.get(r.entity_id, r.entity_id)) for r in raw if r.text]
    tmp = path.with_suffix(".partial")
    with open(tmp, "w") as f:
        for i in range(n):
            tid, eid, text, entity = base[i % len(base)]
            f.write(json.dumps({"id": f"{tid}:{eid}:{i // len(base)}", "text": text, "entity": entity}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def check_output(out: Path, archive: Path, n: int, reference=None) -> dict:
    """Every input row once in ``out`` (count, distinct ids, input order), and the same labels and
    probabilities as ``reference`` (the first run's table) when given."""
    import glob

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(out / "part-*.parquet")))])
    ids = table.column("id").to_pylist()
    with open(archive) as f:
        in_order = all(json.loads(line)["id"] == i for line, i in zip(f, ids))
    check = {"output_rows": table.num_rows, "distinct_ids": len(set(ids)), "ids_in_input_order": in_order and len(ids) == n, "_table": table}
    if reference is not None:
        check["same_labels_as_first_run"] = table.column("label").equals(reference.column("label"))
        check["max_abs_prob_diff_vs_first_run"] = max(
            float(np.abs(np.asarray(table.column(c)) - np.asarray(reference.column(c))).max()) for c in ("p_negative", "p_neutral", "p_positive"))
    return check


class PeakWorkerRSS:
    """Samples the resident set of worker processes (children of this process, and Ray actors
    running ``_RayClassifier``) every ``interval_s``; ``peak_mb`` is the largest seen (MB = 10^6 B)."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s, self.peak_mb, self._stop = interval_s, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _workers(self):
        me = psutil.Process()
        seen = {p.pid: p for p in me.children(recursive=True)}
        for p in psutil.process_iter(["cmdline"]):
            if any("_RayClassifier" in part for part in (p.info.get("cmdline") or [])):
                seen[p.pid] = p
        return seen.values()

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self._workers():
                try:
                    cmd = " ".join(p.cmdline())
                    if "spawn" in cmd or "_RayClassifier" in cmd:
                        self.peak_mb = max(self.peak_mb, p.memory_info().rss / 1e6)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="bundle to classify with")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "replab2013", help="RepLab 2013 root")
    ap.add_argument("--tweets", type=int, default=1_000_000, help="archive rows (default 1,000,000)")
    ap.add_argument("--work", type=Path, default=Path("runs/batch-scaling"), help="archive, outputs and scaling.json")
    ap.add_argument("--shard-size", type=int, default=50_000)
    ap.add_argument("--runs", default="local:1,local:2,ray:2", help="ENGINE:WORKERS, comma-separated (default: %(default)s)")
    a = ap.parse_args(argv)

    from edgerep.app.batch import BatchConfig, run_batch
    from edgerep.measure.records import make_record, write_record

    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    archive = build_archive(a.data, a.work / "archive.jsonl", a.tweets)
    print(f"archive: {archive} ({a.tweets:,} rows, {archive.stat().st_size / 1e6:.0f} MB; {time.perf_counter() - t0:.0f} s)")
    results = []
    for spec in a.runs.split(","):
        engine, workers = spec.split(":")
        out = a.work / f"out-{engine}-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        with PeakWorkerRSS() as rss:
            t1 = time.perf_counter()
            summary = run_batch([archive], out, a.bundle, BatchConfig(engine=engine, workers=int(workers), shard_size=a.shard_size))
            wall = time.perf_counter() - t1
        row = {"engine": engine, "workers": int(workers), "rows": summary["rows"], "errors": summary["errors"],
               "wall_s": round(wall, 1), "tweets_per_s": round(summary["rows"] / wall, 1),
               "tweets_per_s_inference_loop": summary["tweets_per_s_this_run"], "peak_rss_per_worker_mb": round(rss.peak_mb, 1)}
        row.update(check_output(out, archive, a.tweets, results[0]["_table"] if results else None))
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "_table"}))
    by = {(r["engine"], r["workers"]): r for r in results}
    derived = {}
    if ("local", 1) in by and ("local", 2) in by:
        derived["local_2_over_1"] = round(by[("local", 2)]["tweets_per_s"] / by[("local", 1)]["tweets_per_s"], 3)
        derived["scaling_efficiency_2_workers"] = round(derived["local_2_over_1"] / 2, 3)
    if ("ray", 2) in by and ("local", 2) in by:
        derived["ray_over_local_2_workers"] = round(by[("ray", 2)]["tweets_per_s"] / by[("local", 2)]["tweets_per_s"], 3)
    if ("local", 2) in by:
        per_worker = by[("local", 2)]["tweets_per_s"] / 2
        derived["projection_cores_for_100M_per_hour"] = int(-(-100e6 / 3600 // per_worker))
        derived["projection_basis"] = f"{per_worker:.0f} tweets/s per worker (local engine, 2 workers, this machine)"
    for r in results:
        r.pop("_table", None)
    rec = make_record("batch_scaling", {"bundle": str(a.bundle), "archive": {"rows": a.tweets, "path": str(archive)},
                                        "shard_size": a.shard_size, "results": results, "derived": derived})
    write_record(a.work / "scaling.json", rec)
    print(json.dumps(derived, indent=1))
    print(f"record written to {a.work / 'scaling.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
