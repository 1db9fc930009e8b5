"""Background processes of the demo: started in their own sessions (so they outlive ``make demo``),
recorded in pid files, and stopped again only if they are provably ours.

Every process the demo starts, directly or through the devcluster, inherits the environment variable
``HTO_DEMO_STATE=<state dir>``. ``down`` only signals a pid whose ``/proc/<pid>/environ`` carries that exact
marker, so a reused pid or someone else's cluster (tests running from /tmp) is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

MARKER = "HTO_DEMO_STATE"


def marker_entry(state_dir: Path) -> bytes:
    return f"{MARKER}={state_dir}".encode()


def is_ours(pid: int, state_dir: Path) -> bool:
    """The pid is alive (not a zombie) and was started by the demo living in ``state_dir``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker_entry(state_dir) in f.read().split(b"\0")
    except (OSError, IndexError):
        return False


def find_ours(state_dir: Path) -> list[int]:
    """Every live process carrying this demo's marker (except the calling process)."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and is_ours(int(entry), state_dir):
            out.append(int(entry))
    return sorted(out)


def spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Starts ``argv`` in a new session with stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=cwd,
        )


def write_pid(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _signal(pid: int, sig: int) -> None:
    """Signals the process group the pid leads (our children are session leaders), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(pids: list[int], state_dir: Path, grace: float = 15.0) -> list[int]:
    """SIGTERM to each pid that is ours, then SIGKILL to whatever is still alive after ``grace`` seconds."""
    mine = [p for p in pids if is_ours(p, state_dir)]
    for pid in mine:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_ours(p, state_dir) for p in mine):
        time.sleep(0.1)
    for pid in mine:
        if is_ours(pid, state_dir):
            _signal(pid, signal.SIGKILL)
    return mine
