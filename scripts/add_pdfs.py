#!/usr/bin/env python
"""Adds the pages of PDF files to a FiftyOne dataset, one sample per page.

    python scripts/add_pdfs.py --dataset NAME --images-dir DIR PDF_OR_FOLDER...

The dataset is created (persistent) when missing. Running it again adds
nothing twice; a changed file's pages are replaced; an interrupted run
continues. Python users: ``add_pdfs`` in ``pdfs.py`` (see the README).
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _checkout  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Add the pages of PDF files to a FiftyOne dataset"
    )
    parser.add_argument("pdfs", nargs="+", help="PDF files or folders")
    parser.add_argument("--dataset", required=True, help="dataset name")
    parser.add_argument(
        "--images-dir", required=True, help="folder for the page PNGs"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=602112,
        help="pixel budget per page (default: the model's max_pixels)",
    )
    parser.add_argument(
        "--dpi", type=float, default=None, help="render at this DPI instead"
    )
    parser.add_argument("--password", default=None, help="for encrypted PDFs")
    parser.add_argument(
        "--no-text", action="store_true", help="skip the PDF's text layer"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="rendering processes"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    pdfs = _checkout.submodule("pdfs")
    summary = pdfs.add_pdfs(
        args.dataset,
        args.pdfs,
        args.images_dir,
        max_pixels=args.max_pixels,
        dpi=args.dpi,
        password=args.password,
        text_field=None if args.no_text else pdfs.DEFAULT_TEXT_FIELD,
        num_workers=args.workers,
    )
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
    for path, page, message in summary["failed"]:
        print("  failed: %s" % message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
