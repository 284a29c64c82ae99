"""The demo (`make demo` runs `jina-v4 demo --auto-tiny`) end to end, in tiny
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


@pytest.mark.slow
def test_auto_tiny_demo_offline_leaves_other_datasets_searchable(zoo_source):
    """`make demo` offline: falls back to the tiny checkpoint in its own zoo
    folder, and a dataset indexed earlier with the user's zoo folder still
    searches in a fresh process; the closing hint works when copied."""
    import fiftyone as fo
    import fiftyone.brain as fob

    from jina_embeddings_v4.testing import documents

    images = os.path.join(os.path.dirname(zoo_source), "earlier-pages")
    records = documents.write_dataset_images(images, n=4, seed=5)
    ds = fo.Dataset("indexed-earlier", overwrite=True, persistent=True)
    ds.add_samples([fo.Sample(filepath=r["filepath"]) for r in records])
    fob.compute_similarity(
        ds,
        model="jinaai/jina-embeddings-v4",
        model_kwargs={"dtype": "float32"},
        backend="jina_multivector",
        brain_key="earlier",
        batch_size=4,
    )

    env = dict(os.environ, HF_HUB_OFFLINE="1")
    demo = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "jina-v4"), "demo",
         "--auto-tiny", "--num-docs", "6"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-4000:]
    assert "fell back to --tiny" in out
    assert "summary" in out
    tiny_zoo = os.path.join(
        os.path.dirname(os.environ["FIFTYONE_MODEL_ZOO_DIR"]),
        "jina-v4-tiny-zoo",
    )
    assert "zoo source   %s" % os.path.join(tiny_zoo, "jina_embeddings_v4") in out

    # the earlier dataset, in a fresh process with the user's zoo folder
    check = subprocess.run(
        [sys.executable, "-c",
         "import fiftyone as fo; ds = fo.load_dataset('indexed-earlier'); "
         "print(len(ds.sort_by_similarity('invoice', k=2, "
         "brain_key='earlier')))"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip().splitlines()[-1] == "2"

    # the closing hint, copied as printed
    lines = out.splitlines()
    hint = lines[lines.index("search it again from a new shell:") + 1].strip()
    again = subprocess.run(
        hint, shell=True, capture_output=True, text=True, timeout=600,
        env=env,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(".png") == 3, again.stdout
