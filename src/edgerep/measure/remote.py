"""Benchmark on a real device over SSH (paramiko): copy the light runtime and the bundles,
run the same worker as :mod:`edgerep.measure.bench` there, bring back the JSON.

The device needs a 64-bit OS (aarch64 or x86_64: ai-edge-litert has no 32-bit ARM wheels) and
Python 3.10+ with numpy, tokenizers and ai-edge-litert (``pip install edgerep`` installs them);
:meth:`Device.preflight` checks that before anything is copied. Nothing else is installed or left
behind: the files go to a temporary
directory that is removed at the end. Unknown host keys are refused unless ``accept_new_host_key``
(OpenSSH's ``StrictHostKeyChecking=accept-new``).
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
from collections.abc import Sequence
from pathlib import Path

from edgerep.errors import RemoteError

PACKAGE_DIR = Path(__file__).resolve().parents[1]

#: ``platform.machine()`` values of the CPU architectures ai-edge-litert publishes Linux wheels
#: for (PyPI, ai-edge-litert 2.3.0: manylinux_2_27 aarch64 and x86_64; none for armv7l/armv6l).
SUPPORTED_MACHINES = {"aarch64": "aarch64", "arm64": "aarch64", "x86_64": "x86_64", "AMD64": "x86_64"}

#: What the device gets: the package's top-level modules and its light layers (the worker needs
#: no workstation or application code).
LIGHT_PARTS = ("device", "data", "measure")


def parse_host(host: str) -> tuple[str | None, str, int]:
    """``user@host:port`` -> ``(user, host, port)`` (user optional, port default 22).

    Raises:
        RemoteError: empty host or a port that is not a number.
    """
    user, _, rest = host.rpartition("@")
    name, _, port = rest.partition(":")
    if not name:
        raise RemoteError(f"--host {host!r}: expected user@host[:port]")
    try:
        return (user or None), name, int(port) if port else 22
    except ValueError:
        raise RemoteError(f"--host {host!r}: port {port!r} is not a number") from None


class Device:
    """An SSH connection to an edge device (context manager).

    Args:
        host: ``user@host[:port]``.
        key_filename: private key file (``None``: SSH agent and ``~/.ssh`` keys).
        known_hosts: known_hosts file to trust besides the system's and the user's.
        accept_new_host_key: trust and record an unknown host key (first contact).
        remote_python: the Python interpreter on the device.
        timeout_s: connect timeout and per-command limit.

    Raises:
        RemoteError: unreachable host, refused authentication, or an unknown host key.
    """

    def __init__(
        self,
        host: str,
        key_filename: str | None = None,
        known_hosts: str | None = None,
        accept_new_host_key: bool = False,
        remote_python: str = "python3",
        timeout_s: float = 900,
    ):
        import paramiko

        self.user, self.hostname, self.port = parse_host(host)
        self.remote_python = remote_python
        self.timeout_s = timeout_s
        self._client = paramiko.SSHClient()
        self._client.load_system_host_keys()
        if known_hosts:
            self._client.load_host_keys(known_hosts)
        self._client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if accept_new_host_key else paramiko.RejectPolicy())
        try:
            self._client.connect(
                self.hostname,
                port=self.port,
                username=self.user,
                key_filename=key_filename,
                timeout=min(timeout_s, 30),
                banner_timeout=30,
                auth_timeout=30,
            )
        except paramiko.SSHException as exc:
            raise RemoteError(f"{host}: SSH failed ({exc}); for a first contact pass --accept-new-host-key") from None
        except OSError as exc:
            raise RemoteError(f"{host}: cannot connect ({exc.strerror or exc})") from None
        self.host = host
        self.workdir: str | None = None

    def __enter__(self) -> Device:
        try:
            self.preflight()
        except BaseException:
            self._client.close()
            raise
        self.workdir = self.run("mktemp -d -t edgerep.XXXXXX").strip()
        return self

    def preflight(self) -> dict:
        """Check the device before anything is copied: a CPU architecture that ai-edge-litert
        publishes wheels for, Python 3.10+, and the runtime's packages. Returns ``{"machine",
        "python"}``.

        Raises:
            RemoteError: one line naming what is missing (no ``remote_python``, an armv7l/armv6l
                board, an old Python, packages not installed).
        """
        py = shlex.quote(self.remote_python)
        try:
            arch, major, minor = self.run(f"{py} -c 'import platform, sys; print(platform.machine(), *sys.version_info[:2])'").split()[:3]
        except (RemoteError, ValueError):
            raise RemoteError(
                f"{self.host}: no working {self.remote_python} on the device; install Python 3.10+ or pass --remote-python"
            ) from None
        if arch not in SUPPORTED_MACHINES:
            raise RemoteError(
                f"{self.host}: {arch} is not supported: ai-edge-litert publishes wheels for 64-bit Linux only "
                f"({', '.join(sorted(set(SUPPORTED_MACHINES.values())))}); install a 64-bit OS, e.g. Raspberry Pi OS (64-bit) on a Pi 3, 4, 5 or Zero 2 W"
            )
        if (int(major), int(minor)) < (3, 10):
            raise RemoteError(
                f"{self.host}: {self.remote_python} is Python {major}.{minor}; edgerep needs 3.10+ (--remote-python picks another interpreter)"
            )
        try:
            self.run(f"{py} -c 'import numpy, tokenizers, ai_edge_litert.interpreter'")
        except RemoteError:
            raise RemoteError(
                f"{self.host}: the runtime's packages (numpy, tokenizers, ai-edge-litert) are missing for {self.remote_python}: "
                "run `pip install edgerep` on the device"
            ) from None
        return {"machine": SUPPORTED_MACHINES[arch], "python": f"{major}.{minor}"}

    def __exit__(self, *exc) -> None:
        try:
            if self.workdir:
                self.run(f"rm -rf {shlex.quote(self.workdir)}")
        finally:
            self._client.close()

    def run(self, command: str, stdin: str | None = None) -> str:
        """Run a shell command on the device; return its stdout.

        Raises:
            RemoteError: non-zero exit status (with the last line of stderr).
        """
        chan_in, chan_out, chan_err = self._client.exec_command(command, timeout=self.timeout_s)
        if stdin is not None:
            chan_in.write(stdin)
            chan_in.channel.shutdown_write()
        out = chan_out.read().decode("utf-8", errors="replace")
        err = chan_err.read().decode("utf-8", errors="replace")
        status = chan_out.channel.recv_exit_status()
        if status != 0:
            last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or [f"exit status {status}"]
            raise RemoteError(f"{self.host}: `{command[:80]}` failed: {last[0][:300]}")
        return out

    def put_package(self, package_dir: Path, remote: str, parts: Sequence[str]) -> None:
        """Copy a package's top-level ``.py`` files and the ``.py`` files of its sub-packages ``parts``."""
        self.run(f"mkdir -p {shlex.quote(remote)}")
        sftp = self._client.open_sftp()
        try:
            for f in sorted(package_dir.glob("*.py")):
                sftp.put(str(f), posixpath.join(remote, f.name))
        finally:
            sftp.close()
        for part in parts:
            self.put_tree(package_dir / part, posixpath.join(remote, part), suffixes=(".py",))

    def put_tree(self, local: Path, remote: str, suffixes: tuple[str, ...] | None = None) -> None:
        """Copy a directory tree (files with ``suffixes`` only, when given) over SFTP."""
        sftp = self._client.open_sftp()
        try:
            for root, dirs, files in os.walk(local):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                rel = Path(root).relative_to(local)
                target = posixpath.join(remote, *rel.parts)
                try:
                    sftp.mkdir(target)
                except OSError:
                    pass  # exists
                for f in files:
                    if suffixes is None or f.endswith(suffixes):
                        sftp.put(str(Path(root) / f), posixpath.join(target, f))
        finally:
            sftp.close()


class SSHCells:
    """:class:`edgerep.measure.bench.CellRunner` on a device: each worker spec runs as
    ``python -m edgerep.measure.bench`` over SSH with the copied bundle's path; the cell keeps
    the local path (``path``) and the device's (``remote_path``). The device applies the
    profile's cores itself; no memory cgroup is made there."""

    def __init__(self, dev: Device, env: str, python: str, remote_bundles: dict[str, str]):
        self.dev, self.env, self.python, self.remote_bundles = dev, env, python, remote_bundles

    def spec_extras(self, profile) -> dict:
        return {}

    def __call__(self, spec: dict) -> dict:
        local = spec["path"]
        remote = self.remote_bundles[local]
        try:
            out = self.dev.run(f"{self.env} {self.python} -m edgerep.measure.bench", stdin=json.dumps({**spec, "path": remote}))
            cell = json.loads(out.strip().splitlines()[-1])
        except RemoteError as exc:
            cell = {
                "kind": spec["kind"],
                "threads": spec["threads"],
                "batch": spec.get("batch", 1),
                "profile": {"profile": spec["profile"]},
                "error": str(exc),
            }
        return {**cell, "path": local, "remote_path": remote}


def bench_remote(
    host: str,
    bundles: Sequence[str | os.PathLike],
    texts: Sequence[str],
    threads: Sequence[int] = (1,),
    profiles: Sequence[str] = ("host",),
    warmup: int = 20,
    repeats: int = 3,
    entities: Sequence[str] | None = None,
    **device_kwargs,
) -> dict:
    """:func:`edgerep.measure.bench.bench` on a device over SSH (the same cell loop, its workers
    run by :class:`SSHCells`); the record's ``machine`` is the device's, with ``ssh_host``.
    ``entities``: one entity name per text, read by entity-conditioned bundles only.

    Raises:
        RemoteError: connection, authentication, or a device without the runtime's packages.
        BundleError: a local bundle is invalid (checked before anything is copied).
        ConfigError: an unknown profile name.
    """
    from edgerep.device.manifest import Manifest
    from edgerep.measure.bench import bench
    from edgerep.registry import parse_profiles

    chosen = parse_profiles(",".join(profiles))
    for b in bundles:
        Manifest.read(b)
    with Device(host, **device_kwargs) as dev:
        assert dev.workdir is not None  # set on connecting
        pkg_root = posixpath.join(dev.workdir, "lib")
        dev.run(f"mkdir -p {shlex.quote(pkg_root)}")
        dev.put_package(PACKAGE_DIR, posixpath.join(pkg_root, "edgerep"), LIGHT_PARTS)
        remote_bundles = {}
        for i, b in enumerate(bundles):
            target = posixpath.join(dev.workdir, f"bundle{i}-{Path(b).name}")
            dev.put_tree(Path(b), target)
            remote_bundles[str(b)] = target
        env = f"PYTHONPATH={shlex.quote(pkg_root)}"
        py = shlex.quote(dev.remote_python)
        machine = json.loads(
            dev.run(f"{env} {py} -c 'import json; from edgerep.measure.records import machine_info; print(json.dumps(machine_info()))'")
        )
        rec = bench(
            [str(b) for b in bundles],
            texts,
            threads,
            chosen,
            warmup=warmup,
            repeats=repeats,
            entities=entities,
            runner=SSHCells(dev, env, py, remote_bundles),
        )
    rec["settings"]["host"] = host
    rec["machine"] = {**machine, "ssh_host": host}
    return rec
