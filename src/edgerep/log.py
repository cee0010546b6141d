"""Logs and progress on stderr (stdout is kept for results), an optional log file, and the
silencing of other libraries' noise.

* :func:`log` prints one line to stderr and appends it, without markup, to the log file set by
  :func:`configure` (``edgerep run`` writes ``RUN/edgerep.log``).
* :func:`progress` is a rich progress bar when stderr is a terminal; otherwise (CI, ``nohup``,
  cron, a redirected file) it prints a plain line every :data:`PLAIN_INTERVAL_S` seconds, or
  sooner when :data:`PLAIN_STEP` of the work is done (but not within :data:`PLAIN_MIN_GAP_S` of
  the previous line), and one at the end; the log file gets the same plain lines.
* :func:`quiet_third_party` silences the warnings, log lines and progress bars of torch,
  torchao, transformers, litert-torch, ai-edge-quantizer, absl and TensorFlow Lite; and
  :func:`edgerep.io.native_output_captured` holds back what C/C++ code prints on the process's
  file descriptors (shown only if the wrapped call fails). ``--verbose`` or ``EDGEREP_DEBUG=1``
  keeps all of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgerep.io import native_output_captured, verbose_from_env

#: All human-facing logs and bars go to stderr.
console = Console(stderr=True, soft_wrap=True)

#: Plain progress lines (stderr not a terminal): at most this many seconds apart ...
PLAIN_INTERVAL_S = 30.0
#: ... and one per this share of the work ...
PLAIN_STEP = 0.05
#: ... unless the previous line is younger than this (a 40-second job prints a few lines, not 20).
PLAIN_MIN_GAP_S = 5.0

#: Loggers of other libraries held at ERROR unless verbose. torch resets the levels of its own
#: loggers when it is imported, so the ones that warn at import (torch.utils._pytree, from
#: torchao's enum registration) also get a filter, which survives the reset.
NOISY_LOGGERS = (
    "torch",
    "torch.utils._pytree",
    "torchao",
    "transformers",
    "huggingface_hub",
    "absl",
    "jax",
    "litert_torch",
    "ai_edge_torch",
    "ai_edge_quantizer",
    "ai_edge_litert",
    "tensorflow",
    "onnxruntime",
    "onnx",
    "xdsl",
    "huggingface_hub",
    "urllib3",
    "httpx",
)


class _ErrorsOnly(logging.Filter):
    """Let through ERROR and above only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_ERRORS_ONLY = _ErrorsOnly()

_state: dict = {"verbose": None, "file": None}
_MARKUP = re.compile(r"\[/?[a-z ]*\]")


__all__ = ["configure", "console", "is_verbose", "log", "native_output_captured", "progress", "quiet_third_party"]


def is_verbose() -> bool:
    """``--verbose`` was given (here or in a parent process), or ``EDGEREP_DEBUG=1`` is set."""
    return bool(_state["verbose"]) or verbose_from_env()


def configure(verbose: bool | None = None, log_file: str | os.PathLike | None = None) -> None:
    """Set verbosity (``None`` leaves it) and the log file lines are appended to (``None`` leaves it).

    Without verbosity, :func:`quiet_third_party` runs at once.
    """
    if verbose is not None:
        _state["verbose"] = verbose
        os.environ["EDGEREP_VERBOSE"] = "1" if verbose else "0"  # worker processes inherit it
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        _state["file"] = Path(log_file)
    if not is_verbose():
        quiet_third_party()


def _to_file(line: str) -> None:
    if _state["file"] is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(_state["file"], "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {_MARKUP.sub('', line)}\n")


def log(message: str) -> None:
    """Print one log line (rich markup allowed) to stderr and to the log file."""
    console.print(message, highlight=False)
    _to_file(message)


def quiet_third_party() -> None:
    """Silence other libraries' warnings, INFO/WARNING log lines and progress bars (idempotent).

    Environment variables are read by those libraries at import, so this runs before they are
    imported (the CLI calls it first): ``TQDM_DISABLE`` (tqdm >= 4.66: every tqdm bar, e.g.
    transformers' "Loading weights" and the quantizer's), ``TRANSFORMERS_VERBOSITY``,
    ``HF_HUB_VERBOSITY`` (huggingface_hub's retry lines when the hub cannot be reached),
    ``TF_CPP_MIN_LOG_LEVEL`` / ``GLOG_minloglevel`` (TensorFlow Lite and absl C++ logging).
    """
    for key, value in (
        ("TQDM_DISABLE", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TF_CPP_MIN_LOG_LEVEL", "3"),
        ("GLOG_minloglevel", "3"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("HF_HUB_VERBOSITY", "error"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ):
        os.environ.setdefault(key, value)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        if _ERRORS_ONLY not in logger.filters:
            logger.addFilter(_ERRORS_ONLY)
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!edgerep)")


class _Bar:
    """Progress of one task: ``advance(n, info)``; see :func:`progress`."""

    def __init__(self, description: str, total: int, rich_progress: Progress | None):
        self.description, self.total, self.done = description, max(int(total), 0), 0
        self.info = ""
        self._rich = rich_progress
        self._task = rich_progress.add_task(description, total=self.total, info="") if rich_progress else None
        self._t0 = self._last_t = time.monotonic()
        self._last_done = 0

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """``n`` more units done; ``info`` replaces the short status text (loss, current item)."""
        self.done += n
        if info is not None:
            self.info = info
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=n, info=self.info)
        now = time.monotonic()
        step = max(1, int(self.total * PLAIN_STEP))
        since = now - self._last_t
        if since >= PLAIN_INTERVAL_S or (self.done - self._last_done >= step and since >= PLAIN_MIN_GAP_S):
            self._plain(now)

    def _plain(self, now: float, final: bool = False) -> None:
        self._last_t, self._last_done = now, self.done
        elapsed = now - self._t0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = elapsed * (self.total - self.done) / self.done if self.done and not final else 0.0
        line = (
            f"{self.description}: {self.done:,}/{self.total:,} ({pct:.0f}%)"
            + (f" {self.info}" if self.info else "")
            + f", elapsed {_clock(elapsed)}"
            + ("" if final else f", eta {_clock(eta)}")
        )
        if self._rich is None:
            console.print(line, highlight=False, markup=False)
        _to_file(line)

    def close(self) -> None:
        if self._last_done != self.done or self.done == 0:
            self._plain(time.monotonic(), final=True)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@contextlib.contextmanager
def progress(description: str, total: int, show: bool = True) -> Iterator[_Bar]:
    """Progress of ``total`` units of work; yields a bar with ``advance(n=1, info=None)``.

    On a terminal: a rich bar (description, bar, done/total, info, elapsed, remaining).
    Elsewhere: plain lines (see the module docstring). ``show=False``: nothing is printed.
    """
    if not show:
        yield _SilentBar(description, total)
        return
    if console.is_terminal:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as p:
            bar = _Bar(description, total, p)
            yield bar
    else:
        bar = _Bar(description, total, None)
        yield bar
    bar.close()


class _SilentBar(_Bar):
    def __init__(self, description: str, total: int):
        super().__init__(description, total, None)

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.done += n

    def close(self) -> None:
        pass
