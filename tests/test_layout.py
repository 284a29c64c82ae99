"""The folder layout shows which code knows FiftyOne: core/ never does."""

import ast
import os

from conftest import REPO_ROOT


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


def test_core_never_imports_fiftyone():
    files = list(_python_files("core"))
    assert len(files) >= 6
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
