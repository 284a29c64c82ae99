"""Makes this zoo source importable by name in every new Python process of
the same environment, the way an editable install does.

FiftyOne re-imports a brain run's config class by its dotted path (here
``jina_embeddings_v4.index.backend....``) before any zoo hook runs, and a
zoo source's folder is not on ``sys.path`` in a new process (the App
server is one). So the first ``load_zoo_model`` writes two small files into
the environment's site-packages (the user site when that is not
writable):

- ``jina_embeddings_v4_zoo.pth``: one line, ``import <finder module>``,
  which Python runs at start-up;
- ``_jina_embeddings_v4_zoo_finder.py``: an import finder for the one name
  ``jina_embeddings_v4`` only, pointing at the source folder. It looks in
  ``$FIFTYONE_MODEL_ZOO_DIR`` first when that is set, and it steps aside
  when the folder is gone or another package of that name is installed.

Nothing else on ``sys.path`` changes. :func:`remove` deletes both files
(or delete them by hand); ``FIFTYONE_JINA_V4_NO_SITE_HOOK=1`` stops them
being written.
"""

import logging
import os
import site
import sys
import sysconfig

logger = logging.getLogger(__name__)

DISABLE_ENV = "FIFTYONE_JINA_V4_NO_SITE_HOOK"

_FINDER_TEMPLATE = '''\
"""Finds the FiftyOne zoo source {name!r} (written by its site_hook.py;
delete this file and {pth!r} to undo)."""
import importlib.util
import os
import sys

_NAME = {name!r}
_FOLDER = {folder!r}


class _ZooSourceFinder(object):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != _NAME:
            return None
        folders = [_FOLDER]
        zoo_dir = os.environ.get("FIFTYONE_MODEL_ZOO_DIR")
        if zoo_dir:
            folders.insert(0, os.path.join(zoo_dir, _NAME))
        for folder in folders:
            init = os.path.join(folder, "__init__.py")
            if os.path.isfile(init):
                return importlib.util.spec_from_file_location(
                    fullname, init, submodule_search_locations=[folder]
                )
        return None


if not any(isinstance(f, type) and f.__name__ == "_ZooSourceFinder"
           for f in sys.meta_path):
    # last: an installed package of the same name wins
    sys.meta_path.append(_ZooSourceFinder)
'''


def file_names(package_name):
    """The ``(pth, finder module)`` file names for a package name."""
    return (
        "%s_zoo.pth" % package_name,
        "_%s_zoo_finder.py" % package_name,
    )


def install(package_name, package_dir, site_dir=None):
    """Writes the two files (only when their content changes).

    Args:
        package_name: the module name FiftyOne imports the source as
        package_dir: the source folder
        site_dir (None): where to write; by default this environment's
            site-packages, else the user site

    Returns:
        the folder written to, or None when disabled or not writable
    """
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return None

    site_dir = site_dir or _writable_site_dir()
    if site_dir is None:
        logger.warning(
            "Cannot write to site-packages: new Python processes (and the "
            "App server) will not find the %s zoo source by name; add %s "
            "to PYTHONPATH",
            package_name,
            os.path.dirname(package_dir),
        )
        return None

    pth, finder = file_names(package_name)
    module = finder[: -len(".py")]
    _write_if_changed(os.path.join(site_dir, pth), "import %s\n" % module)
    _write_if_changed(
        os.path.join(site_dir, finder),
        _FINDER_TEMPLATE.format(
            name=package_name,
            folder=os.path.abspath(package_dir),
            pth=pth,
        ),
    )
    return site_dir


def remove(package_name="jina_embeddings_v4", site_dir=None):
    """Deletes the two files from every site folder that has them.

    Returns:
        the paths removed
    """
    removed = []
    folders = [site_dir] if site_dir else _site_dirs()
    for folder in folders:
        for name in file_names(package_name):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)

    return removed


def _site_dirs():
    dirs = [sysconfig.get_paths()["purelib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if d]


def _writable_site_dir():
    for folder in _site_dirs():
        if folder == site.getusersitepackages() and not sys.flags.no_user_site:
            os.makedirs(folder, exist_ok=True)
        if os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder

    return None


def _write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass

    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    logger.info("Wrote %s", path)
