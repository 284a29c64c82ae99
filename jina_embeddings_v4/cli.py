"""The ``jina-v4`` command (also ``python -m jina_embeddings_v4``).

    jina-v4 add-pdfs --dataset NAME --images-dir DIR PDF_OR_FOLDER...
    jina-v4 embed-shard --dataset NAME (--field FIELD | --brain-key KEY) --shard I/N
    jina-v4 demo [--tiny | --auto-tiny] ...
    jina-v4 install-tiny [--zoo-dir DIR]

Each subcommand is a thin shell over a function a Python user can call
too. Exit status: 0 on success, 1 when some work failed (the summary says
which), 2 for bad arguments or a problem the message names.
"""

import argparse
import logging
import os
import sys

from . import options

PROG = "jina-v4"


def main(argv=None):
    """Runs the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:
        # the demo parses its own options (jina-v4 demo --help)
        from .demo import main as demo_main

        return demo_main(argv[1:], prog="%s demo" % PROG)

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except (ValueError, OSError) as e:
        # errors that explain themselves: one line, no traceback
        print("%s %s: error: %s" % (PROG, args.command, e), file=sys.stderr)
        return 2


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Jina Embeddings v4 for FiftyOne: import PDFs, embed "
        "shards of a dataset, run the demo, install the tiny checkpoint",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_pdfs_arguments(
        sub.add_parser(
            "add-pdfs",
            help="add the pages of PDF files to a dataset",
            description="Add the pages of PDF files to a FiftyOne dataset, "
            "one sample per page (resumable; nothing is added twice)",
        )
    )
    embed_shard_arguments(
        sub.add_parser(
            "embed-shard",
            help="embed one shard of a dataset (one process per device)",
            description="Embed one shard of a FiftyOne dataset with Jina v4",
        )
    )
    sub.add_parser(
        "demo",
        help="the quickstart: pages, embeddings, search, labels, map",
        description="Run the quickstart; its options follow (see "
        "`jina-v4 demo --help`)",
        add_help=False,
    )
    install_tiny_arguments(
        sub.add_parser(
            "install-tiny",
            help="install a tiny random checkpoint as the model's weights",
            description="Install the zoo source with a generated tiny random "
            "checkpoint as the model's weights, for offline pipeline checks "
            "(its results are meaningless)",
        )
    )
    return parser


# -- add-pdfs ----------------------------------------------------------------


def add_pdfs_arguments(parser):
    parser.add_argument("pdfs", nargs="+", help="PDF files or folders")
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument(
        "--images-dir", required=True, help="folder for the page PNGs"
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=options.DEFAULT_MAX_PIXELS,
        help="pixel budget per page (default: the model's max_pixels, "
        "%(default)s)",
    )
    parser.add_argument(
        "--dpi", type=float, default=None, help="render at this DPI instead"
    )
    parser.add_argument("--password", default=None, help="for encrypted PDFs")
    parser.add_argument(
        "--no-text", action="store_true", help="skip the PDF's text layer"
    )
    parser.add_argument(
        "--no-words",
        action="store_true",
        help="skip the text layer's word boxes (field pdf_words), from "
        "which searches draw where a query's words matched",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="rendering processes (default: the CPU count; 0: this one)",
    )
    parser.add_argument(
        "--remove-duplicate-pages",
        action="store_true",
        help="first remove the extra copies of pages that are in the dataset "
        "more than once (left by concurrent runs of older versions; the "
        "oldest copy of each stays)",
    )
    parser.set_defaults(run=run_add_pdfs)


def run_add_pdfs(args):
    from .fiftyone import pdfs

    summary = pdfs.add_pdfs(
        args.dataset,
        args.pdfs,
        args.images_dir,
        max_pixels=args.max_pixels,
        dpi=args.dpi,
        password=args.password,
        text_field=None if args.no_text else pdfs.DEFAULT_TEXT_FIELD,
        words_field=None if args.no_words else pdfs.DEFAULT_WORDS_FIELD,
        num_workers=args.workers,
        remove_duplicates=args.remove_duplicate_pages,
    )
    if summary["duplicates_removed"]:
        print("%d duplicate pages removed" % summary["duplicates_removed"])
    print(
        "%d pages added to '%s'; %d files already complete, %d replaced, "
        "%d failures"
        % (
            summary["added"],
            args.dataset,
            len(summary["skipped"]),
            len(summary["replaced"]),
            len(summary["failed"]),
        )
    )
    if summary["added_elsewhere"]:
        print(
            "  %d pages rendered here had been added by another run meanwhile"
            % summary["added_elsewhere"]
        )
    for path, page, message in summary["failed"]:
        where = path if page is None else "%s page %d" % (path, page)
        print("  failed: %s: %s" % (where, pdfs.failure_reason(path, message)))

    return 1 if summary["failed"] else 0


# -- embed-shard -------------------------------------------------------------


def embed_shard_arguments(parser):
    parser.add_argument("--dataset", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--field", help="embeddings field (single vectors)")
    where.add_argument(
        "--brain-key",
        help="a jina_multivector index (created with compute_similarity(..., "
        "embeddings=False)): single and multi vectors go into its store, "
        "with the index's own model options",
    )
    parser.add_argument(
        "--shard", required=True, help="I/N: this process's shard (from 0)"
    )
    parser.add_argument(
        "--task",
        default=None,
        choices=options.TASKS,
        help="default: %s (with --brain-key: the index's)" % options.DEFAULT_TASK,
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("auto", "float32", "bfloat16", "float16"),
        help="default: auto (with --brain-key: the index's)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument(
        "--device", default=None, help="e.g. cuda:0 (default: CUDA if any)"
    )
    parser.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="data loader workers",
    )
    # the rest of the vector space (options.VECTOR_SPACE_DEFAULTS): every
    # shard of a field must give the same; left out, the model's default
    space = parser.add_argument_group(
        "vector space",
        "options that change the vectors: the field records those of its "
        "first shard and refuses shards with others (default: the model's)",
    )
    space.add_argument("--vector-mode", choices=options.VECTOR_MODES)
    space.add_argument(
        "--pooling-strategy", choices=options.POOLING_STRATEGIES
    )
    space.add_argument(
        "--truncate-dim",
        type=positive_int,
        help="Matryoshka dimension of single vectors (%s)"
        % ", ".join(str(d) for d in options.MATRYOSHKA_DIMS),
    )
    space.add_argument("--query-prompt-name", choices=options.PROMPT_NAMES)
    space.add_argument("--passage-prompt-name", choices=options.PROMPT_NAMES)
    space.add_argument("--max-pixels", type=positive_int)
    space.add_argument("--min-pixels", type=positive_int)
    parser.set_defaults(run=run_embed_shard)


def run_embed_shard(args):
    from .fiftyone import sharding

    shard, num_shards = sharding.parse_shard(args.shard)
    kwargs = {}
    for name in ("task", "dtype", "device"):
        if getattr(args, name):
            kwargs[name] = getattr(args, name)
    for name in options.VECTOR_SPACE_DEFAULTS:
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    if args.brain_key is not None:
        return _run_index_shard(args, shard, num_shards, kwargs)

    kwargs.setdefault("task", options.DEFAULT_TASK)
    kwargs.setdefault("dtype", "auto")
    try:
        n = sharding.embed_shard(
            args.dataset,
            args.field,
            shard,
            num_shards,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            **kwargs,
        )
    except sharding.FieldSpaceMismatch as e:
        # the fix spelled as this command's options
        raise ValueError(e.describe(_space_flag, sep=" "))
    print(
        "shard %d/%d: embedded %d samples into '%s'"
        % (shard, num_shards, n, args.field)
    )
    return 0


def _run_index_shard(args, shard, num_shards, kwargs):
    from .index import shards

    try:
        n = shards.embed_index_shard(
            args.dataset,
            args.brain_key,
            shard,
            num_shards,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            **kwargs,
        )
    except shards.IndexSpaceMismatch as e:
        # only a flag given can differ from the index: the fix, as flags
        raise ValueError(
            "the index '%s' was built with %s=%r, not %r: leave %s out (the "
            "shard takes the index's options) or pass %s"
            % (
                e.brain_key,
                e.name,
                e.recorded,
                e.requested,
                "--" + e.name.replace("_", "-"),
                _space_flag(e.name, e.recorded),
            )
        )
    print(
        "shard %d/%d: embedded %d pages into index '%s'"
        % (shard, num_shards, n, args.brain_key)
    )
    return 0


def _space_flag(name, value):
    """``--task code``, or ``without --truncate-dim`` for an option at
    its default of None."""
    flag = "--" + name.replace("_", "-")
    if value is None:
        return "without %s" % flag
    return "%s %s" % (flag, value)


# -- install-tiny ------------------------------------------------------------


def install_tiny_arguments(parser):
    parser.add_argument(
        "--zoo-dir",
        default=None,
        help="the model zoo folder (default: FiftyOne's model_zoo_dir, "
        "i.e. $FIFTYONE_MODEL_ZOO_DIR or ~/fiftyone/__models__)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights"
    )
    parser.set_defaults(run=run_install_tiny)


def run_install_tiny(args):
    zoo_dir = args.zoo_dir
    if zoo_dir is None:
        import fiftyone as fo

        zoo_dir = fo.config.model_zoo_dir

    from .testing.tiny_checkpoint import install_tiny

    weights = install_tiny(os.path.abspath(os.path.expanduser(zoo_dir)), args.seed)
    print("tiny random checkpoint installed in %s" % weights)
    print(
        "its vectors are meaningless: use it to check pipelines offline. "
        "In a new shell: export FIFTYONE_MODEL_ZOO_DIR=%s"
        % os.path.abspath(os.path.expanduser(zoo_dir))
    )
    return 0


# -- argument types ----------------------------------------------------------


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        return options.check_positive_int("value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a positive integer, got %r" % text
        )


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            "expected an integer >= 0, got %r" % text
        )
    return value


if __name__ == "__main__":
    sys.exit(main())
