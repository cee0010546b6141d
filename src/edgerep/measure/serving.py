"""Start ``edgerep serve`` in a subprocess for tests and benchmarks (loopback, a free port)."""

from __future__ import annotations

import os
import time


def spawn(bundle: str | os.PathLike, *args: str, prefix: tuple[str, ...] = (), timeout_s: float = 120, stderr_lines: list | None = None):
    """Start ``edgerep serve BUNDLE --port 0 ARGS`` in a child process on loopback and wait
    until it listens (tests, ``benchmarks/serve_load.py``). ``prefix`` runs it under another
    command (``("unshare", "-n")``). Its stderr is drained in a thread after the start line, into
    ``stderr_lines`` when given (every line, the start line included).

    Returns:
        ``(process, url)`` — ``url`` like ``http://127.0.0.1:40123``; terminate the process when done.

    Raises:
        RuntimeError: the server exited or did not listen within ``timeout_s`` (its stderr in the message).
    """
    import re
    import subprocess
    import sys
    import threading

    cmd = [*prefix, sys.executable, "-m", "edgerep", "serve", str(bundle), "--host", "127.0.0.1", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline, seen = time.time() + timeout_s, []
    assert proc.stderr is not None  # stderr=PIPE
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r" on (http://\S+)", line)
        if m:
            if stderr_lines is not None:
                stderr_lines.extend(seen)
            # a full pipe would block the server
            threading.Thread(
                target=(lambda: stderr_lines.extend(proc.stderr or ())) if stderr_lines is not None else proc.stderr.read, daemon=True
            ).start()
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("edgerep serve did not start:\n" + "".join(seen))
