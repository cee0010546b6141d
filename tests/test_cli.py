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
    proc = _ok(run_cli("classify", str(tiny_bundles["fp32"]), "Loving my new Audi"))
    assert b"Loving my new Audi" in proc.stdout


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
    _err(proc, "unknown quantization 'int2'; valid: fp32, fp16, dynamic-int8, int8, int4-weights")


def test_usage_error_exit_code(tmp_path):
    proc = run_cli("evaluate", str(tmp_path), "--data", str(tmp_path), "--split", "dev")
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


def test_help_is_light():
    proc = _ok(run_cli("--help"))
    assert b"classify" in proc.stdout and b"run" in proc.stdout
