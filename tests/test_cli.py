"""The CLI as a user runs it: exit codes, JSON output, and clear errors without tracebacks."""

from __future__ import annotations

import json


from conftest import run_cli


def _ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def _err(proc, *needles):
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "error:" in err
    for n in needles:
        assert n in err, err
    return err


def test_classify_text_json(tiny_bundles):
    proc = _ok(run_cli("classify", str(tiny_bundles["dynamic-int8"]), "Barclays fined £290m over Libor", "--json"))
    rec = json.loads(proc.stdout)
    assert rec["input"] == "argument" and rec["label"] in rec["probabilities"]


def test_classify_table(tiny_bundles):
    text = "Loving my new Audi"
    pred = json.loads(_ok(run_cli("classify", str(tiny_bundles["fp32"]), text, "--json")).stdout)
    table = _ok(run_cli("classify", str(tiny_bundles["fp32"]), text)).stdout.decode()
    row = next(line for line in table.splitlines() if text in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    # input, label, the three probabilities in label order, the text
    assert cells[:2] == ["argument", pred["label"]]
    assert cells[2:5] == [f"{pred['probabilities'][lab]:.3f}" for lab in ("NEGATIVE", "NEUTRAL", "POSITIVE")]


def test_classify_file_with_bad_lines_keeps_the_good_ones(tiny_bundles, tmp_path):
    f = tmp_path / "tweets.txt"
    f.write_bytes(b"\xef\xbb\xbfgreat car\n\xff\xfe broken bytes\n\n" + b"x" * 10_000 + b"\n\x00\x01\n")
    proc = run_cli("classify", str(tiny_bundles["dynamic-int8"]), "--file", str(f), "--json")
    _err(proc, f"{f}:2: invalid UTF-8 at byte 0", f"{f}:5: text is empty after normalization")
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [x["input"].rsplit(":", 1)[1] for x in lines] == ["1", "2", "4", "5"]
    assert "label" in lines[0] and "error" in lines[1] and "label" in lines[2] and "error" in lines[3]


def test_classify_stdin_json_lines(tiny_bundles):
    stdin = b'{"text": "Bank of America sued again"}\n"plain json string"\nnot json\n'
    proc = run_cli("classify", str(tiny_bundles["dynamic-int8"]), "--json", input=stdin)
    _err(proc, "stdin:3: not a JSON line")
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert "label" in out[0] and "label" in out[1] and "error" in out[2]


def test_classify_empty_tweet(tiny_bundles):
    _err(run_cli("classify", str(tiny_bundles["fp32"]), "   "), "empty after normalization")


def test_classify_missing_bundle(tmp_path):
    _err(run_cli("classify", str(tmp_path / "nope"), "hi"), "bundle directory not found")


def test_classify_missing_file(tiny_bundles, tmp_path):
    _err(run_cli("classify", str(tiny_bundles["fp32"]), "--file", str(tmp_path / "none.txt")), "file not found")


def test_train_missing_data_dir(tmp_path):
    _err(run_cli("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")), "data directory not found")
    assert not (tmp_path / "run" / "model").exists()


def test_train_offline_hub_model_is_clear(data_root, tmp_path):
    proc = run_cli("train", "--data", str(data_root), "--out", str(tmp_path / "run"), "--model", "no-such-org/no-such-model", "--limit", "8",
                   env={"HF_HUB_OFFLINE": "1"})
    _err(proc, "cannot load model 'no-such-org/no-such-model'")


def test_export_invalid_quantization(tiny_model, data_root, tmp_path):
    proc = run_cli("export", str(tiny_model), "--out", str(tmp_path / "b"), "--data", str(data_root), "--quantize", "int2")
    _err(proc, "unknown quantization 'int2'; valid: fp32, fp16, dynamic-int8, full-int8, int4-weights")


def test_usage_error_exit_code(tmp_path):
    proc = run_cli("evaluate", str(tmp_path), "--data", str(tmp_path), "--split", "dev")
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


HEAVY = ("torch", "transformers", "litert_torch", "ai_edge_quantizer", "onnxruntime", "matplotlib", "tokenizers", "ai_edge_litert")


def test_help_is_light():
    """``--help`` of every command imports none of the heavy libraries (and no model runtime)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from edgerep.app.cli import main\n"
        "for cmd in ([], ['run'], ['bench'], ['export'], ['classify'], ['serve'], ['report'], ['data', 'stats']):\n"
        "    assert main([*cmd, '--help']) == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_edgerep_and_help_lists_from_the_registry():
    from edgerep.registry import MODEL_ALIASES, PROFILES, Quantization

    proc = _ok(run_cli("run", "--help", env={"COLUMNS": "400"}))
    out = proc.stdout.decode()
    assert all(q.value in out for q in Quantization) and all(a in out for a in MODEL_ALIASES)
    bench = _ok(run_cli("bench", "--help", env={"COLUMNS": "400"})).stdout.decode()
    assert all(p in bench for p in PROFILES)


def test_root_package_exports_the_runtime():
    import edgerep

    assert edgerep.PolarityClassifier.__module__ == "edgerep.device.runtime"
    assert edgerep.LABELS == ("NEGATIVE", "NEUTRAL", "POSITIVE")


def test_corrupt_run_config_is_one_error_line(data_root, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{truncated")
    _err(run_cli("run", "--data", str(data_root), "--out", str(run_dir), "--limit", "8"), f"{run_dir / 'config.json'}: not a readable JSON config")


def test_help_texts_print_brackets_as_written():
    """Help is plain text: an extra's name and [CLS] are not taken for markup."""
    assert "pip install 'edgerep[ray]'" in " ".join(_ok(run_cli("batch", "--help", env={"COLUMNS": "300"})).stdout.decode().split())
    assert "for [CLS] alone" in " ".join(_ok(run_cli("distill", "--help", env={"COLUMNS": "300"})).stdout.decode().split())


def test_run_table_leads_with_the_bundle_to_deploy():
    from rich.console import Console

    from edgerep.app.cli.tables import run_table

    row = {"model": "pytorch float32", "size_mb": 90.9, "accuracy": 0.7648, "macro_f1": 0.7345}
    summary = {"train": {"model": "all-MiniLM-L6-v2", "validation_size": 4052}, "rows": [row]}
    rec = {"variant": "k3-pruned/dynamic-int4", "size_mb": 7.83, "accuracy": 0.7648, "macro_f1": 0.7269, "latency_p50_ms": 4.0}
    console = Console(width=300, record=True)
    console.print(run_table({**summary, "recommended": rec}))
    lines = [ln for ln in console.export_text().splitlines() if "0.76" in ln]
    assert "recommended: k3-pruned/dynamic-int4" in lines[0] and "7.83" in lines[0] and "pytorch float32" in lines[1]
    console = Console(width=300, record=True)
    console.print(run_table(summary))
    assert "recommended" not in console.export_text()
