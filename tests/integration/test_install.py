"""``pip install --no-deps .`` into a new virtual environment: the package
and its command come from that environment, seen from another folder."""

import os
import subprocess
import sys

import pytest

from jina_embeddings_v4.testing.support import REPO_ROOT

pytestmark = pytest.mark.slow


def test_pip_install_into_a_new_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", REPO_ROOT],
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
