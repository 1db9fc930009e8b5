"""The real node's configuration and the image cache key, checked without starting anything (the node itself
runs in tests/cluster/test_real_node.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hubspot_token_operator.devcluster import images, real_node


def test_placement_targets_the_tainted_real_node_with_host_networking() -> None:
    p = real_node.placement()
    assert p["nodeSelector"] == {"hto.dev/node": "real"}
    assert p["tolerations"] == [{"key": real_node.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    # no pod network on the node: loopback only, so pods share the host's network namespace
    assert p["hostNetwork"] is True and p["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_kubelet_config_has_the_flags_this_host_needs(tmp_path: Path) -> None:
    cfg = real_node.kubelet_config(tmp_path / "c.sock", tmp_path / "logs", 40250, 40248)
    assert cfg["failCgroupV1"] is False  # cgroup v1 hybrid host
    assert cfg["cgroupsPerQOS"] is False and cfg["enforceNodeAllocatable"] == []
    assert cfg["failSwapOn"] is False and cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'c.sock'}"
    assert cfg["address"] == "127.0.0.1" and cfg["healthzBindAddress"] == "127.0.0.1" and cfg["readOnlyPort"] == 0
    assert {"key": real_node.TAINT_KEY, "value": "true", "effect": "NoSchedule"} in cfg["registerWithTaints"]
    assert cfg["podLogsDir"] == str(tmp_path / "logs")


def test_containerd_config_keeps_everything_under_the_state_dir_and_restricts_oom_score(tmp_path: Path) -> None:
    text = real_node.containerd_config(tmp_path, "localhost/hto-pause:abc")
    cfg = tomllib.loads(text)
    assert cfg["version"] == 2
    for path in (cfg["root"], cfg["state"], cfg["grpc"]["address"], cfg["ttrpc"]["address"]):
        assert path.startswith(str(tmp_path)), path
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "localhost/hto-pause:abc"
    assert cri["restrict_oom_score_adj"] is True  # without it runc fails: no CAP_SYS_RESOURCE for -998
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2" and runc["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"].startswith(str(tmp_path))


def test_missing_prerequisites_say_how_to_get_them(monkeypatch) -> None:
    monkeypatch.setattr(real_node.shutil, "which", lambda cmd: None if cmd == "containerd" else f"/usr/bin/{cmd}")
    monkeypatch.setattr(real_node.os, "geteuid", lambda: 1000)
    problems = real_node.missing_prerequisites()
    assert any("root" in p for p in problems)
    assert any("`containerd` not found: apt-get install containerd runc" in p for p in problems)


def _tree(root: Path) -> None:
    (root / "operator" / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM x\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "README.md").write_text("hi\n")
    (root / "operator" / "pkg" / "a.py").write_text("A = 1\n")
    (root / "operator" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")


def test_operator_image_key_follows_what_the_build_reads(tmp_path: Path) -> None:
    _tree(tmp_path)
    names = [str(p.relative_to(tmp_path)) for p in images.build_inputs(tmp_path)]
    assert names == ["Dockerfile", "pyproject.toml", "README.md", "operator/pkg/a.py"]
    key = images.operator_key(tmp_path, "base1")
    assert key == images.operator_key(tmp_path, "base1")  # stable: a second run finds the cached image
    assert images.operator_key(tmp_path, "base2") != key  # a new base rebuilds
    (tmp_path / "operator" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\1")
    assert images.operator_key(tmp_path, "base1") == key  # bytecode is not an input
    (tmp_path / "operator" / "pkg" / "a.py").write_text("A = 2\n")
    assert images.operator_key(tmp_path, "base1") != key  # a source change rebuilds


def test_podman_runs_with_runc_and_no_default_ulimits(tmp_path: Path) -> None:
    env = images.podman_env(tmp_path)
    conf = tomllib.loads(Path(env["CONTAINERS_CONF"]).read_text())
    assert conf["engine"]["runtime"] == "runc"  # crun cannot set rlimits without CAP_SYS_RESOURCE
    assert conf["containers"]["default_ulimits"] == []
