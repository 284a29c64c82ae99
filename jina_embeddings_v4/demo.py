"""Quickstart: Jina Embeddings v4 in FiftyOne, end to end.

Lays the ``jina_embeddings_v4`` zoo source out in the model zoo folder
(its ``manifest.json`` and root ``__init__.py``; the code is this installed
package), builds a dataset of document pages (generated, from the hub, or rendered
from your PDFs), then runs the whole workflow: image embeddings, a
similarity index with text search, late-interaction (MaxSim) search on a
multi-vector index with query heatmaps, zero-shot classification (the
default document classes, and your own with and without a text prompt) and
a 2D visualization of the embeddings.

Usage::

    jina-v4 demo                  # the real model (7.6 GB)
    jina-v4 demo --auto-tiny      # real if the hub answers (make demo)
    jina-v4 demo --tiny           # offline pipeline check
    jina-v4 demo --app            # then browse in the App
    jina-v4 demo --pdfs ~/papers  # your PDFs' pages

(``python examples/quickstart.py`` takes the same options.) With
``--tiny`` a tiny checkpoint of random weights stands in for the real
model: every vector, search hit and label it gives is meaningless, and the
run only proves that the pipeline works. Its zoo folder is a dedicated one
(``--zoo-dir``, by default ``jina-v4-tiny-zoo`` beside FiftyOne's model zoo
folder), so the real model's folder and other datasets are never touched.
"""

import argparse
import collections
import contextlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
import traceback

from . import options
from . import zoo_source
from .model.snapshot import missing_files
from .testing.tiny_checkpoint import install_tiny, is_tiny_snapshot

MODEL_NAME = options.MODEL_NAME
# the tiny mode's own zoo folder, beside FiftyOne's model zoo folder
TINY_ZOO_FOLDER = "jina-v4-tiny-zoo"
DATASET_NAME = "jina-v4-quickstart"

EMBEDDINGS_FIELD = "jina_emb"
SIMILARITY_KEY = "jina_sim"
MULTIVECTOR_KEY = "jina_mv"
HEATMAP_FIELD = "query_heatmap"
VISUALIZATION_KEY = "jina_viz"

QUERIES = (
    "invoice from 2024",
    "grocery store receipt",
    "signed service agreement",
    "slide with a bar chart",
)
CLASSES = ["invoice", "receipt", "form", "contract", "presentation slide"]
TEXT_PROMPT = "a scan of a"

HIT_HEADER = ("query", "#", "file", "kind", "year")

# Class name -> the generated pages' ``kind``, where they differ
CLASS_TO_KIND = {"presentation slide": "slide"}

HUB_TIMEOUT_S = 5
HUB_CHECK_LIMIT_S = 30

_TINY_BANNER = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  TINY MODE: a tiny checkpoint of RANDOM weights stands in for the   !!
!!  real model. Every embedding, search hit and label below is         !!
!!  MEANINGLESS; this run only proves that the pipeline works.         !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


class QuickstartError(Exception):
    """A failure with a message that says what to do about it."""


def parse_args(argv=None, prog=None):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Runs Jina Embeddings v4 end to end in FiftyOne: "
        "embeddings, text search, zero-shot labels and a visualization.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--tiny",
        action="store_true",
        default=False,
        help="offline: write a tiny random checkpoint and use it; results "
        "are meaningless and only prove that the pipeline works (default: "
        "off)",
    )
    mode.add_argument(
        "--auto-tiny",
        action="store_true",
        default=False,
        help="use the real model when its weights are local or the Hugging "
        "Face Hub is reachable, else fall back to --tiny (what `make demo` "
        "runs; default: off)",
    )
    parser.add_argument(
        "--dataset",
        metavar="NAME",
        default=None,
        help="a Hugging Face Hub image dataset to load instead of the "
        "generated pages, e.g. Voxel51/document-haystack-10pages "
        "(default: generated invoices, receipts, forms, contracts, slides)",
    )
    parser.add_argument(
        "--pdfs",
        metavar="DIR_OR_FILES",
        nargs="+",
        default=None,
        help="PDF files or folders: one sample per page, rendered at the "
        "model's pixel budget (default: generated pages)",
    )
    parser.add_argument(
        "--max-samples",
        metavar="N",
        type=_positive_int,
        default=None,
        help="use at most N samples (default: all)",
    )
    parser.add_argument(
        "--num-docs",
        metavar="N",
        type=_positive_int,
        default=30,
        help="how many document pages to generate (default: 30)",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=8,
        help="images per forward pass (default: 8)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="e.g. cuda, cuda:1 or cpu (default: CUDA when available)",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights dtype; auto is bfloat16 on CUDA and on CPUs with "
        "native bfloat16, else float32 (default: auto)",
    )
    parser.add_argument(
        "--app",
        action="store_true",
        default=False,
        help="launch the FiftyOne App on the result and wait until Ctrl-C "
        "(default: off)",
    )
    parser.add_argument(
        "--zoo-dir",
        metavar="DIR",
        default=None,
        help="where to install the zoo source (default: FiftyOne's "
        "model_zoo_dir; in tiny mode %s beside it)" % TINY_ZOO_FOLDER,
    )
    return parser.parse_args(argv)


def _positive_int(text):
    from .cli import positive_int

    return positive_int(text)


# -- choosing the mode, before fiftyone is imported ---------------------------


def hub_reachable():
    """Whether the model's hub page answers; returns ``(ok, why_not)``.

    Asked in a child process, so that this process imports huggingface_hub
    only after HF_HUB_OFFLINE is settled, and a hung lookup can be killed.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False, "HF_HUB_OFFLINE is set"

    code = (
        "from huggingface_hub import HfApi\n"
        "HfApi().model_info(%r, timeout=%d)\n" % (MODEL_NAME, HUB_TIMEOUT_S)
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=HUB_CHECK_LIMIT_S,
        )
    except subprocess.TimeoutExpired:
        return False, "no answer within %ds" % HUB_CHECK_LIMIT_S

    if result.returncode == 0:
        return True, None

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    why = lines[-1].strip() if lines else "exit code %d" % result.returncode
    return False, _shorten(why, 160)


def default_zoo_dir():
    """FiftyOne's configured model_zoo_dir, read in a child process."""
    code = "import fiftyone as fo; print(fo.config.model_zoo_dir)"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return None

    lines = result.stdout.strip().splitlines()
    return lines[-1].strip() if result.returncode == 0 and lines else None


def local_weights_complete(zoo_dir):
    """Whether a complete real snapshot is already installed in zoo_dir."""
    if not zoo_dir:
        return False

    path = zoo_source.weights_dir(zoo_dir)
    return not missing_files(path) and not is_tiny_snapshot(path)


def choose_mode(args):
    """Returns ``(mode, note)``: ``"real"`` or ``"tiny"``, and why."""
    if args.tiny:
        return "tiny", "--tiny"

    if not args.auto_tiny:
        return "real", None

    ok, why_not = hub_reachable()
    if ok:
        return "real", "the Hugging Face Hub is reachable"

    zoo_dir = args.zoo_dir or os.environ.get("FIFTYONE_MODEL_ZOO_DIR")
    if zoo_dir is None:
        zoo_dir = default_zoo_dir()

    if local_weights_complete(zoo_dir):
        return "real", "the weights are already in %s (hub: %s)" % (
            zoo_dir,
            why_not,
        )

    return "tiny", (
        "fell back to --tiny: the Hugging Face Hub is unreachable (%s) and "
        "the real weights are not installed" % why_not
    )


def configure_environment(args, mode):
    """Sets what FiftyOne and Hugging Face read at import time.

    Returns:
        the zoo folder, or None for FiftyOne's configured one
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        # FiftyOne's bundled mongod is older than the version it validates
        # against and says so on every connection; it is the one it ships
        os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    zoo_dir = args.zoo_dir
    if mode == "tiny":
        # The tiny model needs no hub; a --dataset from the hub does
        if not args.dataset:
            os.environ["HF_HUB_OFFLINE"] = "1"

        if zoo_dir is None:
            zoo_dir = tiny_zoo_dir()

    if zoo_dir is not None:
        zoo_dir = os.path.abspath(os.path.expanduser(zoo_dir))
        os.environ["FIFTYONE_MODEL_ZOO_DIR"] = zoo_dir

    return zoo_dir


def tiny_zoo_dir():
    """The tiny mode's own zoo folder, beside FiftyOne's model zoo folder:
    a tiny checkpoint there can never shadow the real model's weights."""
    zoo_dir = default_zoo_dir() or os.path.join(
        os.path.expanduser("~"), "fiftyone", "__models__"
    )
    parent = os.path.dirname(os.path.abspath(os.path.expanduser(zoo_dir)))
    return os.path.join(parent, TINY_ZOO_FOLDER)


# -- installing the zoo source ----------------------------------------------


def install_source(zoo_dir, tiny):
    """Lays the zoo source out in ``<zoo_dir>/jina_embeddings_v4``.

    Downloaded weights there are kept. In tiny mode a tiny random checkpoint
    is written as the weights, but never over a real snapshot.

    Returns:
        a short description of what was done
    """
    weights = zoo_source.weights_dir(zoo_dir)
    if tiny:
        try:
            install_tiny(zoo_dir, seed=0)
        except ValueError as e:
            raise QuickstartError(str(e))
        return "source in %s, tiny random checkpoint written" % (
            zoo_source.source_dir(zoo_dir)
        )

    what = "source in %s" % zoo_source.write_source(zoo_dir)
    has_weights = os.path.isdir(weights) and bool(os.listdir(weights))
    if has_weights and is_tiny_snapshot(weights):
        raise QuickstartError(
            "%s holds a tiny random checkpoint, not the real model; remove "
            "that folder, or pass --zoo-dir" % weights
        )
    if not has_weights:
        what += ", weights (7.6 GB) will download on first load"

    return what


# -- the dataset -------------------------------------------------------------


def build_generated_dataset(fo, name, num_docs, images_dir):
    """Generated document pages with ``kind``, ``year``, ``total``..."""
    import shutil

    from .testing import documents

    if os.path.isdir(images_dir):
        shutil.rmtree(images_dir)

    records = documents.write_dataset_images(images_dir, n=num_docs, seed=0)
    dataset = fo.Dataset(name, overwrite=True, persistent=True)
    dataset.add_samples(
        [
            fo.Sample(
                filepath=r["filepath"],
                kind=r["kind"],
                year=r["year"],
                total=r["total"],
                title=r["title"],
            )
            for r in records
        ]
    )
    return dataset


def build_pdf_dataset(fo, name, pdfs):
    """The pages of PDF files, with the source's PDF importer."""
    from .fiftyone.pdfs import add_pdfs

    images_dir = os.path.join(fo.config.default_dataset_dir, name, "pages")
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    summary = add_pdfs(name, pdfs, images_dir)
    for path, page, message in summary["failed"]:
        print("    skipped: %s" % message)
    return fo.load_dataset(name), "%d PDF pages rendered to %s" % (
        summary["added"],
        images_dir,
    )


def load_hub_dataset(repo_id, name, max_samples):
    import fiftyone.utils.huggingface as fouh

    try:
        dataset = fouh.load_from_hub(
            repo_id,
            max_samples=max_samples,
            name=name,
            overwrite=True,
            persistent=True,
        )
    except Exception as e:
        raise QuickstartError(
            "could not load the hub dataset %r: %s: %s"
            % (repo_id, type(e).__name__, _shorten(str(e), 300))
        ) from e

    if dataset.media_type != "image":
        raise QuickstartError(
            "the hub dataset %r holds %s samples; this demo needs images"
            % (repo_id, dataset.media_type)
        )

    return dataset


# -- reporting ---------------------------------------------------------------


class Steps(object):
    """Times the steps and prints one line per finished step."""

    def __init__(self):
        self.timings = collections.OrderedDict()
        self.current = None

    @contextlib.contextmanager
    def step(self, name):
        self.current = name
        note = {}
        start = time.perf_counter()
        yield note
        seconds = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.current = None
        print("%-18s %7.1fs  %s" % (name, seconds, note.get("text", "")))
        sys.stdout.flush()


def print_table(header, rows, align, indent="    "):
    """Prints rows under a header; ``align`` has one "l" or "r" a column."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row)]

    def fmt(cells):
        parts = []
        for cell, width, side in zip(cells, widths, align):
            cell = str(cell)
            parts.append(
                cell.ljust(width) if side == "l" else cell.rjust(width)
            )
        return indent + "  ".join(parts).rstrip()

    print(fmt(header))
    for row in rows:
        print(fmt(row))


def search_rows(dataset, queries, brain_key, k=3):
    has_kind = dataset.has_field("kind")
    has_year = dataset.has_field("year")
    rows = []
    for query in queries:
        view = dataset.sort_by_similarity(query, k=k, brain_key=brain_key)
        rows.extend(_hit_rows(query, view, has_kind, has_year))

    return rows


def _hit_rows(query, view, has_kind, has_year):
    fields = ["filepath"]
    fields += ["kind"] if has_kind else []
    fields += ["year"] if has_year else []
    values = view.values(fields)
    rows = []
    for rank, hit in enumerate(zip(*values), 1):
        hit = dict(zip(fields, hit))
        rows.append(
            (
                query if rank == 1 else "",
                rank,
                os.path.basename(hit["filepath"]),
                hit.get("kind") or "-",
                hit.get("year") or "-",
            )
        )

    return rows


def zero_shot_rows(dataset, fields, has_truth):
    truths = dataset.values("kind") if has_truth else None
    predictions = {f: dataset.values(f + ".label") for f in fields}
    counts = {f: collections.Counter(p) for f, p in predictions.items()}
    truth_counts = collections.Counter(truths or [])

    rows = []
    for name in CLASSES:
        kind = CLASS_TO_KIND.get(name, name)
        row = [name, truth_counts[kind] if has_truth else "-"]
        row += [counts[f][name] for f in fields]
        rows.append(row)

    if any(counts[f][None] for f in fields):
        rows.append(["(no label)", "-"] + [counts[f][None] for f in fields])

    if has_truth:
        row = ["accuracy vs kind", ""]
        for f in fields:
            hits = sum(
                CLASS_TO_KIND.get(p, p) == t
                for p, t in zip(predictions[f], truths)
            )
            row.append("%.0f%%" % (100.0 * hits / max(1, len(truths))))
        rows.append(row)

    return rows


def _shorten(text, limit):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the demo ----------------------------------------------------------------


def run(args, mode, zoo_dir, steps):
    tiny = mode == "tiny"

    import fiftyone as fo
    import fiftyone.brain as fob
    import fiftyone.zoo as foz

    if tiny:
        # Seconds-long steps: progress bars would only add noise
        import transformers

        fo.config.show_progress_bars = False
        transformers.utils.logging.disable_progress_bar()

    zoo_dir = zoo_dir or fo.config.model_zoo_dir
    name = DATASET_NAME + ("-tiny" if tiny else "")
    model_kwargs = {"dtype": args.dtype}
    if args.device:
        model_kwargs["device"] = args.device

    with steps.step("install source") as note:
        note["text"] = install_source(zoo_dir, tiny)

    with steps.step("load model") as note:
        model = foz.load_zoo_model(
            MODEL_NAME, task="retrieval", **model_kwargs
        )
        encoder = model.encoder
        dtype = str(encoder.dtype).replace("torch.", "")
        note["text"] = "task=retrieval on %s, %s" % (encoder.device, dtype)

    with steps.step("dataset") as note:
        if args.pdfs:
            dataset, source = build_pdf_dataset(fo, name, args.pdfs)
        elif args.dataset:
            dataset = load_hub_dataset(args.dataset, name, args.max_samples)
            source = args.dataset
        else:
            num_docs = min(args.num_docs, args.max_samples or args.num_docs)
            images_dir = os.path.join(
                fo.config.default_dataset_dir, name, "images"
            )
            dataset = build_generated_dataset(fo, name, num_docs, images_dir)
            source = "generated pages in %s" % images_dir

        if not len(dataset):
            raise QuickstartError("the dataset %r is empty" % name)

        note["text"] = "%d samples from %s" % (len(dataset), source)

    with steps.step("embeddings") as note:
        dataset.compute_embeddings(
            model,
            embeddings_field=EMBEDDINGS_FIELD,
            batch_size=args.batch_size,
        )
        dims = {
            len(v) for v in dataset.values(EMBEDDINGS_FIELD) if v is not None
        }
        missing = len(dataset.exists(EMBEDDINGS_FIELD, False))
        note["text"] = "%d x %s-d vectors in '%s'%s" % (
            len(dataset) - missing,
            "/".join(str(d) for d in sorted(dims)) or "?",
            EMBEDDINGS_FIELD,
            ", %d unreadable images skipped" % missing if missing else "",
        )

    with steps.step("similarity index") as note:
        fob.compute_similarity(
            dataset,
            model=MODEL_NAME,
            model_kwargs=dict(model_kwargs, task="retrieval"),
            embeddings=EMBEDDINGS_FIELD,
            brain_key=SIMILARITY_KEY,
        )
        note["text"] = "brain key '%s'" % SIMILARITY_KEY

    with steps.step("text search") as note:
        rows = search_rows(dataset, QUERIES, SIMILARITY_KEY)
        note["text"] = "%d queries, top 3 each:" % len(QUERIES)

    print_table(HIT_HEADER, rows, "lrllr")

    with steps.step("multi-vector index") as note:
        fob.compute_similarity(
            dataset,
            model=MODEL_NAME,
            model_kwargs=dict(model_kwargs, task="retrieval"),
            backend="jina_multivector",
            brain_key=MULTIVECTOR_KEY,
            batch_size=args.batch_size,
            heatmap_field=HEATMAP_FIELD,
            heatmap_k=3,
        )
        note["text"] = "jina_multivector (LanceDB), brain key '%s'" % (
            MULTIVECTOR_KEY
        )

    with steps.step("MaxSim search") as note:
        rows = search_rows(dataset, QUERIES[:2], MULTIVECTOR_KEY)
        note["text"] = (
            "late interaction over the single-vector top k * 4; heatmaps "
            "of the last query's top 3 in '%s':" % HEATMAP_FIELD
        )

    print_table(HIT_HEADER, rows, "lrllr")

    with steps.step("zero-shot default") as note:
        dataset.apply_model(
            model, label_field="doc_type", batch_size=args.batch_size
        )
        top = collections.Counter(dataset.values("doc_type.label"))
        note["text"] = "16 RVL-CDIP document types -> 'doc_type': %s" % (
            ", ".join("%s %d" % kv for kv in top.most_common(3))
        )

    with steps.step("zero-shot") as note:
        zs_model = foz.load_zoo_model(
            MODEL_NAME, task="text-matching", classes=CLASSES, **model_kwargs
        )
        dataset.apply_model(
            zs_model, label_field="zs_type", batch_size=args.batch_size
        )
        note["text"] = "%d classes, task=text-matching -> 'zs_type'" % len(
            CLASSES
        )

    with steps.step("zero-shot prompt") as note:
        zs_model.text_prompt = TEXT_PROMPT
        dataset.apply_model(
            zs_model,
            label_field="zs_type_prompted",
            batch_size=args.batch_size,
        )
        note["text"] = "text_prompt=%r -> 'zs_type_prompted'" % TEXT_PROMPT

    has_truth = not args.dataset and dataset.has_field("kind")
    print_table(
        ("class", "truth", "zs_type", "zs_type_prompted"),
        zero_shot_rows(dataset, ["zs_type", "zs_type_prompted"], has_truth),
        "lrrr",
    )

    with steps.step("visualization") as note:
        note["text"] = compute_visualization(fob, dataset)

    return dataset, dtype, str(encoder.device)


def compute_visualization(fob, dataset):
    """UMAP of the embeddings, or PCA when umap-learn is missing."""
    kwargs = dict(
        embeddings=EMBEDDINGS_FIELD,
        brain_key=VISUALIZATION_KEY,
        num_dims=2,
    )
    if len(dataset) < 5:
        fob.compute_visualization(dataset, method="pca", **kwargs)
        return "PCA (UMAP needs at least 5 samples) -> '%s'" % (
            VISUALIZATION_KEY
        )

    try:
        # UMAP's default of 15 neighbours needs more than 15 samples
        fob.compute_visualization(
            dataset,
            method="umap",
            verbose=False,
            num_neighbors=min(15, len(dataset) - 1),
            **kwargs,
        )
        return "UMAP -> brain key '%s'" % VISUALIZATION_KEY
    except ImportError as e:
        if VISUALIZATION_KEY in dataset.list_brain_runs():
            dataset.delete_brain_run(VISUALIZATION_KEY)
        fob.compute_visualization(dataset, method="pca", **kwargs)
        return "PCA, since UMAP is unavailable (%s) -> '%s'" % (
            _shorten(e, 60),
            VISUALIZATION_KEY,
        )


def print_summary(args, mode, dataset, dtype, device, steps, zoo_dir):
    if mode == "tiny":
        how = ["tiny", "RANDOM weights: results are meaningless"]
        if args.auto_tiny:
            how.append("--auto-tiny fell back")
    else:
        how = ["real", MODEL_NAME]

    timings = ["%s %.1f" % (name, t) for name, t in steps.timings.items()]
    timings.append("total %.1f" % sum(steps.timings.values()))
    fields = [
        ("mode", how),
        ("device", [device]),
        ("dtype", [dtype]),
        ("samples", [str(len(dataset))]),
        ("timings (s)", timings),
        ("dataset", ["%r (persistent)" % dataset.name]),
        ("load it with", ["fo.load_dataset(%r)" % dataset.name]),
        ("zoo source", [zoo_source.source_dir(zoo_dir)]),
    ]

    print("\nsummary")
    for key, items in fields:
        print_wrapped(key, items)

    print("\nsearch it again from a new shell:")
    print("    " + search_again_command(dataset.name, zoo_dir, mode))


def search_again_command(dataset_name, zoo_dir, mode):
    """A shell command that searches the demo's multi-vector index in a
    new process (the tiny mode names its own zoo folder)."""
    # double quotes inside, so that the shell's single quotes stay plain
    code = (
        "import fiftyone as fo; "
        "ds = fo.load_dataset(%s); "
        "print(ds.sort_by_similarity(%s, k=3, brain_key=%s)"
        '.values("filepath"))'
        % tuple(
            json.dumps(x) for x in (dataset_name, QUERIES[0], MULTIVECTOR_KEY)
        )
    )
    command = "%s -c %s" % (shlex.quote(sys.executable), shlex.quote(code))
    if mode == "tiny":
        command = "FIFTYONE_MODEL_ZOO_DIR=%s %s" % (
            shlex.quote(zoo_dir),
            command,
        )
    return command


def print_wrapped(key, items, width=79):
    """Prints ``key`` and its items, wrapping lines between items only."""
    line = "    %-12s " % key
    indent, fresh = " " * len(line), True
    for i, item in enumerate(items):
        text = item + (", " if i < len(items) - 1 else "")
        if not fresh and len(line) + len(text.rstrip()) > width:
            print(line.rstrip())
            line = indent
        line += text
        fresh = False

    print(line.rstrip())


def main(argv=None, prog=None):
    args = parse_args(argv, prog=prog)
    mode, mode_note = choose_mode(args)
    zoo_dir = configure_environment(args, mode)

    print("Jina Embeddings v4 quickstart: %s model" % mode)
    if mode_note and mode_note != "--tiny":
        print(textwrap.fill(mode_note, width=79, break_on_hyphens=False))
    if mode == "tiny":
        print(_TINY_BANNER)
    sys.stdout.flush()

    steps = Steps()
    try:
        dataset, dtype, device = run(args, mode, zoo_dir, steps)
        import fiftyone as fo

        print_summary(
            args,
            mode,
            dataset,
            dtype,
            device,
            steps,
            zoo_dir or fo.config.model_zoo_dir,
        )
        if mode == "tiny":
            print(_TINY_BANNER)

        if args.app:
            session = fo.launch_app(dataset)
            print("App open on %r; press Ctrl-C to quit" % dataset.name)
            sys.stdout.flush()
            try:
                session.wait()
            except KeyboardInterrupt:
                pass

        return 0
    except KeyboardInterrupt:
        print("quickstart: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # Errors that explain themselves need no traceback
        if type(e).__name__ not in ("QuickstartError", "SnapshotError"):
            traceback.print_exc()

        if isinstance(e, QuickstartError):
            why = str(e)
        else:
            why = "%s: %s" % (type(e).__name__, e)

        print(
            "\nquickstart: FAILED during '%s': %s"
            % (steps.current or "setup", why),
            file=sys.stderr,
        )
        if mode == "real":
            print(
                "quickstart: to check the pipeline without the real model "
                "(e.g. offline), run with --auto-tiny or --tiny",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
