"""Isolation for ``exec``: Linux namespaces hide the host's processes (and so their environments) and network.

The program runs as ``unshare --pid --fork --mount-proc --net --kill-child -- setpriv --bounding-set=-all
--inh-caps=-all --no-new-privs -- sh -c '"$@"; exit $?' sh ARGV``: in a new PID namespace its ``/proc`` shows
only itself and the ``sh`` that waits for it (PID 1, started with the same minimal environment), so no
``/proc/<pid>/environ`` of the executor is reachable; in a new network namespace it has only a loopback interface
that is down. It holds no capabilities, so it cannot unmount that ``/proc`` to uncover the host's or mount
anything. Killing ``unshare`` kills the whole namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NAMESPACES = ("--pid", "--fork", "--mount-proc", "--net", "--kill-child")
_NO_CAPABILITIES = ("--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")
_WAITER = ("/bin/sh", "-c", '"$@"; exit $?', "sh")  # PID 1 of the namespace reaps the program


@dataclass(frozen=True)
class Isolation:
    """How to start an isolated program (``prefix + argv``), or why this host cannot (``unavailable``)."""

    prefix: tuple[str, ...] = ()
    unavailable: str | None = None


def isolation() -> Isolation:
    """Namespaces are probed once per process (per ``unshare``/``setpriv`` found). Where they are not allowed
    (AWS Lambda, containers without the capability) the probe fails and so does every sealed ``exec``."""
    return _probe(shutil.which("unshare"), shutil.which("setpriv"))


@cache
def _probe(unshare: str | None, setpriv: str | None) -> Isolation:
    if unshare is None or setpriv is None:
        return Isolation(
            unavailable="the 'unshare' and 'setpriv' programs (util-linux) are not both installed"
        )
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    prefix = (unshare, *user, *_NAMESPACES, "--", setpriv, *_NO_CAPABILITIES, "--", *_WAITER)
    try:
        probe = subprocess.run(
            [*prefix, "true"], env={"PATH": MINIMAL_PATH}, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Isolation(unavailable=f"'unshare' could not be run: {exc}")
    if probe.returncode != 0:
        reason = probe.stderr.decode("utf-8", errors="replace").strip() or f"exit status {probe.returncode}"
        return Isolation(unavailable=f"'unshare' cannot create namespaces here: {reason}")
    return Isolation(prefix=prefix)
