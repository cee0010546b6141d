"""Micro-batching (one inference thread takes every waiting request) and the server's counters."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import asyncio
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgerep.device.runtime import PolarityClassifier
from edgerep.device.serve.config import RequestError, ServeConfig


class MicroBatcher:
    """Queue of pending texts served by one inference thread in batches.

    ``submit(texts)`` returns float32 logits [len(texts), n_classes] once the batch holding them
    has run. Statistics: ``batches``, ``batched_texts``, ``inference_s``.
    """

    def __init__(self, clf: PolarityClassifier, cfg: ServeConfig):
        self.clf = clf
        self.cfg = cfg
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending_texts = 0
        self.batches = 0
        self.batched_texts = 0
        self.inference_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgerep-infer")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, texts: list[str], entity: str | None = None) -> np.ndarray:
        if self.pending_texts + len(texts) > self.cfg.max_queue_texts:
            raise RequestError(503, f"overloaded: {self.pending_texts} texts waiting; retry later")
        fut = asyncio.get_running_loop().create_future()
        self.pending_texts += len(texts)
        await self.queue.put((texts, None if entity is None else [entity] * len(texts), fut))
        return await fut

    def _infer(self, texts: list[str], entities: list[str] | None) -> np.ndarray:
        # Each tweet runs in its length bucket, not through the batch signature: dynamic-range
        # int8 quantizes activations per call, so a batched tweet's logits would depend on its
        # neighbours; buckets are also the faster path at 1 thread.
        return self.clf.logits(texts, batch_size=1, entities=entities)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            n = len(group[0][0])
            deadline = loop.time() + self.cfg.max_wait_ms / 1e3
            while n < self.cfg.max_batch:
                try:
                    item = (
                        self.queue.get_nowait()
                        if loop.time() >= deadline
                        else await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                    )
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                group.append(item)
                n += len(item[0])
            texts = [t for ts, _, _ in group for t in ts]
            entities = [e for _, es, _ in group for e in es] if self.clf.entity_conditioned else None
            t0 = time.perf_counter()
            try:
                logits = await loop.run_in_executor(self._pool, self._infer, texts, entities)
            except Exception as e:  # an engine failure must fail these requests, not the worker
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                s = 0
                for ts, _, fut in group:
                    if not fut.done():
                        fut.set_result(logits[s : s + len(ts)])
                    s += len(ts)
            finally:
                self.inference_s += time.perf_counter() - t0
                self.batches += 1
                self.batched_texts += len(texts)
                self.pending_texts -= len(texts)


class Stats:
    """Request counters, slow connections dropped, and a window of the last 10,000 request latencies (ms)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.status: Counter = Counter()
        self.texts = 0
        self.slow_dropped = 0
        self.latencies_ms: deque = deque(maxlen=10_000)

    def snapshot(self, batcher: MicroBatcher) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        uptime = time.time() - self.started
        return {
            "uptime_s": round(uptime, 1),
            "requests_total": sum(self.status.values()),
            "requests_by_status": {str(k): v for k, v in sorted(self.status.items())},
            "texts_classified": self.texts,
            "batches": batcher.batches,
            "mean_batch_texts": round(batcher.batched_texts / batcher.batches, 2) if batcher.batches else None,
            "queue_texts": batcher.pending_texts,
            "inference_busy_percent": round(100 * batcher.inference_s / uptime, 1) if uptime else None,
            "slow_connections_dropped": self.slow_dropped,
            "latency_ms": {
                "window": int(lat.size),
                **({f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)} if lat.size else {}),
                **({"max": round(float(lat.max()), 3)} if lat.size else {}),
            },
        }
