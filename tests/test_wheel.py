"""The wheel a clean checkout builds: only `otmetka/...` inside (nothing under a bare name
such as `daemon`, which python-daemon owns), the typing marker and the templates, static
files and fonts, and it installs into an empty environment next to python-daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Downloaded once by `make install-test`, so this test runs offline.
WHEELS = ROOT / "build" / "wheels"
FOLDERS = ("daemon", "site_builder", "db")


def _run(*args: str | Path, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _tracked() -> list[str]:
    """The files a commit of the working tree would hold: tracked and new, not ignored."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The wheel built from a copy of the checkout, and the checkout's files."""
    source = tmp_path_factory.mktemp("checkout")
    files = _tracked()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    python = sys.executable
    _run(
        python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        out,
        source,
        cwd=source,
    )
    (wheel,) = out.glob("otmetka-*.whl")
    return wheel, files


def test_the_wheel_holds_only_the_otmetka_namespace(built: tuple[Path, list[str]]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"otmetka"}
    assert not tops & set(FOLDERS)


def test_the_wheel_ships_every_module_and_data_file(built: tuple[Path, list[str]]) -> None:
    wheel, files = built
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    for folder in FOLDERS:
        assert f"otmetka/{folder}/py.typed" in inside
    wanted = [
        name
        for name in files
        if name.split("/")[0] in FOLDERS
        and (
            name.endswith(".py")
            or name.startswith(("site_builder/templates/", "site_builder/fonts/"))
            or (name.startswith("site_builder/static/") and not name.endswith(".md"))
        )
    ]
    assert any(name.endswith(".j2") for name in wanted)
    assert any(name.startswith("site_builder/fonts/") for name in wanted)
    assert any(name.startswith("site_builder/static/") for name in wanted)
    missing = [name for name in wanted if f"otmetka/{name}" not in inside]
    assert not missing, f"not in the wheel: {missing}"


def test_it_installs_next_to_python_daemon(built: tuple[Path, list[str]], tmp_path: Path) -> None:
    theirs = sorted(WHEELS.glob("python_daemon-*.whl"))
    assert theirs, f"python-daemon's wheel is not in {WHEELS}: run `make install-test`"
    wheel, _ = built
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-index",
        "--no-deps",
        wheel,
        theirs[-1],
        cwd=tmp_path,
    )
    probe = (
        "import importlib.util, daemon\n"
        "print(hasattr(daemon, 'DaemonContext'))\n"
        "print(importlib.util.find_spec('otmetka.daemon.cli').origin)\n"
    )
    has_context, origin = _run(python, "-c", probe, cwd=tmp_path).split()
    assert has_context == "True"  # `import daemon` is python-daemon's
    assert Path(origin).resolve().is_relative_to(venv.resolve())
