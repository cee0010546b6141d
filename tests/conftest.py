"""Shared fixtures: the real RepLab 2013 training data and a tiny, seeded BERT.

Architecture-level tests (training, conversion, quantization, runtime) use a tiny BERT config
with the real all-MiniLM-L6-v2 WordPiece tokenizer, fine-tuned for one epoch on real tweets by
the real training code; data tests use the real corpus in ``../shared/data/replab2013``
(override with ``EDGEREP_DATA``).

Two lanes: a test that uses a trained or converted model (the ``tiny_*`` fixtures, which train
and export seven bundles once per session) is marked ``model`` automatically; ``pytest -m "not
model"`` is the fast lane (the code that needs no converted model), ``pytest`` the full suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_FIXTURES = {"tiny_pretrained", "tiny_model", "tiny_bundles", "tiny_entity_model", "tiny_entity_bundles"}


#: Markers per external component, set by the fixture a test uses (``-m "not qemu"`` leaves the
#: emulation out, ``-m ray`` runs only the Ray tests); tests without such a fixture carry the
#: marker themselves (``pytestmark`` in test_aarch64.py, test_serve_fuzz.py).
COMPONENT_FIXTURES = {"ray_cluster": "ray", "sshd": "sshd", "api_schema": "fuzz"}


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs a trained or converted model ``model`` (see the module
    docstring), and every test of an external component with its marker."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if MODEL_FIXTURES & fixtures:
            item.add_marker(pytest.mark.model)
        for fixture, marker in COMPONENT_FIXTURES.items():
            if fixture in fixtures:
                item.add_marker(getattr(pytest.mark, marker))
DATA = Path(os.environ.get("EDGEREP_DATA", REPO.parent / "shared" / "data" / "replab2013"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "training" / "labeled").is_dir():
        pytest.fail(f"RepLab 2013 corpus not found at {DATA} (set EDGEREP_DATA)")
    return DATA


def make_tiny_pretrained(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the MiniLM WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from edgerep.data.stats import default_tokenizer_json

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(path)
    src = default_tokenizer_json().parent
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (src / f).exists():
            shutil.copy2(src / f, path / f)
    return path


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    return make_tiny_pretrained(tmp_path_factory.mktemp("tiny-pretrained"))


TINY_TRAIN = dict(epochs=1, limit=256, batch_size=32, learning_rate=1e-3, max_seq_len=32, seed=3, entity=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_pretrained, data_root) -> Path:
    """Fine-tuned tiny model directory produced by :func:`edgerep.workstation.train.train`."""
    from edgerep.workstation.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-run") / "train"
    return train(data_root, out, TrainConfig(model=str(tiny_pretrained), **TINY_TRAIN))


@pytest.fixture(scope="session")
def validation_texts(data_root) -> list[str]:
    """~100 validation tweets spread over every entity (the sampler every job uses)."""
    from edgerep.data import sample_texts

    return sample_texts(data_root, "validation", 100).texts


@pytest.fixture(scope="session")
def calibration_texts(data_root) -> list[str]:
    """Representative dataset: real training-part tweets (never validation ones)."""
    from edgerep.data import sample_texts

    return sample_texts(data_root, "train", 57).texts


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory, tiny_model, validation_texts, calibration_texts) -> dict[str, Path]:
    """Every quantization on LiteRT, plus fp32 and dynamic int8 on ONNX Runtime."""
    from edgerep.registry import Backend, Quantization
    from edgerep.workstation.export import export_bundles

    out = tmp_path_factory.mktemp("bundles")
    results = export_bundles(tiny_model, out, list(Quantization), validation_texts, calibration_texts=calibration_texts, strict=False)
    results += export_bundles(
        tiny_model, out, [Quantization.FP32, Quantization.DYNAMIC_INT8], validation_texts, backend=Backend.ONNXRUNTIME
    )
    return {r.mode: Path(r.path) for r in results}


@pytest.fixture(scope="session")
def tiny_entity_model(tmp_path_factory, tiny_pretrained, data_root) -> Path:
    """A tiny entity-conditioned model: (entity name, tweet) pairs, trained by the real code."""
    from edgerep.workstation.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-entity-run") / "train"
    return train(data_root, out, TrainConfig(model=str(tiny_pretrained), **{**TINY_TRAIN, "entity": True}))


@pytest.fixture(scope="session")
def tiny_entity_bundles(tmp_path_factory, tiny_entity_model, data_root) -> dict[str, Path]:
    """fp32 and dynamic int8 LiteRT bundles and fp32 ONNX of the entity-conditioned model,
    validated against PyTorch on real validation tweets with their own entities."""
    from edgerep.data import sample_texts
    from edgerep.registry import Backend, Quantization
    from edgerep.workstation.export import export_bundles

    out = tmp_path_factory.mktemp("entity-bundles")
    tweets = sample_texts(data_root, "validation", 100)
    results = export_bundles(tiny_entity_model, out, [Quantization.FP32, Quantization.DYNAMIC_INT8], tweets)
    results += export_bundles(tiny_entity_model, out, [Quantization.FP32], tweets, backend=Backend.ONNXRUNTIME)
    return {r.mode: Path(r.path) for r in results}


def run_cli(*args: str, input: bytes | None = None, env: dict | None = None):
    """Run ``python -m edgerep ARGS`` in a subprocess; return CompletedProcess (bytes)."""
    import subprocess
    import sys

    e = dict(os.environ)
    e.pop("EDGEREP_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgerep", *args], input=input, capture_output=True, env=e, timeout=600)


class Interrupted(Exception):
    """Raised by :func:`interrupt_after_epoch_1` to simulate Ctrl-C after a checkpoint."""


@contextlib.contextmanager
def interrupt_after_epoch_1(monkeypatch):
    """Within the block, training and distillation raise :class:`Interrupted` right after the
    epoch-1 checkpoint is saved (the real saving code runs first)."""
    import edgerep.workstation.loop as loop_module

    save = loop_module.save_checkpoint

    def save_then_interrupt(root, epoch, *args, **kwargs):
        save(root, epoch, *args, **kwargs)
        if epoch == 1:
            raise Interrupted

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_interrupt)
    try:
        yield
    finally:
        monkeypatch.setattr(loop_module, "save_checkpoint", save)


@contextlib.contextmanager
def interrupt_at_step(monkeypatch, n: int):
    """Within the block, the ``n``-th optimizer step (counting from 1) of any training loop
    raises :class:`Interrupted` before it runs (the steps before it, and their mid-epoch
    checkpoints, run for real)."""
    import edgerep.workstation.loop as loop_module

    step = loop_module.optimizer_step
    calls = {"n": 0}

    def interrupted_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupted
        return step(*args, **kwargs)

    monkeypatch.setattr(loop_module, "optimizer_step", interrupted_step)
    try:
        yield
    finally:
        monkeypatch.setattr(loop_module, "optimizer_step", step)

