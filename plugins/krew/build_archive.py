"""Builds the krew release archive (kubectl-hubspot-launcher.tar.gz) byte for byte reproducibly and prints
its sha256, the value plugins/krew/hubspot.yaml must carry for every platform.

    python plugins/krew/build_archive.py [OUT_DIR]

The archive holds only the small POSIX-sh launcher (plugins/krew/kubectl-hubspot): the plugin itself is the
Python package. Fixed mtime, owner and mode, and gzip without a timestamp, so the sha256 depends only on the
launcher's bytes (tests/unit/test_kubectl_plugin.py rebuilds it and compares with the manifest).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCHIVE = "kubectl-hubspot-launcher.tar.gz"
FILES = ["kubectl-hubspot"]


def archive_bytes() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in FILES:
            data = (HERE / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o755
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main(argv: list[str]) -> int:
    data = archive_bytes()
    out_dir = Path(argv[0]) if argv else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ARCHIVE).write_bytes(data)
    print(f"{hashlib.sha256(data).hexdigest()}  {out_dir / ARCHIVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
