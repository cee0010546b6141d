"""The resumable epoch loop of fine-tuning, pretraining and distillation (heavy: torch).

One run lives in a directory::

    checkpoints/epoch-K/      weights after epoch K, history so far (+ optimizer state for the latest)
    checkpoints/mid-epoch/    inside an epoch: weights, optimizer, schedule, RNG state, batches done
    model/                    the finished model (its info file marks it complete)

:class:`TrainingRun` skips a finished run, runs the epochs left (each one checkpointed as it
ends) and writes the closing log line with the run's duration; :func:`batch_pass` is the one
loop over an epoch's batches (progress bar, optimizer step, mid-epoch checkpoints). Each
epoch's batch order and torch's RNG (dropout, masking) draw from ``seed * 1000 + epoch``
(:func:`epoch_batches`), and a mid-epoch checkpoint keeps torch's RNG state, so a resumed run
reproduces the uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgerep.io import atomic_directory
from edgerep.log import log, progress
from edgerep.registry import MODEL_INFO_FILE, TOKENIZER_FILE

#: Minutes of training between mid-epoch checkpoints (``--checkpoint-minutes`` of train and distill).
DEFAULT_CHECKPOINT_MINUTES = 10.0


def epoch_batches(ids: list[np.ndarray], batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: index arrays into ``ids`` (:func:`grouped_batches`), their
    order drawn from ``seed * 1000 + epoch``; torch's RNG (dropout, masking) is seeded the same,
    so a resumed run reproduces the uninterrupted one."""
    import torch

    torch.manual_seed(seed * 1000 + epoch)
    rng = np.random.default_rng(seed * 1000 + epoch)
    return grouped_batches(np.asarray([len(x) for x in ids]), batch_size, rng)


def grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-grouped batches (index arrays into ``lengths``, int [n] token counts): shuffle,
    sort within windows of 50 batches, shuffle the batches. Cuts padding, and so CPU time, while
    keeping batches random."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[np.ndarray] = []
    for s in range(0, len(order), window):
        chunk = order[s : s + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads: ``threads``, or torch's default (all cores) for ``None``."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def save_tokenizer(hf_tokenizer, out: Path) -> Path:
    """``out/tokenizer``, the source model's tokenizer files written there once (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = out / "tokenizer"
    if not (tok_dir / TOKENIZER_FILE).is_file():
        with atomic_directory(tok_dir, overwrite=True) as tmp:
            hf_tokenizer.save_pretrained(tmp)
    return tok_dir


class OptimizerSettings(Protocol):
    """What :func:`make_optimizer` reads of a training config (fine-tuning, pretraining, distillation)."""

    @property
    def learning_rate(self) -> float: ...

    @property
    def weight_decay(self) -> float: ...

    @property
    def warmup_ratio(self) -> float: ...


def make_optimizer(model, config: OptimizerSettings, total_steps: int):
    """``(optimizer, scheduler)``: AdamW (no weight decay on biases and norms; Loshchilov &
    Hutter, ICLR 2019) with linear warm-up over ``warmup_ratio * total_steps`` steps then linear
    decay to 0 (transformers' ``get_linear_schedule_with_warmup``)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in params if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in params if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)


def optimizer_step(model, loss, optimizer, scheduler) -> float:
    """Backward pass, gradient-norm clipping to 1.0, optimizer and schedule step, gradients
    cleared; returns the loss as a float. The one update rule of every training pass."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _save_optimizer(directory: Path, optimizer, scheduler) -> None:
    """``directory/optimizer.pt``: the optimizer's and the schedule's state."""
    import torch

    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, directory / "optimizer.pt")


def _load_optimizer(directory: Path, optimizer, scheduler) -> None:
    """Restore the optimizer and schedule from ``directory/optimizer.pt``."""
    import torch

    saved = torch.load(directory / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])


def latest_checkpoint(root: Path) -> Path | None:
    """The latest complete epoch checkpoint ``root/epoch-K`` (weights, ``state.json`` and
    optimizer state), or ``None``."""
    if not root.is_dir():
        return None
    done = [p for p in root.glob("epoch-*") if (p / "state.json").is_file() and (p / "optimizer.pt").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def resume_state(latest: Path | None, optimizer, scheduler) -> tuple[list[dict], int]:
    """Load the optimizer and scheduler state of the ``latest`` checkpoint: ``(history, next
    epoch)``; ``([], 1)`` without one."""
    if latest is None:
        return [], 1
    state = json.loads((latest / "state.json").read_text())
    _load_optimizer(latest, optimizer, scheduler)
    log(f"[yellow]resuming[/] after epoch {state['epoch']} from {latest}")
    return state["history"], state["epoch"] + 1


def save_checkpoint(root: Path, epoch: int, model, optimizer, scheduler, history: list[dict], modules: dict | None = None) -> None:
    """Write ``root/epoch-K`` atomically: the weights, the optimizer and schedule state, the
    history so far, and each of ``modules`` (file name -> torch module, e.g. an auxiliary head)
    as its state dict; older checkpoints keep their weights only."""
    import torch

    with atomic_directory(root / f"epoch-{epoch}", overwrite=True) as tmp:
        model.save_pretrained(tmp)
        for name, module in (modules or {}).items():
            torch.save(module.state_dict(), tmp / name)
        _save_optimizer(tmp, optimizer, scheduler)
        (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "history": history}, indent=2))
    # The optimizer state (2x the weights) is only needed in the latest checkpoint.
    for old in root.glob("epoch-*"):
        if old.name != f"epoch-{epoch}" and (old / "optimizer.pt").exists():
            (old / "optimizer.pt").unlink()


def install_model(final: Path, checkpoint: Path, tokenizer_files: list[Path], info: dict, skip: Sequence[str] = ()) -> None:
    """Write a finished model directory atomically: the checkpoint's weights and config (not its
    optimizer state, history or the files in ``skip``), the tokenizer files, and
    ``edgerep_model.json`` = ``info``."""
    with atomic_directory(final, overwrite=True) as tmp:
        for f in checkpoint.iterdir():
            if f.name not in ("optimizer.pt", "state.json", *skip):
                shutil.copy2(f, tmp / f.name)
        for f in tokenizer_files:
            shutil.copy2(f, tmp / f.name)
        (tmp / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


class MidEpoch:
    """Checkpoints inside an epoch, in ``checkpoints/mid-epoch/``: the weights, optimizer and
    schedule state, torch's CPU RNG state (dropout) and the batches done, written atomically
    every ``minutes`` of training. Resuming restores all of it and skips the batches done; the
    batch order is redrawn from the epoch's seed, so the resumed epoch equals the uninterrupted
    one. Cleared when the epoch's own checkpoint is written.
    """

    DIR = "mid-epoch"

    def __init__(self, root: Path, minutes: float | None, restored: MidEpoch | None = None, state: dict | None = None):
        self.root, self.minutes = root, minutes
        self.path = root / self.DIR
        self.state: dict = state or {}
        self._restored = restored
        self._last = time.perf_counter()

    @property
    def epoch(self) -> int:
        return int(self.state.get("epoch", 0))

    @classmethod
    def find(cls, root: Path, latest: Path | None) -> MidEpoch | None:
        """The mid-epoch checkpoint after the ``latest`` epoch checkpoint, or ``None`` (a stale
        one, from an epoch already complete, is removed)."""
        path = root / cls.DIR
        if not (path / "state.json").is_file():
            return None
        state = json.loads((path / "state.json").read_text())
        done = int(latest.name.split("-")[1]) if latest is not None else 0
        if state["epoch"] != done + 1:
            shutil.rmtree(path)
            return None
        return cls(root, None, state=state)

    def restore(self, optimizer, scheduler) -> list[dict]:
        """Load the optimizer and schedule state; return the history of the complete epochs."""
        _load_optimizer(self.path, optimizer, scheduler)
        log(f"[yellow]resuming[/] epoch {self.epoch} after batch {self.state['batches_done']} from {self.path}")
        return self.state["history"]

    def progress(self, epoch: int) -> tuple[int, float, int]:
        """``(batches done, loss sum, tweets seen)`` of ``epoch`` restored from the checkpoint
        (and torch's RNG state set to where it was), else zeros."""
        import torch

        r = self._restored
        if r is None or r.epoch != epoch:
            return 0, 0.0, 0
        self._restored = None
        torch.set_rng_state(torch.load(r.path / "rng.pt", weights_only=True))
        return int(r.state["batches_done"]), float(r.state["loss_sum"]), int(r.state["seen"])

    def maybe_save(self, epoch: int, done: int, loss_sum: float, seen: int, model, optimizer, scheduler, history: list[dict]) -> None:
        """Write a checkpoint after batch ``done`` if ``minutes`` have passed since the last."""
        import torch

        if self.minutes is None or time.perf_counter() - self._last < self.minutes * 60:
            return
        with atomic_directory(self.path, overwrite=True) as tmp:
            model.save_pretrained(tmp)
            _save_optimizer(tmp, optimizer, scheduler)
            torch.save(torch.get_rng_state(), tmp / "rng.pt")
            state = {"epoch": epoch, "batches_done": done, "loss_sum": loss_sum, "seen": seen, "history": history}
            (tmp / "state.json").write_text(json.dumps(state, indent=2))
        self._last = time.perf_counter()

    def clear(self) -> None:
        """Remove the mid-epoch checkpoint (its epoch is complete)."""
        if self.path.exists():
            shutil.rmtree(self.path)


class LossTally:
    """The running mean training loss per tweet of a pass (each batch's mean loss weighted by
    its size); :func:`batch_pass` adds to it and shows :meth:`info` on the progress bar."""

    def __init__(self, loss_sum: float = 0.0, seen: int = 0):
        self.loss_sum, self.seen = loss_sum, seen

    def add(self, k: int, batch: np.ndarray, loss: float) -> None:
        """Count batch ``k`` (index array) with mean loss ``loss``."""
        self.loss_sum += loss * len(batch)
        self.seen += len(batch)

    @property
    def mean(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    def info(self) -> str:
        return f"loss {self.mean:.4f}"


@dataclass
class Fit:
    """What one run trains and resumes: the model, its optimizer and schedule, the history of
    the finished epochs (one dict per epoch), and the mid-epoch checkpointing (``None``: only at
    epoch ends). A pass may replace the optimizer (a pruning cut restarts it)."""

    model: Any
    optimizer: Any
    scheduler: Any
    history: list[dict] = field(default_factory=list)
    mid_epoch: MidEpoch | None = None


def batch_pass(
    fit: Fit,
    description: str,
    batches: Sequence[np.ndarray],
    batch_loss: Callable[[int, np.ndarray], Any],
    epoch: int = 0,
    tally: LossTally | None = None,
    trainable=None,
) -> LossTally:
    """One training pass over ``batches``: ``batch_loss(k, batch)`` gives batch ``k``'s loss
    (a scalar tensor; ``None`` skips the batch), then :func:`optimizer_step` on ``trainable``
    (default ``fit.model``). With ``fit.mid_epoch``, the pass starts after the batches its
    restored checkpoint had done and writes checkpoints as it goes. Returns the pass's tally."""
    mid = fit.mid_epoch
    tally = tally or LossTally()
    start = 0
    if mid is not None:
        start, tally.loss_sum, tally.seen = mid.progress(epoch)
    with progress(description, len(batches)) as bar:
        if start:
            bar.advance(start)
        for k in range(start, len(batches)):
            b = batches[k]
            loss = batch_loss(k, b)
            if loss is not None:
                tally.add(k, b, optimizer_step(fit.model if trainable is None else trainable, loss, fit.optimizer, fit.scheduler))
            bar.advance(1, info=tally.info())
            if mid is not None and k + 1 < len(batches):
                mid.maybe_save(epoch, k + 1, tally.loss_sum, tally.seen, fit.model, fit.optimizer, fit.scheduler, fit.history)
    return tally


def validated_epoch(
    name: str,
    epoch: int,
    train_loss: float,
    seconds: float,
    y: np.ndarray,
    logits: np.ndarray,
    labels: Sequence[str],
    extra: dict | None = None,
) -> dict:
    """The history entry of a classification epoch (logged): its mean training loss, training
    ``seconds`` and the validation summary of ``logits`` float [n, len(labels)] against gold
    label ids ``y`` int [n] (:func:`edgerep.measure.metrics.logits_report`); ``extra`` (further
    losses, e.g. ``sentiment_loss``) is logged and kept in the entry."""
    from edgerep.measure.metrics import logits_report, validation_summary, validation_text

    metrics = logits_report(y, logits, tuple(labels))
    losses = "".join(f" ({k.removesuffix('_loss')} {v:.4f})" for k, v in (extra or {}).items())
    log(f"{name} {epoch}: loss {train_loss:.4f}{losses}, {validation_text(metrics)} ({seconds / 60:.1f} min)")
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_seconds": round(seconds, 1),
        "validation": validation_summary(metrics),
        **(extra or {}),
    }


@dataclass
class TrainingRun:
    """One resumable run (``name``: fine-tuning ``train``, ``pretrain`` or ``distill``) in ``out``:
    ``out/checkpoints``, and the finished model ``out/model`` marked by ``info_file``."""

    name: str
    out: Path
    info_file: str = MODEL_INFO_FILE
    _started: float = field(default=0.0, repr=False)

    @property
    def final(self) -> Path:
        return self.out / "model"

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def finished(self) -> bool:
        """Whether ``out/model`` is complete (logged: the run is skipped)."""
        if (self.final / self.info_file).is_file():
            log(f"[green]{self.name}[/]: finished model found at {self.final}, skipping")
            return True
        return False

    def epochs(
        self,
        fit: Fit,
        first: int,
        last: int,
        one_epoch: Callable[[int], dict],
        after_epoch: Callable[[int], None] | None = None,
        modules: dict | None = None,
    ) -> None:
        """Run epochs ``first`` to ``last``: ``one_epoch(epoch)`` returns the epoch's history entry;
        then the epoch's checkpoint (with ``modules``, see :func:`save_checkpoint`), the mid-epoch
        checkpoint cleared, and ``after_epoch(epoch)``. Starts the run's clock."""
        self._started = time.perf_counter()
        for epoch in range(first, last + 1):
            fit.history.append(one_epoch(epoch))
            save_checkpoint(self.checkpoints, epoch, fit.model, fit.optimizer, fit.scheduler, fit.history, modules)
            if fit.mid_epoch is not None:
                fit.mid_epoch.clear()
            if after_epoch is not None:
                after_epoch(epoch)

    def close(self, summary: str) -> Path:
        """Log the closing line (``summary``, the model's path and the time since :meth:`epochs`
        began); return ``out/model``."""
        minutes = (time.perf_counter() - self._started) / 60 if self._started else 0.0
        log(f"[green]{self.name}[/]: {summary} -> {self.final} in {minutes:.1f} min")
        return self.final
