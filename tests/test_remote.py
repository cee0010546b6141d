"""``edgerep bench --host``: a real OpenSSH server started on 127.0.0.1 by the test itself."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server); .ci/run installs it")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_key")], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip(f"sshd did not start: {proc.stderr.read().decode()[-300:]}")
            time.sleep(0.1)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield {"host": f"{getpass.getuser()}@127.0.0.1:{port}", "key": d / "user_key", "known_hosts": d / "known_hosts"}
    proc.terminate()
    proc.wait(timeout=10)


def test_bench_over_ssh(sshd, tiny_bundles, validation_texts):
    from edgerep.measure.remote import bench_remote

    rec = bench_remote(
        sshd["host"], [tiny_bundles["dynamic-int8"]], validation_texts[:8], threads=[1], profiles=["host", "single-core"],
        warmup=1, repeats=2, key_filename=str(sshd["key"]), known_hosts=str(sshd["known_hosts"]), remote_python=sys.executable,
    )
    assert rec["schema"] == "edgerep.bench" and rec["machine"]["ssh_host"] == sshd["host"]
    assert [c.get("error") for c in rec["cells"]] == [None, None]
    cell = rec["cells"][0]
    assert cell["remote_path"].startswith("/") and cell["path"] == str(tiny_bundles["dynamic-int8"])
    assert cell["latency"]["n"] == 16 and len(cell["latency"]["run_medians_ms"]) == 2  # 8 tweets x 2 runs
    assert cell["backend"] == "litert" and cell["peak_rss_mb"] > 10 and rec["settings"]["repeats"] == 2
    assert rec["cells"][1]["profile"]["cpus"] == [0]


def test_unknown_host_key_refused(sshd, tiny_bundles, validation_texts):
    from edgerep.measure.remote import RemoteError, bench_remote

    with pytest.raises(RemoteError, match="accept-new-host-key"):
        bench_remote(sshd["host"], [tiny_bundles["fp32"]], validation_texts[:2], key_filename=str(sshd["key"]), remote_python=sys.executable)


def test_bench_cli_over_ssh(sshd, tiny_bundles, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("great car\nawful bank\n")
    out = tmp_path / "remote.json"
    proc = run_cli(
        "bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "--samples", "4", "--warmup", "0", "--threads", "1", "--repeats", "1",
        "--host", sshd["host"], "--key", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]),
        "--remote-python", sys.executable, "-o", str(out),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"on " in proc.stdout and json.loads(out.read_text())["cells"][0]["latency"]["n"] == 4
    bad = run_cli("bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "--host", "nobody@127.0.0.1:1", "--samples", "2")
    assert bad.returncode == 1 and b"cannot connect" in bad.stderr and b"Traceback" not in bad.stderr


@pytest.mark.parametrize("answer, message", [
    ("echo armv7l 3 11", "armv7l is not supported: ai-edge-litert publishes wheels for 64-bit Linux only (aarch64, x86_64); install a 64-bit OS"),
    ("echo aarch64 3 9", "is Python 3.9; edgerep needs 3.10+"),
    ('case "$2" in *ai_edge_litert*) exit 1;; esac; echo aarch64 3 11', "packages (numpy, tokenizers, ai-edge-litert) are missing"),
    ("exit 127", "no working"),
])
def test_unsupported_device_is_one_line_and_leaves_nothing(sshd, tiny_bundles, tmp_path, answer, message):
    """An armv7 board, an old Python, a device without the runtime's packages or without Python:
    one line from the CLI, and no temporary folder made on the device (checked before copying)."""
    import glob

    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\n{answer}\n")
    fake.chmod(0o755)
    f = tmp_path / "t.txt"
    f.write_text("great car\nawful bank\n")
    before = set(glob.glob("/tmp/edgerep.*"))
    proc = run_cli("bench", str(tiny_bundles["fp32"]), "--tweets", str(f), "--samples", "2", "--warmup", "0", "--threads", "1",
                   "--host", sshd["host"], "--key", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]), "--remote-python", str(fake))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and message in err and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert set(glob.glob("/tmp/edgerep.*")) == before
