"""``pip install --no-deps .`` into a new virtual environment: the package
and its command come from that environment, seen from another folder."""

import os
import shutil
import subprocess
import sys

import pytest

from jina_embeddings_v4.testing.support import REPO_ROOT

pytestmark = pytest.mark.slow


def test_pip_install_into_a_new_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # a copy of the checkout's files, as a fresh clone has them: pip builds
    # in the source folder, which must not be the checkout itself
    source = tmp_path / "clone"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    for rel in files:
        path = os.path.join(REPO_ROOT, rel)
        if os.path.isfile(path) and not rel.startswith("tests/"):
            os.makedirs(os.path.dirname(str(source / rel)), exist_ok=True)
            shutil.copy2(path, str(source / rel))
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import jina_embeddings_v4 as p; print(p.__file__)"],
        capture_output=True, text=True, timeout=120, cwd=str(elsewhere),
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    assert os.path.isfile(os.path.join(
        os.path.dirname(where.stdout.strip()), "zoo_source", "root_init.py.in"
    ))

    helped = subprocess.run(
        [str(venv / "bin" / "jina-v4"), "--help"],
        capture_output=True, text=True, timeout=120, cwd=str(elsewhere),
    )
    assert helped.returncode == 0, helped.stderr
    for name in ("add-pdfs", "embed-shard", "demo", "install-tiny"):
        assert name in helped.stdout
