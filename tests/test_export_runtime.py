"""Conversion, quantization, validation, and the light runtime, on a tiny seeded BERT
fine-tuned on real tweets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgerep.errors import BundleError, ConfigError, ExportValidationError, InputTextError
from edgerep.registry import RECIPES, Quantization, Tolerance, parse_quantizations
from edgerep.workstation.export import compare_logits, export_bundles
from edgerep.workstation.inference import torch_logits
from edgerep.device.manifest import Manifest
from edgerep.device.runtime import PolarityClassifier


def test_bundle_layout_and_manifest(tiny_bundles, tiny_model):
    assert sorted(tiny_bundles) == sorted(["fp32", "fp16", "dynamic-int8", "full-int8", "int4-weights", "dynamic-int8-emb4", "dynamic-int4",
                                           "onnx-fp32", "onnx-dynamic-int8"])
    for name, path in tiny_bundles.items():
        m = Manifest.read(path)
        assert sorted(p.name for p in path.iterdir()) == sorted(["manifest.json", m.model_file, "tokenizer.json"])
        assert m.backend == ("onnxruntime" if name.startswith("onnx-") else "litert")
        assert m.quantization["mode"] == name.removeprefix("onnx-")
        assert m.labels == ("NEGATIVE", "NEUTRAL", "POSITIVE")
        assert m.max_seq_len == 32
        assert [(i.name, i.dtype, i.shape) for i in m.inputs] == [("input_ids", "int32", (1, 32)), ("attention_mask", "int32", (1, 32))]
        assert m.validation["passed"] and m.validation["n"] >= 90
        assert m.output.name == "logits"  # LiteRT and ONNX name the output alike
        assert m.source["checkpoint_sha256"] and m.tools["litert-torch"] != "missing"
        # LiteRT computes the last layer for [CLS] only; ONNX Runtime gets the model's own graph
        assert m.source["graph"] == ("full" if name.startswith("onnx-") else "cls-only-last-layer")
    assert Manifest.read(tiny_bundles["dynamic-int8"]).quantization["recipe"] == "ai_edge_quantizer:dynamic_wi8_afp32"


def _size(bundle: Path) -> int:
    return (bundle / Manifest.read(bundle).model_file).stat().st_size


def test_each_recipe_shrinks_the_file_as_expected(tiny_bundles):
    fp32 = _size(tiny_bundles["fp32"])
    ratios = {name: _size(path) / fp32 for name, path in tiny_bundles.items()}
    # the tiny model is mostly its 30522 x 32 embedding table
    assert 0.45 < ratios["fp16"] < 0.6  # 2 bytes a weight
    # (bundles carry one signature per length bucket, which adds a little per signature)
    assert 0.2 < ratios["dynamic-int8"] < 0.6  # 1 byte a weight
    assert ratios["int4-weights"] < ratios["dynamic-int8"]  # half a byte a weight (plus per-signature overhead)
    assert ratios["onnx-dynamic-int8"] < 0.4 * ratios["onnx-fp32"]
    # full-integer int8 keeps the embedding table (a GATHER input) in float32: barely smaller
    assert 0.9 < ratios["full-int8"] <= 1.0


def _tensor_dtypes(bundle: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(bundle / "model.tflite"))
    return {np.dtype(d["dtype"]).name for d in it.get_tensor_details()}


def test_quantized_tensors_present(tiny_bundles):
    assert "float16" not in _tensor_dtypes(tiny_bundles["fp32"]) and "int8" not in _tensor_dtypes(tiny_bundles["fp32"])
    assert "float16" in _tensor_dtypes(tiny_bundles["fp16"])
    assert "int8" in _tensor_dtypes(tiny_bundles["dynamic-int8"])
    assert "int8" in _tensor_dtypes(tiny_bundles["full-int8"])
    # LiteRT's Python API reports packed int4 weight tensors with numpy's int8 dtype
    assert _tensor_dtypes(tiny_bundles["int4-weights"]) & {"int8", "int4"}
    import onnx

    ops = {n.op_type for n in onnx.load(str(tiny_bundles["onnx-dynamic-int8"] / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops


def test_every_recipe_agrees_with_float_within_its_tolerance(tiny_bundles):
    for name, path in tiny_bundles.items():
        v = Manifest.read(path).validation
        spec = RECIPES[Quantization(name.removeprefix("onnx-"))].tolerance
        assert v["passed"] == (v["max_abs_logit_diff"] <= spec.max_abs_logit and v["label_agreement"] >= spec.min_agreement)
        assert v["passed"], (name, v)


def test_full_integer_output_is_dequantized(tiny_bundles, validation_texts):
    fp32 = PolarityClassifier(tiny_bundles["fp32"]).logits(validation_texts[:20])
    int8 = PolarityClassifier(tiny_bundles["full-int8"]).logits(validation_texts[:20])
    assert np.abs(fp32 - int8).max() < 0.1  # int8 logits, rescaled with the output scale/zero point


def test_invalid_backend_combinations():
    from edgerep.registry import Backend, check_combinations, parse_backend

    with pytest.raises(ConfigError, match="onnxruntime does not support full-int8, fp16; valid for onnxruntime: fp32, dynamic-int8"):
        check_combinations(Backend.ONNXRUNTIME, [Quantization.FULL_INT8, Quantization.FP16])
    with pytest.raises(ConfigError, match="unknown backend 'tvm'; valid: litert, onnxruntime"):
        parse_backend("tvm")


def test_full_integer_needs_representative_dataset(tiny_model, validation_texts, tmp_path):
    with pytest.raises(ConfigError, match="int8 needs a representative dataset"):
        export_bundles(tiny_model, tmp_path / "b", [Quantization.FULL_INT8], validation_texts[:5])
    assert list((tmp_path / "b").iterdir()) == []


def test_runtime_logits_match_pytorch(tiny_bundles, tiny_model, validation_texts):
    from edgerep.workstation.models import load_finetuned
    from edgerep.device.tokenizer import TweetTokenizer

    model, info = load_finetuned(tiny_model)
    ref = torch_logits(model, TweetTokenizer(tiny_model / "tokenizer.json", info["max_seq_len"]), validation_texts)
    fp32 = PolarityClassifier(tiny_bundles["fp32"]).logits(validation_texts)
    int8 = PolarityClassifier(tiny_bundles["dynamic-int8"]).logits(validation_texts)
    assert fp32.shape == int8.shape == (len(validation_texts), 3) and fp32.dtype == np.float32
    assert np.abs(fp32 - ref).max() < 1e-4
    c = compare_logits(ref, int8)
    assert 0 < c["max_abs_logit_diff"] < 0.5  # quantized, so not identical, but close
    assert c["label_agreement"] >= 0.95


def test_classify_probabilities(tiny_bundles):
    clf = PolarityClassifier(tiny_bundles["dynamic-int8"], num_threads=1)
    pred = clf.classify("Just got my new BMW, absolutely love it! http://t.co/x")
    assert pred.label in clf.labels
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.label == max(pred.probabilities, key=pred.probabilities.get)


@pytest.mark.parametrize(
    "text",
    ["a" * 10_000, "word " * 2_500, "😀😡🚗" * 50, "Ünïcödé مرحبا 你好 Привет", "ctrl\x00\x07\x1b[31mchars", "\ufeffBOM text"],
)
def test_adversarial_texts_classify(tiny_bundles, text):
    pred = PolarityClassifier(tiny_bundles["dynamic-int8"]).classify(text)
    assert pred.label in ("NEGATIVE", "NEUTRAL", "POSITIVE")


@pytest.mark.parametrize("text", ["", "   \t\n ", "\x00\x01\u200b"])
def test_empty_text_is_rejected(tiny_bundles, text):
    with pytest.raises(InputTextError, match="empty after normalization"):
        PolarityClassifier(tiny_bundles["fp32"]).classify(text)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


def test_truncated_model_rejected(tiny_bundles, tmp_path):
    b = _copy(tiny_bundles["dynamic-int8"], tmp_path)
    data = (b / "model.tflite").read_bytes()
    (b / "model.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="SHA-256 differs"):
        PolarityClassifier(b)
    with pytest.raises(BundleError, match="LiteRT cannot load"):
        PolarityClassifier(b, verify=False)


def test_foreign_tokenizer_rejected(tiny_bundles, tmp_path):
    b = _copy(tiny_bundles["fp32"], tmp_path)
    tok = json.loads((b / "tokenizer.json").read_text())
    tok["model"]["vocab"] = {k: v for k, v in list(tok["model"]["vocab"].items())[:500]}
    (b / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(BundleError, match="tokenizer from another model"):
        PolarityClassifier(b)


def test_manifest_mismatch_rejected(tiny_bundles, tmp_path):
    b = _copy(tiny_bundles["fp32"], tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["inputs"][0]["shape"] = [1, 64]
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"input 'input_ids' shape \[1, 64\] does not end at max_seq_len 32"):
        PolarityClassifier(b)
    m["inputs"][0]["shape"] = [1, 32]
    m["buckets"] = [8, 32]
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"LiteRT cannot load the model .*seq_8|input 'input_ids' is"):
        PolarityClassifier(b)
    m["buckets"] = [16, 32]
    m["labels"] = ["NEGATIVE", "POSITIVE"]
    m["output"]["shape"] = [1, 2]
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="model outputs 3 classes, manifest lists 2 labels"):
        PolarityClassifier(b)
    (b / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        PolarityClassifier(b)
    (b / "manifest.json").unlink()
    with pytest.raises(BundleError, match="not an edgerep bundle"):
        PolarityClassifier(b)


def test_parse_quantizations():
    assert parse_quantizations("dynamic-int8,fp32") == [Quantization.FP32, Quantization.DYNAMIC_INT8]
    assert parse_quantizations("all") == list(Quantization)
    with pytest.raises(ConfigError, match="unknown quantization 'int3'; valid: fp32, fp16, dynamic-int8, full-int8, int4-weights, dynamic-int8-emb4, dynamic-int4, all"):
        parse_quantizations("fp32,int3")
    with pytest.raises(ConfigError, match="'int8' is now 'full-int8'"):  # the full-integer mode's old name
        parse_quantizations("int8")


def test_failed_validation_leaves_no_bundle(tiny_model, validation_texts, tmp_path, monkeypatch):
    strict = RECIPES[Quantization.DYNAMIC_INT8]
    monkeypatch.setitem(
        RECIPES, Quantization.DYNAMIC_INT8, type(strict)(strict.mode, strict.recipe, strict.description, Tolerance(0.0, 1.0))
    )
    with pytest.raises(ExportValidationError, match=r"dynamic-int8 bundle disagrees .* no bundle written"):
        export_bundles(tiny_model, tmp_path / "b", [Quantization.DYNAMIC_INT8], validation_texts[:20])
    assert list((tmp_path / "b").iterdir()) == []  # no bundle, no temp leftovers


def test_runtime_imports_neither_torch_nor_transformers(tiny_bundles):
    code = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] in ('torch', 'transformers', 'litert_torch', 'ai_edge_quantizer'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        from edgerep.device.runtime import PolarityClassifier
        import edgerep.app.cli, edgerep.measure.evaluate, edgerep.measure.bench, edgerep.app.report
        clf = PolarityClassifier({str(tiny_bundles['dynamic-int8'])!r})
        print(clf.classify('HSBC fined for money laundering').label)
        import importlib.util
        if importlib.util.find_spec('fastapi'):  # the [serve] extra
            from edgerep.device.serve import create_app
            create_app({str(tiny_bundles['dynamic-int8'])!r})
        assert not any(m.split('.')[0] in ('torch', 'transformers') for m in sys.modules)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("NEGATIVE", "NEUTRAL", "POSITIVE")


def test_reexport_keeps_matching_bundles_and_refuses_foreign_ones(tiny_model, tiny_bundles, validation_texts, tmp_path):
    out = tmp_path / "bundles"
    shutil.copytree(tiny_bundles["fp32"].parent, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    results = export_bundles(tiny_model, out, [Quantization.FP32, Quantization.DYNAMIC_INT8], validation_texts[:10])
    assert [r.mode for r in results] == ["fp32", "dynamic-int8"] and all(r.validation["passed"] for r in results)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # kept as they were
    m = json.loads((out / "fp32" / "manifest.json").read_text())
    m["source"]["checkpoint_sha256"] = "0" * 64
    (out / "fp32" / "manifest.json").write_text(json.dumps(m))
    # a bundle of the same checkpoint with another graph (the full last layer) is rebuilt
    m = json.loads((out / "fp32" / "manifest.json").read_text())
    m["source"]["graph"] = "full"
    (out / "fp32" / "manifest.json").write_text(json.dumps(m))
    [rebuilt] = export_bundles(tiny_model, out, [Quantization.FP32], validation_texts[:10])
    assert rebuilt.validation["passed"] and Manifest.read(out / "fp32").source["graph"] == "cls-only-last-layer"
    assert (out / "fp32" / "model.tflite").stat().st_mtime_ns != before[out / "fp32" / "model.tflite"]
    m = json.loads((out / "fp32" / "manifest.json").read_text())
    m["source"]["checkpoint_sha256"] = "0" * 64
    (out / "fp32" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="exported from another checkpoint; pass --overwrite"):
        export_bundles(tiny_model, out, [Quantization.FP32], validation_texts[:10])


def test_cls_only_last_layer_gives_the_full_forward_pass(tiny_entity_model, data_root):
    """The graph that computes the last encoder layer for [CLS] only gives the model's logits on
    real (entity, tweet) pairs padded to a fixed width, for a 2-layer model and for a 1-layer
    student (whose last layer follows the embeddings' LayerNorm); MobileBERT keeps its own graph."""
    import torch

    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.distill import init_student
    from edgerep.workstation.inference import model_inputs
    from edgerep.workstation.models import build_from_config, cls_only_supported, load_finetuned, logits_module

    model, info = load_finetuned(tiny_entity_model)
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", info["max_seq_len"], True)
    samples = sample_texts(data_root, "validation", 40)
    enc = tok.pad(tok.ids(samples.texts, samples.entities), info["max_seq_len"])
    ids, mask = torch.from_numpy(enc.input_ids.astype(np.int32)), torch.from_numpy(enc.attention_mask.astype(np.int32))
    assert (enc.attention_mask == 0).any()  # padding is exercised
    student, _ = init_student(model, 1)
    for m in (model, student.eval()):
        assert cls_only_supported(m)
        with torch.inference_mode():
            full = logits_module(m, sep_id=tok.sep_id)(ids, mask)
            trimmed = logits_module(m, sep_id=tok.sep_id, cls_only=True)(ids, mask)
            own = m(**model_inputs(m, enc)).logits
        np.testing.assert_allclose(trimmed.numpy(), full.numpy(), atol=1e-5)
        np.testing.assert_allclose(full.numpy(), own.numpy(), atol=1e-5)
    mobile = build_from_config("mobilebert", ["NEGATIVE", "NEUTRAL", "POSITIVE"], tiny=True)
    assert not cls_only_supported(mobile)
    with torch.inference_mode():
        np.testing.assert_allclose(logits_module(mobile, cls_only=True)(ids[:4].clamp(max=999), mask[:4]).numpy(),
                                   logits_module(mobile)(ids[:4].clamp(max=999), mask[:4]).numpy(), atol=1e-6)


def test_length_buckets_match_padding_to_max(tiny_model, tiny_bundles, validation_texts, tmp_path):
    """Bucketed bundles run each tweet at the smallest length that holds it; the logits equal
    those of a bundle that pads everything to max_seq_len (attention masks the padding)."""
    m = Manifest.read(tiny_bundles["fp32"])
    assert m.buckets == (16, 32) and m.width_for(5) == 16 and m.width_for(17) == 32 and m.width_for(99) == 32
    padded = export_bundles(tiny_model, tmp_path, [Quantization.FP32], validation_texts[:30], buckets=())[0]
    assert Manifest.read(padded.path).buckets == ()
    a = PolarityClassifier(tiny_bundles["fp32"]).logits(validation_texts[:30])
    b = PolarityClassifier(padded.path).logits(validation_texts[:30])
    np.testing.assert_allclose(a, b, atol=1e-4)
    from edgerep.workstation.export import parse_buckets

    assert parse_buckets("auto", 48) == (16, 32, 48) and parse_buckets("none", 48) == ()
    with pytest.raises(ConfigError, match="must ascend and end at the model's max_seq_len 48"):
        parse_buckets("16,64", 48)


def test_batch_signature_matches_single_tweets(tiny_bundles, validation_texts):
    for name in ("fp32", "dynamic-int8", "onnx-dynamic-int8"):
        clf = PolarityClassifier(tiny_bundles[name])
        assert clf.manifest.batch_size == 8
        texts = validation_texts[:19]  # two full batches of 8, then 3 alone
        np.testing.assert_allclose(clf.logits(texts, batch_size=8), clf.logits(texts), atol=2e-2 if "int8" in name else 1e-4)
    with pytest.raises(ValueError, match="batches of 1 or 8, not 4"):
        PolarityClassifier(tiny_bundles["fp32"]).logits(validation_texts[:4], batch_size=4)
