"""Checks on the Dockerfile and .dockerignore that need no Docker engine (there is none on the build machines).

1. Structural rules, parsed from the Dockerfile: pinned multi-stage base, nothing but the venv in the runtime
   stage, numeric non-root USER, exact ENTRYPOINT, no build tools in the runtime stage.
2. `test_image_install_steps_in_a_venv` (SLOW, ~5-20 s): replays the builder stage's steps on this machine -
   build the wheel, install it into a fresh pip-less venv with `pip --python`, run the console script - so a
   packaging mistake (missing subpackage, broken entry point, renamed flag) fails here rather than in a
   `docker build` on CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PACKAGE_DIR = ROOT / "operator" / "hubspot_token_operator"

PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apt|apk|dpkg|pip|git|curl|wget)\b")


# ---- a small Dockerfile parser ------------------------------------------------------------------------


@dataclass
class Instruction:
    cmd: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) line

    def exec_form(self) -> list[str] | None:
        """The JSON ("exec") form's list, or None for the shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


GLOBAL_ARGS: list[Instruction] = []


def parse_dockerfile(text: str) -> list[Stage]:
    """Joins `\\` continuations, drops comments and blank lines, splits into stages at FROM."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment lines inside a continuation are ignored by Docker
            continue
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "Dockerfile ends with a line continuation"
    stages: list[Stage] = []
    GLOBAL_ARGS.clear()
    for line in logical:
        cmd, _, args = line.partition(" ")
        cmd = cmd.upper()
        if cmd == "ARG" and not stages:  # a global build argument, usable in FROM
            GLOBAL_ARGS.append(Instruction(cmd, args.strip()))
            continue
        if cmd == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"instruction before the first FROM: {line}"
            stages[-1].instructions.append(Instruction(cmd, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    named = [s for s in stages if s.name == "builder"]
    assert len(named) == 1, "expected exactly one stage named 'builder'"
    return named[0]


# ---- structure ------------------------------------------------------------------------------------------


def test_multi_stage_with_a_builder(stages: list[Stage], final: Stage) -> None:
    assert len(stages) >= 2
    assert final.name != "builder"


def _global_arg_defaults(stages: list[Stage]) -> dict[str, str]:
    out = {}
    for ins in GLOBAL_ARGS:
        name, _, default = ins.args.partition("=")
        out[name.strip()] = default.strip().strip('"')
    return out


def test_every_base_image_is_the_same_pinned_patch_version(stages: list[Stage]) -> None:
    """Both stages are FROM ${BASE_IMAGE}, whose default is the pinned python slim image users get; the tests
    pass a Debian base built without a registry (devcluster/images.py)."""
    defaults = _global_arg_defaults(stages)
    assert PINNED_BASE.match(defaults.get("BASE_IMAGE", "")), defaults
    for s in stages:
        assert s.image in ("${BASE_IMAGE}", "$BASE_IMAGE"), f"stage {s.name or s.image} is not FROM ${{BASE_IMAGE}}"
    # The venv's bin/python symlinks into the base image's interpreter: builder and runtime must match.
    assert len({s.image for s in stages}) == 1, [s.image for s in stages]


def test_builder_builds_a_wheel_and_installs_it_into_the_venv(builder: Stage) -> None:
    runs = " ".join(i.args for i in builder.all("RUN"))
    # python3, not python: a Debian base has only python3 (the python slim image has both)
    assert re.search(r"\bpython3 -m venv --without-pip /opt/venv\b", runs), runs
    assert "pip wheel --no-deps -w /dist ." in runs, runs
    assert re.search(r"pip (--python /opt/venv/bin/python |-p /opt/venv/bin/python )?install [^&;]*/dist/\*\.whl", runs)
    # Sources copied into the build context must exist (a COPY of a missing path fails the build).
    for copy in builder.all("COPY"):
        srcs = shlex.split(copy.args)[:-1]
        concrete = [s for s in srcs if not s.startswith("--") and not any(c in s for c in "*?[")]
        for src in concrete:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"


def test_runtime_stage_only_copies_the_venv(final: Stage) -> None:
    copies = final.all("COPY") + final.all("ADD")
    assert [c.args for c in copies] == ["--from=builder /opt/venv /opt/venv"]
    assert final.all("RUN") == [], "the runtime stage must not run anything (no package managers, no compilers)"


def test_runtime_stage_has_no_build_tools(final: Stage) -> None:
    for ins in final.instructions:
        if ins.cmd in ("LABEL",):
            continue
        assert not BUILD_TOOLS.search(ins.args), f"build tooling in the runtime stage: {ins.cmd} {ins.args}"


def test_runtime_user_is_numeric_and_not_root(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the runtime stage sets no USER (would run as root)"
    user = users[-1].args
    m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert m, f"USER {user!r} must be numeric uid[:gid] so Kubernetes runAsNonRoot can verify it"
    assert int(m.group(1)) != 0 and (m.group(2) is None or int(m.group(2)) != 0)
    # Nothing after USER may switch back.
    last_user_at = final.instructions.index(users[-1])
    assert all(i.cmd != "USER" for i in final.instructions[last_user_at + 1 :])


def test_chart_runs_as_the_image_user(final: Stage) -> None:
    """The Helm chart's numeric runAsUser/runAsGroup default must match the image's USER."""
    import yaml

    values = yaml.safe_load((ROOT / "charts" / "hubspot-token-operator" / "values.yaml").read_text())
    uid, _, gid = final.all("USER")[-1].args.partition(":")
    for ctx in (values["podSecurityContext"], values["securityContext"]):
        assert str(ctx["runAsUser"]) == uid and str(ctx["runAsGroup"]) == gid


def test_entrypoint_and_environment(final: Stage) -> None:
    entry = final.all("ENTRYPOINT")
    assert len(entry) == 1
    assert entry[0].exec_form() == ["hubspot-token-operator", "run"]
    assert final.all("CMD") == [], "CMD would be appended to the operator's arguments"
    env = " ".join(i.args for i in final.all("ENV"))
    assert re.search(r"(^|\s)PATH=/opt/venv/bin:\$PATH(\s|$)", env), env
    assert re.search(r"(^|\s)PYTHONUNBUFFERED=1(\s|$)", env), env


def test_exposed_ports_match_the_chart_defaults(final: Stage) -> None:
    import yaml

    values = yaml.safe_load((ROOT / "charts" / "hubspot-token-operator" / "values.yaml").read_text())
    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.args.split()}
    assert exposed == {values["metrics"]["port"], values["health"]["port"]}


# ---- .dockerignore ---------------------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**` spans directories, `*` and `?` stay within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            j = pattern.index("]", i)
            out, i = out + pattern[i : j + 1], j + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes, and a pattern matching a directory
    excludes everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        rx = _pattern_regex(pat.lstrip("!").strip("/"))
        if any(rx.match(pre) for pre in prefixes):
            result = not negate
    return result


def test_dockerignore_keeps_junk_out() -> None:
    pats = _ignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "tests/unit/test_chart.py", ".cluster/etcd/member",
                 "operator/hubspot_token_operator/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/x"):
        assert _ignored(path, pats), f"{path} would be sent to the Docker build context"


def test_dockerignore_keeps_what_the_build_needs() -> None:
    pats = _ignore_patterns()
    needed = ["pyproject.toml"] + [
        str(p.relative_to(ROOT)) for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ]
    for path in needed:
        assert not _ignored(path, pats), f"{path} is excluded from the build context but the image needs it"


# ---- the builder's install steps, replayed in a venv ----------------------------------------------------


def _can_build_without_isolation() -> bool:
    """True when this interpreter has a setuptools that builds wheels by itself (>= 70.1) or has `wheel`."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, f"{shlex.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.timeout(120)
def test_image_install_steps_in_a_venv(tmp_path: Path) -> None:
    """SLOW (~5-20 s). Same steps as the Dockerfile's builder stage:

        python -m venv --without-pip /opt/venv
        pip wheel --no-deps -w /dist .
        pip --python /opt/venv/bin/python install /dist/*.whl

    with two differences that keep the test off the network where possible: the wheel is built with
    --no-build-isolation when this venv's setuptools can do it (otherwise pip fetches setuptools/wheel, as
    `docker build` does), and the runtime dependencies come from this project venv (a .pth file) instead of
    being downloaded (`install --no-deps --no-index`).
    """
    pip = [sys.executable, "-m", "pip"]
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)

    build = [*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)]
    if _can_build_without_isolation():
        build.insert(3, "--no-build-isolation")
    _run(build, env=env)
    wheels = list(dist.glob("hubspot_token_operator-*.whl"))
    assert len(wheels) == 1, wheels

    # Every module and the py.typed marker made it into the wheel (a subpackage without __init__.py would not).
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    expected = {
        str(p.relative_to(PACKAGE_DIR.parent))
        for p in PACKAGE_DIR.rglob("*")
        if p.is_file() and p.suffix in (".py", ".typed") and "__pycache__" not in p.parts
    }
    assert expected - names == set(), f"missing from the wheel: {sorted(expected - names)}"

    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    _run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheels[0])],
         env=env)
    # Runtime dependencies: this venv's site-packages, appended after the new venv's own (a plain path line
    # in a .pth does not process that directory's .pth files, so the editable install there stays inactive).
    purelib = Path(
        subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True, check=True).stdout.strip()
    )
    (purelib / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    exe = venv / "bin" / "hubspot-token-operator"
    assert exe.exists(), "the wheel installs no hubspot-token-operator console script"
    from hubspot_token_operator import __version__

    version = _run([str(exe), "--version"], env=env, cwd=tmp_path)
    assert version.stdout.strip() == __version__

    where = _run([str(venv / "bin" / "python"), "-c", "import hubspot_token_operator as m; print(m.__file__)"],
                 env=env, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv)), f"imported the package from {where.stdout.strip()}, not the wheel"

    helptext = _run([str(exe), "run", "--help"], env=env, cwd=tmp_path).stdout
    # The flags the Helm chart passes as container args.
    for flag in ("--all-namespaces", "--namespace"):
        assert flag in helptext, f"`run --help` does not list {flag}"
