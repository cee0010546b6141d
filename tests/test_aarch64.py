"""The device path on 64-bit ARM under emulation (benchmarks/aarch64_check.py): the built wheel
with its aarch64 runtime wheels, ``edgerep classify`` and ``edgerep serve`` under
``qemu-aarch64-static`` on real tweets, logits compared with this machine's run.

Needs Debian's ``qemu-user-static`` and ``mmdebstrap`` (CI installs them) and the package index
(the aarch64 wheels are downloaded); skipped with its reason where the tools are missing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("aarch64_check", Path(__file__).parents[1] / "benchmarks" / "aarch64_check.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["aarch64_check"] = check
_spec.loader.exec_module(check)

needs_qemu = pytest.mark.skipif(bool(check.missing_tools()), reason=f"{' and '.join(check.missing_tools())} not installed (apt-get install qemu-user-static mmdebstrap)")


def test_compare_rules():
    """float32: max |dlogit| <= 1e-4 decides; quantized: identical labels on >= 98% decide."""
    import numpy as np

    ref = {"logits": np.zeros((50, 3)), "labels": ["NEUTRAL"] * 50}
    close = {"logits": np.full((50, 3), 5e-5), "labels": ["NEUTRAL"] * 50}
    far = {"logits": np.full((50, 3), 2e-4), "labels": ["NEUTRAL"] * 50}
    one_flip = {"logits": np.full((50, 3), 0.3), "labels": ["NEUTRAL"] * 49 + ["POSITIVE"]}
    two_flips = {"logits": np.full((50, 3), 0.3), "labels": ["NEUTRAL"] * 48 + ["POSITIVE"] * 2}
    assert check.compare(ref, close, "fp32")["passed"] and not check.compare(ref, far, "fp32")["passed"]
    assert check.compare(ref, one_flip, "dynamic-int8")["passed"]  # 98%
    assert not check.compare(ref, two_flips, "dynamic-int8")["passed"]  # 96%
    assert check.compare(ref, one_flip, "dynamic-int8")["max_abs_logit_diff"] == pytest.approx(0.3)
    assert not check.compare(ref, {"logits": np.zeros((49, 3)), "labels": ["NEUTRAL"] * 49}, "fp32")["passed"]


def test_board_cpuinfo_reads_as_the_board(tmp_path):
    """The /proc/cpuinfo written for the emulated board gives the board's flags to cpu_flags()."""
    from edgerep.measure.records import cpu_flags

    assert check.write_board(tmp_path, "cortex-a72") == "Raspberry Pi 4 Model B"
    assert cpu_flags((tmp_path / "proc" / "cpuinfo").read_text()) == ["asimd"]
    check.write_board(tmp_path, "cortex-a76")
    assert cpu_flags((tmp_path / "proc" / "cpuinfo").read_text()) == ["asimd", "asimddp", "fphp", "asimdhp"]
    assert (tmp_path / "sys/devices/system/cpu/possible").read_text() == "0-3\n"


@needs_qemu
@pytest.mark.qemu
def test_device_path_on_aarch64_matches_x86(tiny_bundles, tiny_entity_bundles, data_root, tmp_path):
    """The installed console script under aarch64 emulation (Pi 4 and Pi 5 CPUs; QEMU's ``max``,
    a finding of the benchmark, is left to it) gives this machine's logits on 50 real validation tweets: float32 to
    1e-4, dynamic int8 with >= 98% identical labels; ``edgerep serve`` answers one request there
    (first bundle); an entity-conditioned bundle reads each tweet's entity. The check's duration
    is recorded by the script, not asserted here."""
    from edgerep.data import sample_texts

    sample = sample_texts(data_root, "validation", 50)
    bundles = [tiny_bundles["fp32"], tiny_bundles["dynamic-int8"], tiny_entity_bundles["fp32"]]
    payload = check.check(bundles, sample.texts, sample.entities, tmp_path / "work", ["cortex-a72", "cortex-a76"], log=lambda *_: None)

    print(f"aarch64 check: {payload['check_seconds']:.0f} s")
    assert payload["passed"], [r for r in payload["results"] if r["decides"] and not r["passed"]]
    by = {(Path(r["bundle"]).parent.name + "/" + Path(r["bundle"]).name, r["cpu"]): r for r in payload["results"]}
    assert len(by) == 6 and all(r["tweets"] == 50 and r["decides"] for r in payload["results"])
    for (name, cpu), r in by.items():
        if r["quantization"] == "fp32":
            assert r["max_abs_logit_diff"] <= 1e-4, (name, cpu, r)
        if cpu == "cortex-a72" and name == f"{tiny_bundles['fp32'].parent.name}/fp32":
            assert r["serve"]["same_label_as_classify"] and set(r["serve"]["probabilities"]) == {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    machines = payload["emulated_machines"]
    assert {m["machine"] for m in machines.values()} == {"aarch64"}
    assert machines["cortex-a72"]["cpu_flags"] == ["asimd"] and "asimddp" in machines["cortex-a76"]["cpu_flags"]
    assert any(w.startswith("ai_edge_litert-") for w in payload["aarch64_wheels"])
