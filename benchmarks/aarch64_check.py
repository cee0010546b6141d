"""The device side on 64-bit ARM, under emulation: the installed ``edgerep`` wheel with its aarch64
runtime wheels classifies real tweets with a real bundle, and its logits are compared with this
machine's (x86) run of the same bundle on the same tweets.

    python benchmarks/aarch64_check.py runs/default/bundles/fp32 runs/default/bundles/dynamic-int8 \\
        --data ../shared/data/replab2013 --out runs/aarch64/check.json

Steps (Debian's ``qemu-user-static`` and ``mmdebstrap``; nothing runs emulated during set-up):

1. **System**: ``mmdebstrap --variant=extract --arch=arm64 --include=python3,libstdc++6 bookworm``
   unpacks Debian's aarch64 Python 3.11 into a folder (not installed, ~10 s, ~77 MB).
2. **Packages**: ``pip wheel`` builds edgerep's wheel from this tree; the host's pip installs it with
   ``[serve]`` as aarch64 wheels into a second folder (``--platform manylinux_2_X_aarch64
   --python-version 3.11 --only-binary=:all:``): ai-edge-litert, tokenizers, numpy, FastAPI, ...
3. **Board**: the folder gets the board's ``/proc/cpuinfo`` (a Raspberry Pi 4's Cortex-A72 or a
   Pi 5's Cortex-A76) and ``/sys/devices/system/cpu/{possible,present,online}``: through the
   emulator XNNPACK would read the host's x86 ``/proc/cpuinfo`` and ``Interpreter()`` segfaults;
   ``qemu-aarch64-static -L`` looks paths up in the folder first.
4. **Per emulated CPU** (``-cpu cortex-a72``, ``cortex-a76``, ``max``): the installed console
   script ``edgerep classify BUNDLE --json --logits --threads 1`` on the tweets (JSON lines with
   each tweet's entity for an entity-conditioned bundle), the emulated ``machine_info()`` (CPU
   flags as the board reports them), and for the first bundle on the first CPU ``edgerep serve
   --port 0`` + one ``POST /classify`` from this machine.
5. **Compare** with :class:`edgerep.device.runtime.PolarityClassifier` on this machine, same
   tweets, 1 thread: float32 needs max |Δlogit| <= 1e-4; quantized bundles need identical labels
   on >= 98% of the tweets (max |Δlogit| recorded). QEMU's default ``max`` CPU advertises
   SVE2/SME; its result is recorded as a finding and does not decide the check (dynamic int8
   logits came out wrong there with Debian's QEMU 7.2; whether that is the emulator or a LiteRT
   kernel on SVE2/SME hardware is open).

Emulated timings say nothing about a device's speed and are not reported; the record keeps only
the check's own duration. Exit status 0 when every board CPU passes, 1 otherwise; 2 when the
tools are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: Board CPUs the check decides on (QEMU ``-cpu`` name -> board and its /proc/cpuinfo per core);
#: ``max`` is QEMU's default, recorded as a finding. /proc/cpuinfo formats and Features lines as
#: a 64-bit Raspberry Pi OS prints them on each board (Linux ``arch/arm64/kernel/cpuinfo.c``).
BOARDS = {
    "cortex-a72": ("Raspberry Pi 4 Model B", "0xd08", "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": ("Raspberry Pi 5 Model B", "0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
}
FINDING_CPUS = ("max",)

#: Acceptance: float32 logits equal to 1e-4; quantized labels equal on >= 98%.
FP32_MAX_ABS = 1e-4
QUANTIZED_LABEL_AGREEMENT = 0.98

DEBIAN_SUITE = "bookworm"  # its python3 is 3.11
PYTHON_VERSION = "3.11"
#: glibc 2.17 .. 2.36 (bookworm's): every manylinux tag an aarch64 wheel may carry that this system runs.
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{v}_aarch64" for v in range(17, 37))]


class CheckError(RuntimeError):
    """A step of the check failed (its command and the last line it printed)."""


def missing_tools() -> list[str]:
    """The host tools the check needs and does not find on PATH."""
    return [t for t in ("qemu-aarch64-static", "mmdebstrap") if shutil.which(t) is None]


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        last = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()][-1:] or [f"exit status {p.returncode}"]
        raise CheckError(f"{what} failed: {last[0][:400]}")
    return p


def make_sysroot(root: Path) -> Path:
    """Debian's aarch64 ``python3`` unpacked into ``root`` (reused when already there)."""
    if (root / "usr" / "bin" / "python3").is_file():
        return root
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64", "--include=python3,libstdc++6", DEBIAN_SUITE, str(tmp)],
         "mmdebstrap (aarch64 python3)")
    os.replace(tmp, root)
    return root


def install_packages(site: Path, wheel_dir: Path) -> Path:
    """This tree's edgerep wheel + its ``[serve]`` extra as aarch64 wheels in ``site`` (pip --target)."""
    shutil.rmtree(wheel_dir, ignore_errors=True)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(REPO)], "pip wheel (edgerep)")
    wheel = next(wheel_dir.glob("edgerep-*.whl"))
    shutil.rmtree(site, ignore_errors=True)
    plats = [a for p in PLATFORMS for a in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(site), *plats,
          "--python-version", PYTHON_VERSION, "--only-binary=:all:", f"{wheel}[serve]"], "pip install (aarch64 wheels)")
    return site


def write_board(root: Path, cpu: str) -> str:
    """The board's ``/proc/cpuinfo`` and CPU lists inside ``root``; returns the board's name."""
    board, part, features = BOARDS.get(cpu, BOARDS["cortex-a72"])
    core = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
            "CPU variant\t: 0x0\nCPU part\t: {p}\nCPU revision\t: 3\n")
    text = "\n".join(core.format(i=i, f=features, p=part) for i in range(4)) + f"\nModel\t\t: {board}\n"
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(text)
    cpus = root / "sys" / "devices" / "system" / "cpu"
    cpus.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpus / name).write_text("0-3\n")
    return board


def emulated(root: Path, site: Path, cpu: str, args: list[str]) -> tuple[list[str], dict]:
    """``(command, environment)`` of ``qemu-aarch64-static -cpu CPU -L ROOT ROOT/usr/bin/python3
    ARGS`` with ``site`` on the module path."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8", "HOME": str(root)}
    return ["qemu-aarch64-static", "-cpu", cpu, "-L", str(root), str(root / "usr" / "bin" / "python3"), *args], env


def classify_emulated(root: Path, site: Path, cpu: str, bundle: Path, texts: list[str], entities: list[str] | None) -> dict:
    """The installed console script ``edgerep classify`` under emulation: logits float [n, 3], labels."""
    cmd, env = emulated(root, site, cpu, [str(site / "bin" / "edgerep"), "classify", str(bundle), "--json", "--logits", "--threads", "1"])
    lines = [json.dumps({"text": t, **({"entity": e} if entities else {})}) for t, e in zip(texts, entities or texts)]
    p = _run(cmd, f"edgerep classify under qemu -cpu {cpu}", input="\n".join(lines) + "\n", env=env, timeout=600)
    rows = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
    return {"logits": np.asarray([r["logits"] for r in rows], dtype=np.float64), "labels": [r["label"] for r in rows]}


def machine_emulated(root: Path, site: Path, cpu: str) -> dict:
    """``edgerep.measure.records.machine_info()`` as the emulated board reports it."""
    cmd, env = emulated(root, site, cpu, ["-c", "import json; from edgerep.measure.records import machine_info; print(json.dumps(machine_info()))"])
    return json.loads(_run(cmd, f"machine_info under qemu -cpu {cpu}", env=env, timeout=120).stdout)


def serve_emulated(root: Path, site: Path, cpu: str, bundle: Path, text: str, entity: str | None, timeout_s: float = 120) -> dict:
    """``edgerep serve BUNDLE --port 0`` under emulation, one ``POST /classify`` from this machine;
    returns the answer. The server is stopped (SIGINT, then SIGKILL) whatever happens."""
    cmd, env = emulated(root, site, cpu, [str(site / "bin" / "edgerep"), "serve", str(bundle), "--port", "0", "--threads", "1"])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        url = None
        for line in proc.stderr:  # "serving BUNDLE on http://127.0.0.1:PORT  (POST /classify, ...)"
            if " on http://" in line:
                url = line.split(" on ", 1)[1].split()[0]
                break
            if time.monotonic() > deadline:
                break
        if url is None:
            raise CheckError(f"edgerep serve under qemu -cpu {cpu} did not start (exit status {proc.poll()})")
        body = json.dumps({"text": text, **({"entity": entity} if entity else {})}).encode()
        req = urllib.request.Request(f"{url}/classify", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return json.loads(r.read())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def reference(bundle: Path, texts: list[str], entities: list[str] | None) -> dict:
    """This machine's logits float [n, 3] and labels, 1 thread, through the same runtime."""
    from edgerep.device.runtime import PolarityClassifier

    clf = PolarityClassifier(bundle, num_threads=1)
    preds = [clf.classify(t, e) for t, e in zip(texts, entities or [None] * len(texts))]
    return {"logits": np.asarray([p.logits for p in preds], dtype=np.float64), "labels": [p.label for p in preds]}


def compare(ref: dict, got: dict, quantization: str) -> dict:
    """Max |Δlogit|, label agreement and the verdict for one bundle on one emulated CPU."""
    if got["logits"].shape != ref["logits"].shape:
        return {"passed": False, "error": f"{len(got['labels'])} answers for {len(ref['labels'])} tweets"}
    delta = float(np.abs(got["logits"] - ref["logits"]).max())
    agree = float(np.mean([a == b for a, b in zip(got["labels"], ref["labels"])]))
    passed = delta <= FP32_MAX_ABS if quantization == "fp32" else agree >= QUANTIZED_LABEL_AGREEMENT
    return {"max_abs_logit_diff": delta, "label_agreement": agree, "passed": bool(passed),
            "rule": f"max |dlogit| <= {FP32_MAX_ABS:g}" if quantization == "fp32" else f"labels equal on >= {QUANTIZED_LABEL_AGREEMENT:.0%}"}


def check(bundles: list[Path], texts: list[str], entities: list[str] | None, work: Path, cpus: list[str],
          log=print) -> dict:
    """Run the whole check (steps 1-5 of the module docstring); returns the record's payload.

    Raises:
        CheckError: a set-up step or an emulated command failed.
    """
    from edgerep.device.manifest import Manifest

    manifests = {b: Manifest.read(b) for b in bundles}  # a bad bundle fails before the set-up
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    root = make_sysroot(work / "sysroot-arm64")
    log(f"aarch64 system: {root} ({time.perf_counter() - t0:.0f} s)")
    site = install_packages(work / "site-aarch64", work / "wheel")
    wheels = sorted(p.name for p in site.glob("*.dist-info"))
    log(f"aarch64 packages: {len(wheels)} wheels in {site} ({time.perf_counter() - t0:.0f} s)")
    results = []
    for b in bundles:
        m = manifests[b]
        ents = entities if m.entity_conditioned else None
        ref = reference(b, texts, ents)
        mode = m.quantization["mode"]
        for cpu in cpus:
            board = write_board(root, cpu)
            t1 = time.perf_counter()
            got = classify_emulated(root, site, cpu, b, texts, ents)
            row = {"bundle": str(b), "quantization": mode, "cpu": cpu, "board": board if cpu in BOARDS else None,
                   "decides": cpu in BOARDS, "tweets": len(texts), **compare(ref, got, mode),
                   "check_seconds": round(time.perf_counter() - t1, 1)}
            if cpu == cpus[0] and b == bundles[0]:
                answer = serve_emulated(root, site, cpu, b, texts[0], ents[0] if ents else None)
                probs = [answer["probabilities"][k] for k in sorted(answer["probabilities"])]
                row["serve"] = {"label": answer["label"], "same_label_as_classify": answer["label"] == got["labels"][0],
                                "probabilities": answer["probabilities"]}
                row["passed"] = row["passed"] and row["serve"]["same_label_as_classify"] and len(probs) == 3
            results.append(row)
            log(f"{Path(b).name} ({mode}) on -cpu {cpu}: max |dlogit| {row.get('max_abs_logit_diff', float('nan')):.3g}, "
                f"labels equal {row.get('label_agreement', 0):.1%} -> {'pass' if row['passed'] else 'FAIL'}"
                + ("" if row["decides"] else " (finding only)"))
    machines = {}
    for cpu in cpus:
        write_board(root, cpu)
        mi = machine_emulated(root, site, cpu)
        machines[cpu] = {k: mi.get(k) for k in ("cpu", "machine", "cpu_flags", "python", "ai-edge-litert", "numpy", "tokenizers")}
    return {
        "settings": {"tweets": len(texts), "cpus": cpus, "deciding_cpus": [c for c in cpus if c in BOARDS],
                     "fp32_max_abs_logit_diff": FP32_MAX_ABS, "quantized_label_agreement": QUANTIZED_LABEL_AGREEMENT,
                     "debian": DEBIAN_SUITE, "python": PYTHON_VERSION, "qemu": _qemu_version()},
        "emulated_machines": machines,
        "aarch64_wheels": wheels,
        "results": results,
        "passed": all(r["passed"] for r in results if r["decides"]),
        "check_seconds": round(time.perf_counter() - t0, 1),
        "note": "timings under emulation are not device speed; only the check's duration is kept",
    }


def _qemu_version() -> str:
    p = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True)
    return p.stdout.splitlines()[0] if p.returncode == 0 and p.stdout else "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example: python benchmarks/aarch64_check.py runs/default/bundles/fp32 runs/default/bundles/dynamic-int8 --out runs/aarch64/check.json")
    ap.add_argument("bundles", nargs="+", type=Path, help="bundle directories (LiteRT) to check")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "replab2013", help="RepLab 2013 root: validation tweets and their entities")
    ap.add_argument("--tweets", type=int, default=50, help="real validation tweets to compare (default 50)")
    ap.add_argument("--cpus", default="cortex-a72,cortex-a76,max",
                    help=f"QEMU CPU models; {', '.join(BOARDS)} decide, others are findings (default: %(default)s)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the aarch64 system and packages (default: a temporary one, removed)")
    ap.add_argument("--out", type=Path, default=None, help="write the edgerep.aarch64_check record here (JSON)")
    a = ap.parse_args(argv)

    from edgerep.data import sample_texts
    from edgerep.errors import EdgerepError
    from edgerep.measure.records import make_record, write_record

    if missing := missing_tools():
        print(f"error: {' and '.join(missing)} not found: apt-get install qemu-user-static mmdebstrap", file=sys.stderr)
        return 2
    cpus = [c.strip() for c in a.cpus.split(",") if c.strip()]
    try:
        sample = sample_texts(a.data, "validation", a.tweets)
        work = a.work or Path(tempfile.mkdtemp(prefix="edgerep-aarch64-"))
        try:
            payload = check([b.resolve() for b in a.bundles], sample.texts, sample.entities, work.resolve(), cpus)
        finally:
            if a.work is None:
                shutil.rmtree(work, ignore_errors=True)
    except (EdgerepError, CheckError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.out:
        write_record(a.out, make_record("aarch64_check", payload))
        print(f"record written to {a.out}")
    print(f"aarch64 check {'passed' if payload['passed'] else 'FAILED'} in {payload['check_seconds']:.0f} s "
          f"({len(payload['results'])} bundle x CPU runs, {payload['settings']['tweets']} tweets each)")
    return 0 if payload["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
