"""FiftyOne remote zoo model source: Jina Embeddings v4.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

FiftyOne runs this file on every zoo call. It hands FiftyOne the four zoo
hooks of the installed package ``jina_embeddings_v4`` (``pip install`` of
this folder or of its git URL; see the README), and nothing else.

FiftyOne imports this file under the name of its folder in the model zoo,
``jina_embeddings_v4``: the package's own name. So that ``import
jina_embeddings_v4`` keeps meaning the package in this process, this file
puts the package back in ``sys.modules`` as soon as it runs. Where the
package is not installed, the copy beside this file serves this process
(with a warning: other processes, such as the App's server, need it
installed).
"""

import importlib
import importlib.util
import logging
import os
import sys

_PACKAGE = "jina_embeddings_v4"
_HERE = os.path.dirname(os.path.abspath(__file__))

logger = logging.getLogger(__name__)


def _package():
    hooks = sys.modules.get(_PACKAGE + ".hooks")
    if hooks is not None:
        # imported earlier in this process: the very same package object
        sys.modules[_PACKAGE] = hooks.PACKAGE
        return hooks.PACKAGE

    if sys.modules.get(_PACKAGE) is sys.modules.get(__name__):
        del sys.modules[_PACKAGE]

    try:
        return importlib.import_module(_PACKAGE)
    except ImportError as e:
        if e.name != _PACKAGE:
            raise

    return _import_copy_beside_this_file()


def _import_copy_beside_this_file():
    folder = os.path.join(_HERE, _PACKAGE)
    init = os.path.join(folder, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError(
            "The Python package %r is not installed in this environment "
            "and %s has no copy of it; install it with: pip install %s"
            % (_PACKAGE, _HERE, _HERE)
        )

    logger.warning(
        "The package %r is not installed in this environment: this process "
        "uses the copy in %s, but other processes (the App's server "
        "loading a jina_multivector index, data loader workers started "
        "with spawn) cannot. Install it once with: pip install %s",
        _PACKAGE,
        folder,
        _HERE,
    )
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, init, submodule_search_locations=[folder]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    spec.loader.exec_module(module)
    return module


_hooks = _package().hooks

download_model = _hooks.download_model
load_model = _hooks.load_model
resolve_input = _hooks.resolve_input
parse_parameters = _hooks.parse_parameters
