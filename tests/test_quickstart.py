"""The demo (`make demo` runs examples/quickstart.py) end to end, in tiny
mode, on PDF pages: every step runs, and what it prints is free of
warnings."""

import os
import re
import subprocess
import sys

import pytest
import pikepdf

from conftest import REPO_ROOT


@pytest.mark.slow
def test_quickstart_on_pdfs_runs_every_step_quietly(tmp_path):
    pdf = pikepdf.Pdf.new()
    for _ in range(6):
        pdf.add_blank_page(page_size=(612, 792))
    pdf.save(tmp_path / "blank.pdf")
    # (with FIFTYONE_DATABASE_URI set, as here, the quickstart leaves
    # database validation to the environment: conftest turns it off)
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "examples", "quickstart.py"),
            "--tiny",
            "--pdfs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for step in (
        "load model",
        "dataset",
        "embeddings",
        "text search",
        "multi-vector index",
        "MaxSim search",
        "zero-shot default",
        "zero-shot prompt",
        "visualization",
    ):
        assert re.search(r"^%s\s+\d" % re.escape(step), out, re.M), step
    assert "6 samples from 6 PDF pages" in out
    assert not re.search(r"warn", out, re.I), out[-4000:]
