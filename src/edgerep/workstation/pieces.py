"""Encoders shipped on the package registry as a split zip, one piece per wheel (standard library only).

A model too large for one wheel is published as ``N`` packages, each holding one piece
``input/<name>.zip.00K`` of a split zip archive (``zip -s`` / ``split`` numbering, joined by
concatenation in order). :func:`assemble` finds the installed pieces through their wheels'
``RECORD`` (PEP 376/627: ``path,sha256=<urlsafe base64, no padding>,size``), checks each
piece's size and SHA-256 against it, concatenates them, checks every member's CRC-32
(:meth:`zipfile.ZipFile.testzip`) and extracts the archive once into a cache folder:

    <cache>/models/<alias>/            the extracted model folder (config.json, weights, tokenizer)
    <cache>/models/<alias>/.pieces.json  the SHA-256 of every piece it was built from

The folder is built under a temporary name and renamed into place only when complete
(:func:`edgerep.io.atomic_directory`), so an interrupted assembly leaves nothing that a later
call would use; a cache built from other pieces (an upgraded package) is built again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgerep.errors import ModelLoadError
from edgerep.io import atomic_directory
from edgerep.log import log
from edgerep.registry import SPLIT_MODELS, SplitModel

#: The marker file inside an assembled model folder.
PIECES_FILE = ".pieces.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Piece:
    """One installed piece of a split archive.

    Attributes:
        package: the distribution that holds it (PyPI name).
        path: the file on disk.
        sha256: hex SHA-256 from the wheel's ``RECORD``.
        size: size in bytes from the wheel's ``RECORD``.
    """

    package: str
    path: Path
    sha256: str
    size: int


def cache_root() -> Path:
    """``$EDGEREP_CACHE``, else ``$XDG_CACHE_HOME/edgerep``, else ``~/.cache/edgerep``."""
    if os.environ.get("EDGEREP_CACHE"):
        return Path(os.environ["EDGEREP_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgerep"


def _distribution(package: str, search_path: list[str] | None) -> metadata.Distribution | None:
    if search_path is None:
        try:
            return metadata.distribution(package)
        except metadata.PackageNotFoundError:
            return None
    wanted = package.replace("_", "-").lower()
    for dist in metadata.distributions(path=search_path):
        if (dist.metadata["Name"] or "").replace("_", "-").lower() == wanted:
            return dist
    return None


def _record_hash(value: str) -> str:
    """``sha256=<urlsafe base64>`` of a wheel ``RECORD`` line -> hex digest (PEP 376)."""
    algo, _, digest = value.partition("=")
    if algo != "sha256" or not digest:
        raise ValueError(f"hash {value!r} is not sha256")
    return base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()


def installed_pieces(spec: SplitModel, search_path: list[str] | None = None) -> list[Piece] | None:
    """The installed pieces of ``spec`` in archive order, or ``None`` when none of its packages
    is installed (the caller falls back to the hub id).

    Args:
        spec: the split model (:data:`edgerep.registry.SPLIT_MODELS`).
        search_path: directories to look for distributions in (default: ``sys.path``).

    Raises:
        ModelLoadError: some but not all packages are installed (the message names the missing
            ones and the extra that installs them), or a package holds no piece listed with a
            SHA-256 in its ``RECORD``.
    """
    found: dict[str, metadata.Distribution] = {}
    for package in spec.packages:
        dist = _distribution(package, search_path)
        if dist is not None:
            found[package] = dist
    if not found:
        return None
    missing = [p for p in spec.packages if p not in found]
    if missing:
        raise ModelLoadError(
            f"{spec.alias}: package{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed "
            f"({len(found)} of {len(spec.packages)} pieces found); install them with: pip install 'edgerep[{spec.extra}]'"
        )
    pieces = []
    for k, package in enumerate(spec.packages, start=1):
        dist = found[package]
        suffix = f".zip.{k:03d}"
        entries = [f for f in dist.files or () if f.name.endswith(suffix)]
        if len(entries) != 1 or not entries[0].hash or entries[0].size is None:
            raise ModelLoadError(
                f"{spec.alias}: package {package} lists no piece '*{suffix}' with a hash and size in its RECORD; "
                f"reinstall it: pip install --force-reinstall {package}"
            )
        entry = entries[0]
        assert entry.hash is not None and entry.size is not None  # checked above
        pieces.append(
            Piece(package, Path(str(dist.locate_file(entry))), _record_hash(f"{entry.hash.mode}={entry.hash.value}"), int(entry.size))
        )
    return pieces


def _copy_checked(piece: Piece, out) -> None:
    """Append ``piece`` to the open file ``out``, checking its size and SHA-256 on the way."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(piece.path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise ModelLoadError(f"{piece.path}: cannot read piece of {piece.package} ({exc.strerror or exc})") from None
    if size != piece.size or digest.hexdigest() != piece.sha256:
        raise ModelLoadError(
            f"{piece.path}: piece of {piece.package} is damaged ({size} bytes, SHA-256 {digest.hexdigest()[:12]}..., "
            f"its RECORD says {piece.size} bytes, {piece.sha256[:12]}...); reinstall it: pip install --force-reinstall {piece.package}"
        )


def _fingerprint(pieces: Iterable[Piece]) -> list[dict]:
    return [{"package": p.package, "sha256": p.sha256, "size": p.size} for p in pieces]


def assemble(spec: SplitModel, pieces: list[Piece], cache: Path | None = None) -> Path:
    """Join, check and extract ``pieces`` once; return the model folder (``config.json`` inside).

    A complete cache built from the same pieces is returned without reading them again.

    Raises:
        ModelLoadError: a piece is missing, of the wrong size or SHA-256; the joined archive is
            not a zip, a member fails its CRC-32, or the model folder is not in it; the cache is
            not writable. Nothing is left where a later call would use it.
    """
    target = (cache or cache_root()) / "models" / spec.alias
    fingerprint = _fingerprint(pieces)
    marker = target / PIECES_FILE
    if marker.is_file() and (target / "config.json").is_file():
        try:
            if json.loads(marker.read_text())["pieces"] == fingerprint:
                return target
        except (ValueError, KeyError, TypeError):
            pass
    log(f"{spec.alias}: assembling {len(pieces)} pieces ({sum(p.size for p in pieces) / 2**20:.0f} MiB) into {target}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{spec.alias}.", dir=target.parent) as work:
            archive = Path(work) / f"{spec.alias}.zip"
            with open(archive, "wb") as out:
                for piece in pieces:
                    _copy_checked(piece, out)
            _extract(spec, archive, target, fingerprint)
    except OSError as exc:
        raise ModelLoadError(
            f"{target}: cannot write the assembled {spec.alias} ({exc.strerror or exc}); set EDGEREP_CACHE to a writable folder"
        ) from None
    log(f"{spec.alias}: ready at {target}")
    return target


def _extract(spec: SplitModel, archive: Path, target: Path, fingerprint: list[dict]) -> None:
    prefix = spec.folder.rstrip("/") + "/"
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelLoadError(
                    f"{spec.alias}: member {bad!r} of the joined archive fails its CRC-32 check; reinstall: pip install --force-reinstall 'edgerep[{spec.extra}]'"
                )
            members = [m for m in zf.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not any(m.filename == prefix + "config.json" for m in members):
                raise ModelLoadError(f"{spec.alias}: the joined archive holds no {prefix}config.json")
            with atomic_directory(target, overwrite=True) as tmp:
                for m in members:
                    rel = Path(m.filename[len(prefix) :])
                    if rel.is_absolute() or ".." in rel.parts:
                        raise ModelLoadError(f"{spec.alias}: archive member {m.filename!r} points outside its folder")
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                (tmp / PIECES_FILE).write_text(json.dumps({"alias": spec.alias, "pieces": fingerprint}, indent=2) + "\n")
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(
            f"{spec.alias}: the joined pieces are not a zip archive ({exc}); reinstall: pip install --force-reinstall 'edgerep[{spec.extra}]'"
        ) from None


def resolve_split_model(alias: str, search_path: list[str] | None = None, cache: Path | None = None) -> str | None:
    """The local folder of split model ``alias`` (assembled on first use), or ``None`` when
    ``alias`` is not a split model or none of its packages is installed.

    Raises:
        ModelLoadError: see :func:`installed_pieces` and :func:`assemble`.
    """
    spec = SPLIT_MODELS.get(alias)
    if spec is None:
        return None
    pieces = installed_pieces(spec, search_path)
    return None if pieces is None else str(assemble(spec, pieces, cache))
