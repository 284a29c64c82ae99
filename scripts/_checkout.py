"""Imports this checkout as a package, for the scripts beside this file.

The repository root is the zoo source package (its modules import each
other relatively), so the scripts import it by path under a name of its
own, which cannot clash with a copy FiftyOne installed in its zoo folder.
"""

import importlib.util
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "jina_embeddings_v4_checkout"


def package():
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]

    spec = importlib.util.spec_from_file_location(
        PACKAGE,
        os.path.join(REPO_ROOT, "__init__.py"),
        submodule_search_locations=[REPO_ROOT],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def submodule(name):
    package()
    return importlib.import_module("%s.%s" % (PACKAGE, name))
