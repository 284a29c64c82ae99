"""Every FiftyOne name that fiftyone_context.py reads still exists.

The model reads a few private FiftyOne frames where FiftyOne has no public
hook. If a FiftyOne release renames one, these tests fail (the behaviour
tests in test_zoo.py and test_robustness.py would show only a symptom).
"""

import importlib
import inspect

import pytest

import fiftyone as fo
import fiftyone.utils.torch as fout

from jina_embeddings_v4.fiftyone import context as ctx
from jina_embeddings_v4.fiftyone.zoo import JinaImageGetItem


@pytest.mark.parametrize(
    "module, function, local", ctx.WATCHED, ids=[w[1] for w in ctx.WATCHED]
)
def test_watched_function_exists_with_its_local(module, function, local):
    fn = getattr(importlib.import_module(module), function, None)
    assert inspect.isfunction(fn), "%s.%s is gone" % (module, function)
    if local is not None:
        assert local in fn.__code__.co_varnames, (
            "%s.%s has no local %r any more" % (module, function, local)
        )


def test_torch_dataset_keeps_its_skip_failures_flag():
    dataset = fo.Dataset()
    try:
        dataset.add_sample(fo.Sample(filepath="/nonexistent.png"))
        get_item = JinaImageGetItem()
        for flag in (True, False):
            torch_dataset = dataset.to_torch(get_item, skip_failures=flag)
            assert isinstance(torch_dataset, fout.FiftyOneTorchDataset)
            assert getattr(torch_dataset, ctx.SKIP_FAILURES_ATTR) is flag
    finally:
        dataset.delete()


def test_no_frame_outside_fiftyone():
    # called from a test, no FiftyOne operation is in progress
    assert ctx.pending_load_options() is None
    assert ctx.embeddings_returned_not_stored() is False
    assert ctx.computing_patch_embeddings() is False
    assert ctx.loader_skips_failures() is False
