#!/usr/bin/env python
"""Adds the pages of PDF files to a FiftyOne dataset, one sample per page.

    python scripts/add_pdfs.py --dataset NAME --images-dir DIR PDF_OR_FOLDER...

The same as ``jina-v4 add-pdfs`` (``--help`` lists the options). Exit
status 1 when a file failed (the summary says which).
"""

import sys

from jina_embeddings_v4.cli import main

if __name__ == "__main__":
    sys.exit(main(["add-pdfs"] + sys.argv[1:]))
