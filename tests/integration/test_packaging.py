"""The zoo source and the installed package: one import name, nothing
written outside FiftyOne's folders, and a source that still loads where
the package is not installed."""

import os
import subprocess
import sys
import textwrap

from conftest import MODEL_NAME


def _run(script, cwd=None, timeout=600):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_model_load_writes_nothing_into_site_folders(zoo_source, tmp_path):
    out = _run(
        """
        import os, site, sysconfig

        def listing():
            folders = [sysconfig.get_paths()["purelib"],
                       site.getusersitepackages()]
            seen = set()
            for folder in folders:
                for root, dirs, files in os.walk(folder):
                    for name in files:
                        path = os.path.join(root, name)
                        seen.add((path, os.stat(path).st_mtime_ns))
            return seen

        before = listing()
        import fiftyone.zoo as foz
        model = foz.load_zoo_model(%r, dtype="float32")
        model.embed_prompt("invoice")
        after = listing()
        changed = sorted(p for p, _ in after - before
                         if not p.endswith(".pyc"))
        print("CHANGED", changed)
        """
        % MODEL_NAME,
        cwd=str(tmp_path),
    )
    assert "CHANGED []" in out, out[-3000:]


def test_the_package_stays_one_object_after_fiftyone_imports_the_source(
    zoo_source, tmp_path
):
    # FiftyOne names the source's module after its folder,
    # jina_embeddings_v4: the package's name
    out = _run(
        """
        import sys
        import jina_embeddings_v4
        import jina_embeddings_v4.index
        first = jina_embeddings_v4
        import fiftyone.zoo as foz
        foz.load_zoo_model(%r, dtype="float32")
        foz.load_zoo_model(%r, dtype="float32", task="code")
        import jina_embeddings_v4.index.backend
        print("SAME", sys.modules["jina_embeddings_v4"] is first)
        print("FILE", sys.modules["jina_embeddings_v4"].__file__)
        """
        % (MODEL_NAME, MODEL_NAME),
        cwd=str(tmp_path),
    )
    assert "SAME True" in out
    import jina_embeddings_v4

    assert "FILE %s" % jina_embeddings_v4.__file__ in out


def test_source_without_installed_package_uses_its_own_copy(
    zoo_source, tmp_path
):
    # as for a user who registered the source by URL only: the package's
    # installed finder is taken away, so only the zoo folder's copy is left
    out = _run(
        """
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path
                            if "editable" not in repr(f).lower()]
        try:
            import jina_embeddings_v4
            print("FOUND", jina_embeddings_v4.__file__)
        except ImportError:
            print("NOT INSTALLED")
        import fiftyone.zoo as foz
        model = foz.load_zoo_model(%r, dtype="float32")
        print("DIM", model.embed_prompt("invoice").shape[-1])
        print("FROM", sys.modules["jina_embeddings_v4"].__file__)
        """
        % MODEL_NAME,
        cwd=str(tmp_path),
    )
    assert "NOT INSTALLED" in out, out[-3000:]
    assert "is not installed in this environment" in out
    assert "pip install %s" % zoo_source in out
    assert "FROM %s" % os.path.join(
        zoo_source, "jina_embeddings_v4", "__init__.py"
    ) in out
    assert "DIM " in out
