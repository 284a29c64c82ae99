"""What FiftyOne operation is calling the model, read where FiftyOne has no
public hook for it.

FiftyOne hands a model images, never the options of the call in progress.
Four behaviours need one of them; each is read here and nowhere else, and
:data:`WATCHED` lists every FiftyOne name these helpers rely on, so that
``tests/test_fiftyone_contract.py`` fails when a FiftyOne release renames
or removes one (instead of the behaviour silently changing).
"""

import sys

import torch

# (module, function, local variable read from its frame or None)
WATCHED = (
    # options of load_zoo_model(), checked before the download hook runs
    ("fiftyone.zoo.models", "load_zoo_model", "kwargs"),
    # compute_embeddings() without a field stacks what the model returns
    (
        "fiftyone.core.models",
        "_compute_image_embeddings_data_loader",
        "embeddings_field",
    ),
    # patches are PIL crops of different sizes: ragged batches there
    ("fiftyone.core.models", "compute_patch_embeddings", None),
)

# the attribute of fiftyone.utils.torch.FiftyOneTorchDataset that says
# whether the data loader skips failures
SKIP_FAILURES_ATTR = "skip_failures"


def pending_load_options():
    """The kwargs of the ``load_zoo_model()`` call in progress, or None."""
    frame = _fiftyone_frame(*WATCHED[0][:2])
    if frame is None:
        return None

    return frame.f_locals.get(WATCHED[0][2]) or {}


def embeddings_returned_not_stored():
    """Whether ``compute_embeddings()`` is running without a field (FiftyOne
    then stacks the returned embeddings, so None cannot stand in for an
    unreadable image)."""
    frame = _fiftyone_frame(*WATCHED[1][:2])
    return frame is not None and frame.f_locals.get(WATCHED[1][2]) is None


def computing_patch_embeddings():
    """Whether ``compute_patch_embeddings()`` is running."""
    return _fiftyone_frame(*WATCHED[2][:2]) is not None


def loader_skips_failures():
    """Whether the FiftyOne data loader calling us skips failures.

    FiftyOne drops a whole batch when one item raises; returning a
    placeholder instead keeps the other samples of the batch, but only
    when the caller asked to skip failures. FiftyOne does not hand that
    flag to the GetItem, so it is read off the torch dataset that is
    calling: through torch's worker info in a loader worker, else from the
    caller's frame.
    """
    import fiftyone.utils.torch as fout

    info = torch.utils.data.get_worker_info()
    if info is not None:
        return bool(getattr(info.dataset, SKIP_FAILURES_ATTR, False))

    frame = _find_frame(
        lambda f: isinstance(
            f.f_locals.get("self"), fout.FiftyOneTorchDataset
        ),
        8,
    )
    if frame is None:
        return False

    return bool(getattr(frame.f_locals["self"], SKIP_FAILURES_ATTR, False))


def _fiftyone_frame(module, function_name, max_depth=24):
    return _find_frame(
        lambda f: f.f_code.co_name == function_name
        and f.f_globals.get("__name__") == module,
        max_depth,
    )


def _find_frame(matches, max_depth):
    # starts above this module's own frames
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back

    for _ in range(max_depth):
        if frame is None:
            return None
        if matches(frame):
            return frame
        frame = frame.f_back

    return None
