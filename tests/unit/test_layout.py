"""The folder layout shows which code knows FiftyOne: model/, scoring/,
io/ and testing/ never do, and the package imports itself by relative
imports only (never by a path or a second name)."""

import ast
import os

from jina_embeddings_v4.testing.support import REPO_ROOT

FIFTYONE_FREE = ("model", "scoring", "io", "testing")


def _imported_modules(path):
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module or ""


def _python_files(folder):
    for root, _, files in os.walk(os.path.join(REPO_ROOT, folder)):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


def test_fiftyone_free_layers_never_import_fiftyone():
    files = [
        path
        for folder in FIFTYONE_FREE
        for path in _python_files(os.path.join("jina_embeddings_v4", folder))
    ]
    assert len(files) >= 12
    offenders = [
        (os.path.relpath(path, REPO_ROOT), module)
        for path in files
        for module in _imported_modules(path)
        if module.split(".")[0] in ("fiftyone", "eta")
    ]
    assert offenders == []


def test_the_test_sees_an_import_of_fiftyone(tmp_path):
    # the check above must be able to fail
    path = tmp_path / "x.py"
    path.write_text("def f():\n    import fiftyone.core.labels as fol\n")
    assert list(_imported_modules(str(path))) == ["fiftyone.core.labels"]


def test_nothing_reaches_the_package_by_path():
    # tests, benchmarks, scripts and examples import the installed package:
    # no sys.path edits, no file-path imports of our own modules
    offenders = []
    for folder in ("tests", "benchmarks", "scripts", "examples"):
        for path in _python_files(folder):
            with open(path) as f:
                text = f.read()
            for needle in ("sys.path.insert", "sys.path.append",
                           "spec_from_file_location"):
                if needle in text and not path.endswith("test_layout.py"):
                    offenders.append((os.path.relpath(path, REPO_ROOT), needle))
    assert offenders == []
