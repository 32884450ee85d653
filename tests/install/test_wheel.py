"""A new user's install: the wheel `python -m build` makes, installed with pip into a fresh
virtualenv from wheels only (no compiler, no system packages), then `moldau dev`, and the
README's example tests run by pytest in a project of their own (no Docker, no Java)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from tests.helpers import readme_test_files

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the built wheel, pytest and aiokafka installed from wheels only;
    returns its bin dir."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # a copy, so the build leaves nothing in the work tree
    shutil.copytree(ROOT / "moldau", source / "moldau", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist", source)
    wheels = list((tmp / "dist").glob("*.whl"))
    assert [w.name for w in wheels] == ["moldau-0.1.0-py3-none-any.whl"], "one pure-Python wheel"
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)  # no system site-packages: nothing of this machine's
    bin_dir = env_dir / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--only-binary=:all:", wheels[0], "pytest", "aiokafka")
    return bin_dir


def test_moldau_dev_runs_and_says_nothing_of_an_unclean_shutdown(fresh_install: Path, tmp_path: Path) -> None:
    assert "moldau 0.1.0" in run(fresh_install / "moldau", "--version")
    started = time.monotonic()
    proc = subprocess.Popen([fresh_install / "moldau", "dev", "--port", "0", "--data-dir", tmp_path / "data"],
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "ready on" in line:
                break
        ready_s = time.monotonic() - started
        assert re.search(r"Moldau broker 0 ready on 127\.0\.0\.1:\d+", "".join(lines)), "".join(lines)
        print(f"moldau dev ready {ready_s:.2f} s after the command started (interpreter start included)")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "shut down cleanly" in output
    assert "not shut down cleanly" not in output, "a new data dir is no unclean shutdown"


def test_the_readme_tests_pass_in_a_new_project(fresh_install: Path, tmp_path: Path) -> None:
    for name, text in readme_test_files().items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    result = subprocess.run([fresh_install / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout
