"""Every shell and Python block of the README runs, in its offline form:
the tiny checkpoint where the real weights would be, Debian's PDFs where
the user's would be, this checkout where the git URL would be.

Each block is matched by a rule below, which says how it runs here (or,
for the few that cannot, why not). A block with no rule fails the test, so
the README cannot grow a command that nobody runs.
"""

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest

from jina_embeddings_v4.testing.support import (
    REPO_ROOT,
    debian_pdfs,
    start_private_mongod,
    system_deps_required,
)

pytestmark = pytest.mark.slow

README = os.path.join(REPO_ROOT, "README.md")
PLACEHOLDER_URL = "https://github.com/<owner>/<repo>"
BIN = os.path.dirname(sys.executable)


def readme_blocks():
    """``(language, first line number, text)`` of each fenced block."""
    with open(README) as f:
        text = f.read()
    for m in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        yield m.group(1), text[: m.start()].count("\n") + 1, m.group(2)


def _first_command(block):
    for line in block.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    return ""


def _demo_line(line):
    # the real model's lines run with the tiny checkpoint, on fewer pages
    if "--dataset " in line:
        return None  # a Hugging Face Hub dataset: the hub is unreachable
    if "--app" in line:
        return None  # waits for Ctrl-C; the App runs in test_app_browser
    line = line.split("#")[0].strip()
    if "--tiny" not in line:
        line += " --tiny"
    return line + " --num-docs 6"


def _pip_line(line):
    line = line.split("#")[0].strip()
    line = line.replace("git+" + PLACEHOLDER_URL, "git+file://" + REPO_ROOT)
    return line.replace("pip install", "pip install --dry-run --no-deps", 1)


# first command of a block -> how it runs here: ("shell" | "python", text),
# or ("skip", why)
def offline_form(language, block):
    first = _first_command(block)
    if language == "bibtex":
        return "skip", "a citation"
    if language == "text":
        return "skip", "a synopsis, run in its concrete forms below"
    if first.startswith("pip install"):
        lines = [_pip_line(first)]
        clone = re.search(r"from a clone:\s+(pip install \S+)", block)
        lines.append("cd %s && %s" % (REPO_ROOT, _pip_line(clone.group(1))))
        return "shell", "\n".join(lines)
    if first.startswith("make demo"):
        return "skip", "CI runs make demo and make test themselves (.ci/run)"
    if first.startswith("jina-v4 demo"):
        lines = [_demo_line(x) for x in block.splitlines() if x.strip()]
        return "shell", "\n".join(x for x in lines if x)
    if first.startswith("jina-v4 install-tiny"):
        return "shell", block
    if first.startswith("import fiftyone as fo"):
        # the source is in the zoo folder already (install-tiny above);
        # registering by URL is tested against an archive served here
        code = block.replace(
            'foz.register_zoo_model_source("%s")' % PLACEHOLDER_URL, "pass"
        )
        return "python", code.replace('"/path/to/', '"~/')
    if first.startswith("jina-v4 add-pdfs"):
        return "shell", block
    if first.startswith("from jina_embeddings_v4.fiftyone.pdfs import"):
        return "python", block
    if first.startswith("for i in $(seq 0 7)"):
        # two CPU shards of eight GPUs' share
        return "shell", (
            block.replace("seq 0 7", "seq 0 1")
            .replace("/8", "/2")
            .replace("--device cuda:$i", "--device cpu")
        )
    if first.startswith("#SBATCH") or "sbatch" in block:
        # one task of the array, on this machine's database
        body = "\n".join(
            x for x in block.splitlines() if not x.startswith("export ")
        )
        return "shell", "SLURM_ARRAY_TASK_ID=0\n" + body
    return None


def test_every_block_has_an_offline_form():
    missing = [
        (line, _first_command(block))
        for language, line, block in readme_blocks()
        if offline_form(language, block) is None
    ]
    assert missing == [], "README blocks without an offline form here"


def test_readme_blocks_run_offline(tmp_path):
    pdfs = debian_pdfs()
    if len(pdfs) < 2:
        if system_deps_required():
            pytest.fail("Debian's PDFs are missing")
        pytest.skip("Debian's PDFs are missing (scripts/setup_test_system.sh)")

    home = tmp_path / "home"
    for folder in ("pdfs", "papers", "pages"):
        (home / folder).mkdir(parents=True)
    shutil.copy(pdfs[0], home / "pdfs")
    shutil.copy(pdfs[0], home / "papers")
    shutil.copy(pdfs[1], home / "other.pdf")
    env_file = tmp_path / "env.sh"
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        PATH=BIN + os.pathsep + env.get("PATH", ""),
        HF_HUB_OFFLINE="1",
        # a database of this test's own: the README's names are fixed
        FIFTYONE_DATABASE_URI=start_private_mongod(str(tmp_path / "db")),
        FIFTYONE_DATABASE_DIR=str(tmp_path / "db"),
    )
    env.pop("FIFTYONE_MODEL_ZOO_DIR", None)
    env_file.write_text("")

    ran = []
    for language, line, block in readme_blocks():
        kind, text = offline_form(language, block)
        if kind == "skip":
            continue
        if kind == "python":
            script = tmp_path / ("block_%d.py" % line)
            script.write_text(text)
            text = "%s %s" % (sys.executable, script)
        if "for i in $(seq" in text:
            _make_docs_dataset(env, env_file, home)
        proc = subprocess.run(
            ["bash", "-c", "set -e\nsource %s\n%s\nexport -p > %s"
             % (env_file, text, env_file)],
            cwd=str(home),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, "README line %d:\n%s\n%s" % (
            line, text, out[-4000:]
        )
        ran.append((line, out))

    outputs = "\n".join(out for _, out in ran)
    assert len(ran) >= 8
    assert outputs.count("RANDOM weights") >= 2  # the demo lines ran
    assert "would install jina-embeddings-v4-fiftyone" in outputs.lower()
    assert "shard 0/2: embedded" in outputs and "shard 1/2: embedded" in outputs
    assert "shard 0/32: embedded" in outputs
    # the index blocks: both shards wrote into it, the Slurm task too
    assert outputs.count("pages into index 'jina_mv'") == 3


def _make_docs_dataset(env, env_file, home):
    # the sharding blocks embed a dataset named "docs"
    code = (
        "import fiftyone as fo\n"
        "if not fo.dataset_exists('docs'):\n"
        "    src = fo.load_dataset('papers')\n"
        "    ds = fo.Dataset('docs', persistent=True)\n"
        "    ds.add_samples([fo.Sample(filepath=p) for p in "
        "src.limit(6).values('filepath')])"
    )
    proc = subprocess.run(
        ["bash", "-c", "source %s\n%s -c %s" % (
            env_file, sys.executable, _quote(code))],
        cwd=str(home), env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_register_by_url_then_load(tmp_path):
    """The Quick start's registration line, its placeholder resolved to an
    archive of this checkout served on localhost (FiftyOne downloads a
    GitHub URL as an archive too)."""
    archive = tmp_path / "serve" / "jina-v4.zip"
    archive.parent.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    with zipfile.ZipFile(archive, "w") as z:
        for rel in files:
            path = os.path.join(REPO_ROOT, rel)
            if os.path.isfile(path) and not rel.startswith("tests/data/"):
                z.write(path, os.path.join("jina-v4", rel))

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa
        *a, directory=str(archive.parent), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/jina-v4.zip" % server.server_address[1]
    zoo = tmp_path / "zoo"
    code = """
import os, shutil
import fiftyone.zoo as foz
foz.register_zoo_model_source(%r)
src = os.path.join(%r, "jina_embeddings_v4")
print("MANIFEST", os.path.isfile(os.path.join(src, "manifest.json")))
from jina_embeddings_v4.testing.support import TINY_SNAPSHOT
shutil.copytree(TINY_SNAPSHOT, os.path.join(src, "jina-embeddings-v4"))
model = foz.load_zoo_model("jinaai/jina-embeddings-v4", dtype="float32")
print("DIM", model.embed_prompt("invoice from 2024").shape[-1])
""" % (url, str(zoo))
    env = dict(os.environ, FIFTYONE_MODEL_ZOO_DIR=str(zoo))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True,
            text=True, timeout=600, cwd=str(tmp_path),
        )
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MANIFEST True" in proc.stdout
    assert re.search(r"DIM \d+", proc.stdout)
