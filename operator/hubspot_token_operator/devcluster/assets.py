"""Where the control-plane binaries come from.

Order of precedence mirrors controller-runtime's envtest, so a user with envtest assets can reuse them:
``TEST_ASSET_<NAME>`` (one file) beats ``KUBEBUILDER_ASSETS`` (a directory) beats our own cache, which
``testbin/build.sh`` fills from the Go module proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "kubelet",  # the real node (real_node.py)
    "pause",  # its pod sandbox image (images.py)
)
STAGES_FILE = "kwok-stages.yaml"


class AssetsMissing(RuntimeError):
    """A binary the local cluster needs could not be found or built."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def build_script() -> Path:
    return repo_root() / "testbin" / "build.sh"


@dataclass(frozen=True)
class Assets:
    paths: dict[str, Path]
    stages: Path

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    @property
    def bin_dirs(self) -> list[str]:
        """Directories to put first on PATH so that `kubectl` and `helm` resolve to ours."""
        seen: list[str] = []
        for p in self.paths.values():
            d = str(p.parent)
            if d not in seen:
                seen.append(d)
        return seen


def _env_name(binary: str) -> str:
    return "TEST_ASSET_" + binary.upper().replace("-", "_")


def _cache_dir(build: bool) -> Path | None:
    """Runs testbin/build.sh (a no-op when the cache is warm) and returns the cache directory."""
    script = build_script()
    if not script.exists():
        return None
    if not build:
        return None
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise AssetsMissing(f"testbin/build.sh failed with exit code {proc.returncode}; see its output above")
    return Path(proc.stdout.strip().splitlines()[-1])


def find_assets(build: bool = True) -> Assets:
    """Resolves every binary; builds missing ones into the cache when `build` is true."""
    found: dict[str, Path] = {}
    kb = os.environ.get("KUBEBUILDER_ASSETS")
    for name in BINARIES:
        override = os.environ.get(_env_name(name))
        if override:
            found[name] = Path(override)
        elif kb and (Path(kb) / name).exists():
            found[name] = Path(kb) / name
    missing = [b for b in BINARIES if b not in found]
    stages: Path | None = None
    if kb and (Path(kb) / STAGES_FILE).exists():
        stages = Path(kb) / STAGES_FILE
    if missing or stages is None:
        cache = _cache_dir(build)
        if cache is not None:
            for name in missing:
                if (cache / name).exists():
                    found[name] = cache / name
            if stages is None and (cache / STAGES_FILE).exists():
                stages = cache / STAGES_FILE
    for name in BINARIES:
        if name not in found:
            which = shutil.which(name)
            if which and name in ("helm",):
                found[name] = Path(which)
    still = [b for b in BINARIES if b not in found or not found[b].exists()]
    if still or stages is None:
        raise AssetsMissing(
            "control-plane binaries not found: "
            + ", ".join(still or [STAGES_FILE])
            + ". Run `bash testbin/build.sh` (or set KUBEBUILDER_ASSETS / TEST_ASSET_*)."
        )
    return Assets(paths=found, stages=stages)
