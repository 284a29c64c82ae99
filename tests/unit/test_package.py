"""The package's own facts: one definition each, the zoo source's files
equal to what the package writes, the command line's contract."""

import json
import os
import re
import subprocess
import sys

import pytest

import jina_embeddings_v4
from jina_embeddings_v4 import cli, options, zoo_source
from jina_embeddings_v4.testing.support import REPO_ROOT


def test_positive_int_check_by_hand():
    assert options.check_positive_int("k", 3) == 3
    assert options.check_positive_int("k", None, allow_none=True) is None
    for bad in (0, -2, True, 1.5, "3", None):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            options.check_positive_int("k", bad)
    with pytest.raises(ValueError, match="oversample must be >= 1"):
        options.check_positive_int("oversample", 0, allow_none=True)


def test_vector_space_from_kwargs_and_from_config():
    space = options.vector_space({"task": "code"})
    assert space["task"] == "code"
    assert space["vector_mode"] == "single"
    assert set(space) == set(options.VECTOR_SPACE_DEFAULTS)

    class Config(object):
        task = "code"
        truncate_dim = 128

    assert options.vector_space(Config())["truncate_dim"] == 128
    # a record from an older release lacks keys: they count as defaults
    old = {"task": "code"}
    assert options.space_differences(space, old) == []
    assert options.space_differences(space, {"task": "retrieval"}) == ["task"]


def test_root_zoo_files_are_what_the_package_writes():
    with open(os.path.join(REPO_ROOT, "manifest.json")) as f:
        assert f.read() == zoo_source.manifest_text()
    with open(os.path.join(REPO_ROOT, "__init__.py")) as f:
        assert f.read() == zoo_source.root_init_text()
    manifest = json.loads(zoo_source.manifest_text())
    assert manifest["name"] == zoo_source.SOURCE_NAME
    model = manifest["models"][0]
    assert model["base_name"] == options.MODEL_NAME
    assert model["base_filename"] == zoo_source.WEIGHTS_FOLDER


def test_write_source_lays_out_the_zoo_files(tmp_path):
    dest = zoo_source.write_source(str(tmp_path))
    assert sorted(os.listdir(dest)) == ["__init__.py", "manifest.json"]
    assert dest == zoo_source.source_dir(str(tmp_path))


def _requirements(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                names.append(line)
    return names


def test_pyproject_dependencies_equal_requirements_files():
    with open(os.path.join(REPO_ROOT, "pyproject.toml")) as f:
        text = f.read()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    deps = re.findall(r'"([^"]+)"', block.group(1))
    assert deps == _requirements(os.path.join(REPO_ROOT, "requirements.txt"))
    extras = re.search(r"^extras = \[(.*?)^\]", text, re.S | re.M)
    assert re.findall(r'"([^"]+)"', extras.group(1)) == _requirements(
        os.path.join(REPO_ROOT, "requirements-extras.txt")
    )


def test_version_is_the_packages():
    assert re.fullmatch(r"\d+\.\d+\.\d+", jina_embeddings_v4.__version__)


def test_cli_lists_its_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "jina_embeddings_v4", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for name in ("add-pdfs", "embed-shard", "demo", "install-tiny"):
        assert name in out.stdout


def test_cli_rejects_bad_numbers_before_any_work(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["embed-shard", "--dataset", "d", "--field", "f",
                  "--shard", "0/1", "--batch-size", "0"])
    assert e.value.code == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_importing_the_package_imports_no_heavy_library():
    code = (
        "import sys, jina_embeddings_v4, jina_embeddings_v4.cli;"
        "heavy = [m for m in ('torch', 'fiftyone', 'transformers') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
