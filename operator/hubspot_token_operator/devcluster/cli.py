"""`hto-devcluster up|down|env`: the local control plane from a shell (``make cluster-up``)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .assets import find_assets, repo_root
from .cluster import ClusterError, LocalCluster, stop_recorded


def default_state_dir() -> Path:
    return repo_root() / ".cluster"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hto-devcluster", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start etcd, kube-apiserver, controller-manager, scheduler and kwok")
    sub.add_parser("down", help="stop the cluster and remove its state")
    sub.add_parser("bin-dir", help="print the directory holding kubectl and helm")
    args = parser.parse_args(argv)

    if args.cmd == "bin-dir":
        print(":".join(find_assets().bin_dirs))
        return 0
    if args.cmd == "down":
        stopped = stop_recorded(args.state_dir)
        shutil.rmtree(args.state_dir, ignore_errors=True)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0

    if (args.state_dir / "pids.json").exists():
        print(f"a cluster is already recorded in {args.state_dir}; run `make cluster-down` first", file=sys.stderr)
        return 1
    shutil.rmtree(args.state_dir, ignore_errors=True)
    cluster = LocalCluster(state_dir=args.state_dir)
    try:
        cluster.start()
    except ClusterError as e:
        print(f"cluster failed to start: {e}", file=sys.stderr)
        return 1
    bins = ":".join(cluster.assets.bin_dirs)
    print(f"cluster ready in {cluster.started_in:.1f}s; logs in {cluster.logs_dir}")
    print(f"kubectl and helm are in {bins}: export PATH={bins}:$PATH")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
