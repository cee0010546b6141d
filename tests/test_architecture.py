"""The layout's rules (what each layer may import), quiet and readable output, the registry.

All fast: no model is trained or converted here.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

import edgerep
from edgerep import log
from edgerep.errors import ConfigError

PKG = Path(edgerep.__file__).resolve().parent
HEAVY = {"torch", "transformers", "litert_torch", "ai_edge_quantizer", "onnx", "matplotlib"}
LAYERS = ("device", "data", "measure", "workstation", "app")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at_module_level)`` for every import in a source file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try)) for n in ast.walk(s)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if mod == "edgerep":  # from edgerep import LABELS / log
                out += [(f"edgerep.{a.name}" if (PKG / a.name).is_dir() else "edgerep", id(node) in top) for a in node.names]
            else:
                out.append((mod, id(node) in top))
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "edgerep" and len(parts) > 1 and parts[1] in LAYERS else None


def _sources(layer: str | None) -> list[Path]:
    if layer is None:
        return [p for p in PKG.glob("*.py")]
    return sorted((PKG / layer).rglob("*.py"))


def test_layers_import_only_what_their_folder_allows():
    """top level -> nothing of edgerep's layers; device -> top level; data -> device; measure ->
    data, device (workstation only inside functions); workstation -> measure, data, device;
    app -> anything; nothing imports app (the CLI entry point ``__main__`` aside)."""
    allowed = {
        None: set(),
        "device": {"device"},
        "data": {"data", "device"},
        "measure": {"measure", "data", "device"},
        "workstation": {"workstation", "measure", "data", "device"},
        "app": set(LAYERS),
    }
    lazily_allowed = {"measure": {"workstation"}, None: {"device"}}  # the root package exports the runtime lazily
    problems = []
    for layer, ok in allowed.items():
        for src in _sources(layer):
            if src.name == "__main__.py" and layer is None:
                continue
            for mod, top in _imports(src):
                target = _layer(mod)
                if target is None or target in ok:
                    continue
                if not top and target in lazily_allowed.get(layer, set()):
                    continue
                problems.append(f"{src.relative_to(PKG)} imports {mod}")
    assert problems == []


def test_device_and_data_never_import_heavy_libraries_even_lazily():
    problems = [f"{src.relative_to(PKG)} imports {mod}" for layer in ("device", "data", None) for src in _sources(layer)
                for mod, _ in _imports(src) if mod.split(".")[0] in HEAVY]
    assert problems == []
    # measure imports heavy libraries only inside the functions that measure a checkpoint
    top = [f"{src.relative_to(PKG)} imports {mod}" for src in _sources("measure") for mod, at_top in _imports(src)
           if at_top and mod.split(".")[0] in HEAVY]
    assert top == []


def test_light_layers_load_with_heavy_libraries_blocked():
    """What a Raspberry Pi runs: the device, data and measure layers and the CLI module import
    with torch & co. made unimportable (the model-level variant classifies too)."""
    code = textwrap.dedent(
        """
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] in ('torch', 'transformers', 'litert_torch', 'ai_edge_quantizer', 'matplotlib'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import edgerep.device.runtime, edgerep.device.manifest, edgerep.data, edgerep.data.stats
        import edgerep.measure.bench, edgerep.measure.evaluate, edgerep.measure.records, edgerep.app.cli, edgerep.app.report
        print('ok')
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.fixture()
def captured(monkeypatch, tmp_path):
    """The log console writing to a string (not a terminal), and a log file."""
    buf = io.StringIO()
    monkeypatch.setattr(log, "console", Console(file=buf, force_terminal=False, width=200))
    monkeypatch.setitem(log._state, "file", None)
    log.configure(log_file=tmp_path / "edgerep.log")
    return buf, tmp_path / "edgerep.log"


def test_progress_prints_plain_lines_every_five_percent_when_not_a_terminal(captured, monkeypatch):
    buf, logfile = captured
    clock = iter(range(0, 10_000, 2))  # each step 2 s after the previous one: 5% (10 steps) = 20 s, within 30 s, past the 5 s gap
    monkeypatch.setattr(log.time, "monotonic", lambda: next(clock))
    with log.progress("epoch 1/3", 200) as bar:
        for i in range(200):
            bar.advance(1, info=f"loss {1 / (i + 1):.3f}")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 20  # one per 5% (10 of 200), the last at 100%
    assert lines[0].startswith("epoch 1/3: 10/200 (5%) loss 0.100, elapsed 0:20, eta 6:20")
    assert lines[-1].startswith("epoch 1/3: 200/200 (100%)")
    assert logfile.read_text().count("epoch 1/3:") == 20


def test_fast_work_prints_only_its_closing_line(captured):
    buf, _ = captured
    with log.progress("evaluate fp32", 4052) as bar:
        for s in range(0, 4052, 64):
            bar.advance(min(64, 4052 - s))
    (line,) = buf.getvalue().splitlines()  # done within the 5 s minimum gap: no 5% lines
    assert line.startswith("evaluate fp32: 4,052/4,052 (100%), elapsed 0:00")


def test_progress_prints_at_least_every_interval(captured, monkeypatch):
    buf, _ = captured
    clock = iter(range(0, 10_000, 31))  # each call 31 s later than the previous one
    monkeypatch.setattr(log.time, "monotonic", lambda: next(clock))
    with log.progress("slow", 10_000) as bar:
        bar.advance(1)
        bar.advance(1)
    lines = buf.getvalue().splitlines()
    assert [ln.split(", elapsed")[0] for ln in lines] == ["slow: 1/10,000 (0%)", "slow: 2/10,000 (0%)"]


def test_log_lines_go_to_the_file_without_markup(captured):
    buf, logfile = captured
    log.log("[bold]1/5 fine-tune[/]")
    assert "1/5 fine-tune" in buf.getvalue() and logfile.read_text().rstrip().endswith(" 1/5 fine-tune")


def test_native_output_is_held_back_and_shown_on_failure(capfd, monkeypatch):
    import os

    monkeypatch.delenv("EDGEREP_DEBUG", raising=False)
    monkeypatch.setenv("EDGEREP_VERBOSE", "0")
    with log.native_output_captured():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), log.native_output_captured():
        os.write(2, b"converter: lowering failed\n")
        raise RuntimeError("boom")
    assert "converter: lowering failed" in capfd.readouterr().err
    monkeypatch.setenv("EDGEREP_VERBOSE", "1")  # --verbose: nothing held back
    with log.native_output_captured():
        os.write(2, b"shown\n")
    assert "shown" in capfd.readouterr().err


def test_third_party_noise_is_silenced_by_default_and_shown_with_verbose():
    code = textwrap.dedent(
        """
        import logging, sys, warnings
        from edgerep import log
        log.configure(verbose={verbose})
        logging.getLogger('torchao').warning('Failed to load libfoo.so')
        logging.getLogger('torch.utils._pytree').warning('is an Enum subclass')
        warnings.warn('old API', FutureWarning)
        """
    )
    quiet = subprocess.run([sys.executable, "-c", code.format(verbose=False)], capture_output=True, text=True, timeout=60)
    loud = subprocess.run([sys.executable, "-c", code.format(verbose=True)], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    assert "Failed to load" in loud.stderr and "Enum subclass" in loud.stderr and "old API" in loud.stderr


def test_registry_names_and_errors():
    from edgerep.registry import Backend, Quantization, bundle_name, parse_architectures, parse_backends

    assert [q.value for q in Quantization] == ["fp32", "fp16", "dynamic-int8", "full-int8", "int4-weights", "dynamic-int8-emb4", "dynamic-int4"]
    assert bundle_name(Backend.ONNXRUNTIME, Quantization.DYNAMIC_INT8) == "onnx-dynamic-int8"
    assert parse_backends("onnxruntime,litert") == [Backend.LITERT, Backend.ONNXRUNTIME]
    with pytest.raises(ConfigError, match="unknown architecture 'gpt2'; valid: mobilebert, bert-base, bert-large, none"):
        parse_architectures("mobilebert,gpt2")


def test_typed_configs_parse_names_into_enums():
    from edgerep.registry import Backend, Quantization
    from edgerep.workstation.matrix import MatrixConfig

    cfg = MatrixConfig(quantizations=("int4-weights", "fp32"), backends=("litert",))
    assert cfg.quantizations == (Quantization.FP32, Quantization.INT4_WEIGHTS) and cfg.backends == (Backend.LITERT,)
    assert cfg.to_dict()["quantizations"] == ["fp32", "int4-weights"]
    with pytest.raises(ConfigError, match="unknown backend 'tvm'"):
        MatrixConfig(backends=("tvm",))


def test_read_record_errors_name_the_file(tmp_path):
    from edgerep.errors import RecordError
    from edgerep.measure.records import read_record

    bad = tmp_path / "r.json"
    bad.write_text("{")
    with pytest.raises(RecordError, match=f"{bad}: not a readable JSON record"):
        read_record(bad)
    bad.write_text('{"schema": "edgerep.evaluation", "schema_version": 1}')
    with pytest.raises(RecordError, match="record of kind edgerep.evaluation, expected edgerep.bench"):
        read_record(bad, "bench")
    with pytest.raises(RecordError, match="record not found"):
        read_record(tmp_path / "missing.json")


def test_cpu_flags_are_read_from_cpuinfo():
    from edgerep.measure.records import cpu_flags

    assert cpu_flags("flags\t\t: fpu sse avx2 fma avx512f avx512_vnni\n") == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert cpu_flags("Features\t: fp asimd evtstrm crc32 asimddp\n") == ["asimd", "asimddp"]


def test_a_tables_machine_line_names_the_cpu_and_its_int8_flags_only():
    from edgerep.measure.records import machine_caption

    m = {"cpu": "AMD EPYC", "logical_cores": 2, "cpu_flags": ["avx2", "fma", "f16c", "sse4_2"]}
    assert machine_caption(m) == "AMD EPYC, 2 cores; int8-relevant flags: avx2 fma f16c; 1 thread"
    assert machine_caption({"cpu": "Cortex-A76", "logical_cores": 4, "cpu_flags": []}, 4).endswith("flags: none recorded; 4 threads")
    assert machine_caption(m, None) == "AMD EPYC, 2 cores; int8-relevant flags: avx2 fma f16c"
