"""The images the real node runs, built here with no registry and cached by content.

- **base**: Debian bookworm (minbase) with python3, python3-venv and ca-certificates, made by mmdebstrap from
  the Debian mirror and imported into podman. The Dockerfile's ``BASE_IMAGE`` build argument swaps it in for
  the python slim image users get (which would need a registry).
- **operator**: the repository's Dockerfile, built by podman (with runc: crun cannot set rlimits here) on
  that base. Its tag is a hash of everything the build reads (Dockerfile, pyproject.toml, README*, LICENSE*,
  operator/ and the base's key), so a second run finds it and builds nothing.
- **pause**: containerd's pod sandbox, our one-file image (testbin/pause, built by testbin/build.sh).

Each ends as an archive under ``~/.cache/hubspot-token-operator/images/`` that ``ctr images import`` loads
into the node's containerd. The host's CA bundle is mounted into the build (the package registries are
reached through a proxy with its own CA); it never lands in the image (only /opt/venv leaves the builder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .assets import repo_root

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_RECIPE = f"mmdebstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {BASE_SUITE} (v1)"
OPERATOR_REPO = "localhost/hubspot-token-operator"
BASE_REPO = "localhost/hto-base"
PAUSE_REPO = "localhost/hto-pause"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the command and ends with its output."""


@dataclass(frozen=True)
class Images:
    operator: str  # image reference, e.g. localhost/hubspot-token-operator:dev-0123456789ab
    pause: str
    archives: tuple[Path, ...]  # to load into containerd, in this order
    built: tuple[str, ...]  # what this call had to build (empty on a warm cache)
    seconds: float

    @property
    def operator_tag(self) -> str:
        return self.operator.rsplit(":", 1)[1]


def cache_dir() -> Path:
    root = os.environ.get("HTO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hubspot-token-operator")
    return Path(root) / "images"


def _key(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:12]


def build_inputs(root: Path) -> list[Path]:
    """Every file the Dockerfile's build reads (its COPY sources), sorted: the operator image's content key."""
    files = [root / "Dockerfile", root / "pyproject.toml"]
    files += sorted(p for p in root.glob("README*") if p.is_file())
    files += sorted(p for p in root.glob("LICENSE*") if p.is_file())
    files += sorted(p for p in (root / "operator").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
                    and ".egg-info" not in str(p))
    return files


def operator_key(root: Path, base_key: str) -> str:
    parts: list[bytes | str] = [base_key]
    for f in build_inputs(root):
        parts += [str(f.relative_to(root)), f.read_bytes()]
    return _key(*parts)


def podman_env(cache: Path) -> dict[str, str]:
    """podman with runc and no default ulimits (crun and rlimits both fail without CAP_SYS_RESOURCE)."""
    conf = cache / "containers.conf"
    text = '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'
    if not conf.exists() or conf.read_text() != text:
        cache.mkdir(parents=True, exist_ok=True)
        conf.write_text(text)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def _run(argv: list[str], env: dict[str, str], timeout: float, log=None) -> str:
    if log:
        log(f"[images] {' '.join(argv[:3])} ...")
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{' '.join(argv)} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()[-3000:]
        raise ImageBuildError(f"`{' '.join(argv)}` failed with exit code {proc.returncode}:\n{out}")
    return proc.stdout


def _exists(ref: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=env, capture_output=True).returncode == 0


def missing_tools(need_base: bool) -> list[str]:
    tools = ["podman"] + (["mmdebstrap"] if need_base else [])
    return [t for t in tools if shutil.which(t) is None]


def ensure_images(pause_binary: Path, root: Path | None = None, log=None) -> Images:
    """Builds (or finds in the cache) base, operator and pause images; returns their archives."""
    t0 = time.monotonic()
    root = root or repo_root()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    env = podman_env(cache)
    built: list[str] = []
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    base_key = _key(BASE_RECIPE)
    base_ref = f"{BASE_REPO}:{base_key}"
    op_key = operator_key(root, base_key)
    op_ref, op_tar = f"{OPERATOR_REPO}:dev-{op_key}", cache / f"operator-{op_key}.tar"
    pause_key = _key(pause_binary.read_bytes())
    pause_ref, pause_tar = f"{PAUSE_REPO}:{pause_key}", cache / f"pause-{pause_key}.tar"

    missing = missing_tools(need_base=not op_tar.exists())
    if missing and not (op_tar.exists() and pause_tar.exists()):
        raise ImageBuildError(f"not found: {', '.join(missing)}; apt-get install podman runc mmdebstrap "
                              "(as .ci/run does)")

    if not op_tar.exists():
        if not _exists(op_ref, env):
            if not _exists(base_ref, env):
                base_tar = cache / f"base-{base_key}.tar"
                if not base_tar.exists():
                    tmp = cache / f"base-{base_key}.partial.tar"  # mmdebstrap picks its format by the name
                    _run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), BASE_SUITE,
                          str(tmp)], env, 900, log)
                    tmp.rename(base_tar)
                    built.append("base")
                _run(["podman", "import", "--change", 'CMD ["/bin/sh"]', str(base_tar), base_ref], env, 300, log)
            argv = ["podman", "build", "--network=host", "--build-arg", f"BASE_IMAGE={base_ref}", "-t", op_ref,
                    "-f", str(root / "Dockerfile")]
            if HOST_CA.exists():  # the registries' proxy CA, for pip inside the build; not kept in the image
                pip_conf = cache / "pip.conf"
                pip_conf.write_text(f"[global]\ncert = {HOST_CA}\n")
                argv += ["-v", f"{HOST_CA}:{HOST_CA}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
            _run(argv + [str(root)], env, 1200, log)
            built.append("operator")
        tmp = op_tar.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _run(["podman", "save", "--format", "docker-archive", "-o", str(tmp), op_ref], env, 300, log)
        tmp.rename(op_tar)
        _prune(cache, "operator-", op_tar, env, OPERATOR_REPO, f"dev-{op_key}")

    if not pause_tar.exists():
        ctx = cache / "pause-ctx"
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir()
        shutil.copy2(pause_binary, ctx / "pause")
        layer = cache / "pause-layer.tar"
        subprocess.run(["tar", "-C", str(ctx), "-cf", str(layer), "pause"], check=True)
        _run(["podman", "import", "--change", 'ENTRYPOINT ["/pause"]', str(layer), pause_ref], env, 120, log)
        tmp = pause_tar.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _run(["podman", "save", "--format", "oci-archive", "-o", str(tmp), pause_ref], env, 120, log)
        tmp.rename(pause_tar)
        shutil.rmtree(ctx, ignore_errors=True)
        layer.unlink(missing_ok=True)
        built.append("pause")

    return Images(operator=op_ref, pause=pause_ref, archives=(pause_tar, op_tar), built=tuple(built),
                  seconds=time.monotonic() - t0)


def _prune(cache: Path, prefix: str, keep: Path, env: dict[str, str], repo: str, keep_tag: str) -> None:
    """Older operator images go (each is ~450 MB): their archives and their podman tags."""
    for old in cache.glob(f"{prefix}*.tar"):
        if old != keep:
            old.unlink(missing_ok=True)
    out = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", repo], env=env,
                         capture_output=True, text=True)
    for ref in out.stdout.split():
        if ref.startswith(repo + ":dev-") and not ref.endswith(":" + keep_tag):
            subprocess.run(["podman", "rmi", "-f", ref], env=env, capture_output=True)
