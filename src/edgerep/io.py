"""File and process output helpers (standard library only, so the device side can use them).

* Atomic file output: a reader never sees a half-written artifact. Pattern: write to a
  temporary sibling, ``fsync``, then :func:`os.replace` (atomic on POSIX within one file
  system, see ``rename(2)``).
* :func:`native_output_captured`: hold back what C/C++ libraries print on file descriptors 1
  and 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgerep.registry import MANIFEST_FILE, MODEL_INFO_FILE


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    Raises:
        OSError: the directory is not writable (the target is left untouched).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place on success.

    Yields the temporary directory to fill. On any exception the temporary directory is
    removed and ``path`` is left as it was. With ``overwrite`` an existing ``path`` is
    replaced only after the new one is complete.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_bytes(path: str | os.PathLike, error: type[Exception]) -> bytes:
    """Read a whole file, turning OS errors into ``error`` with a message naming the path.

    Raises:
        error: the file is missing or unreadable.
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None


def settings_dict(settings: dict, optional: dict[str, Any]) -> dict:
    """A config's ``settings`` as saved in a run directory: tuples as lists, and each
    ``optional`` field left out while it holds its default (``optional`` maps name -> default).

    :func:`check_or_write_config` compares saved and current settings field by field; an
    optional field is written only when it changes what the run does, so every run directory
    whose settings leave it at its default keeps resuming.
    """
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    for name, default in optional.items():
        if out.get(name) == (list(default) if isinstance(default, tuple) else default):
            out.pop(name, None)
    return out


def check_or_write_config(path: str | os.PathLike, config: dict, error: type[Exception]) -> None:
    """Save a run's resolved config, or refuse a run directory made with other settings.

    Raises:
        error: ``path`` exists and differs from ``config`` (the message lists the fields), or is
            not a JSON object (corrupt or hand-edited).
    """
    path = Path(path)
    config = json.loads(json.dumps(config))  # compared as saved: tuples are lists in JSON
    if not path.is_file():
        atomic_write_json(path, config)
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a readable JSON config ({exc.__class__.__name__}: {exc}); delete {path.parent} to start over") from None
    if not isinstance(saved, dict):
        raise error(f"{path}: expected a JSON object; delete {path.parent} to start over")
    diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if diff:
        raise error(
            f"{path}: {path.parent} holds a run made with other settings ({', '.join(diff)}); "
            "choose another output directory, or delete it to start over"
        )


def record_is_current(record: str | os.PathLike, *artifacts: str | os.PathLike) -> bool:
    """Whether a result record exists and was written after every artifact it measured was made:
    a bundle's ``manifest.json`` (rewritten last on export) or a model's ``edgerep_model.json``,
    else the artifact path itself. A re-exported bundle or retrained model makes it stale."""
    record = Path(record)
    if not record.is_file():
        return False
    written = record.stat().st_mtime
    for artifact in map(Path, artifacts):
        marker = next((artifact / n for n in (MANIFEST_FILE, MODEL_INFO_FILE) if (artifact / n).is_file()), artifact)
        if marker.exists() and marker.stat().st_mtime > written:
            return False
    return True


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike, suffixes: tuple[str, ...] = (".safetensors", ".bin", ".json")) -> str:
    """Hex SHA-256 over a directory's files with the given suffixes (name + content, sorted).

    Used as the "source checkpoint hash" recorded in bundle manifests.
    """
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes):
        h.update(str(f.relative_to(root)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def verbose_from_env() -> bool:
    """``EDGEREP_VERBOSE=1`` (set by ``--verbose``, inherited by worker processes) or ``EDGEREP_DEBUG=1``."""
    return os.environ.get("EDGEREP_VERBOSE") == "1" or os.environ.get("EDGEREP_DEBUG") == "1"


@contextlib.contextmanager
def native_output_captured(show: bool | None = None) -> Iterator[None]:
    """Hold back what C/C++ code writes to file descriptors 1 and 2 (converter stage lines,
    LiteRT's "Created TensorFlow Lite XNNPACK delegate", MLIR dumps) while the block runs.

    On an exception the captured text (its last 4,000 characters) is written to stderr before the
    exception propagates. ``show`` (default :func:`verbose_from_env`) captures nothing.
    """
    if show if show is not None else verbose_from_env():
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    failed = False
    with tempfile.TemporaryFile() as sink:
        try:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)
            if failed:
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace").strip()
                if text:
                    os.write(2, (text[-4000:] + "\n").encode("utf-8", errors="replace"))
