"""A local Kubernetes control plane built from the Go module proxy (see testbin/), for tests and the demo."""

from .assets import Assets, AssetsMissing, find_assets
from .cluster import ClusterError, LocalCluster, stop_recorded

__all__ = ["Assets", "AssetsMissing", "ClusterError", "LocalCluster", "find_assets", "stop_recorded"]
