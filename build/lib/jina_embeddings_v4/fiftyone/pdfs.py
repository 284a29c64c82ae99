"""PDFs in, pages out: a FiftyOne dataset of document pages from PDF files.

:func:`add_pdfs` renders each page of each PDF to a PNG (in parallel, with
pypdfium2; see ``io/pdf_render.py``) and adds one sample per page with
``pdf_path``, ``pdf_sha256``, ``page_number`` (1-based), ``num_pages``,
``pdf_title`` and, optionally, the page's own text layer. A PDF's identity
is its content hash: running it again adds nothing twice, a file whose
content changed has its pages replaced, and an interrupted run continues
where it stopped. Pages of one file are browsed together through the
saved view ``pages_by_pdf`` (``group_by("pdf_path",
order_by="page_number")``): a flat dataset keeps every page a sample that
``compute_embeddings`` and searches handle as usual, which FiftyOne's
grouped datasets (one active slice at a time) would not.
"""

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import fiftyone as fo
import fiftyone.core.utils as fou

from ..io import pdf_render

logger = logging.getLogger(__name__)

DEFAULT_TEXT_FIELD = "pdf_text"
GROUPED_VIEW = "pages_by_pdf"
# pages added to the dataset at a time as they are rendered
ADD_BATCH = 32


def add_pdfs(
    dataset,
    pdfs,
    images_dir,
    max_pixels=pdf_render.DEFAULT_MAX_PIXELS,
    dpi=None,
    password=None,
    text_field=DEFAULT_TEXT_FIELD,
    num_workers=None,
    progress=None,
):
    """Adds the pages of PDF files to a dataset.

    Args:
        dataset: a ``fo.Dataset``, or the name of one (created, persistent,
            when missing)
        pdfs: a PDF file or folder, or a list of them (folders are searched
            recursively for ``*.pdf``)
        images_dir: the folder for the page images:
            ``<images_dir>/<first 16 hex of the file's sha256>/page-0001.png``
        max_pixels (602112): pixel budget per page (the model's default
            ``max_pixels``: it would resize anything larger down to this)
        dpi (None): render at this resolution instead, within
            ``max_pixels`` (None there: no budget)
        password (None): the password of encrypted PDFs: a string for all,
            or a dict from path to password
        text_field ("pdf_text"): the field for each page's own text layer,
            or None to skip it
        num_workers (None): rendering processes (default: the CPU count);
            0 renders in this process
        progress (None): FiftyOne's progress bar setting

    Returns:
        a dict: ``added`` (pages added), ``replaced`` (files whose changed
        content replaced their pages), ``skipped`` (files already
        complete), ``failed`` (``(path, page or None, message)``)
    """
    if max_pixels is None and dpi is None:
        raise ValueError("Set max_pixels, dpi, or both")
    pdf_render.import_pdfium()
    files = find_pdfs(pdfs)
    if not files:
        raise NoPdfsFound(_nothing_found_message(pdfs))
    dataset = _get_dataset(dataset)
    _declare_fields(dataset, text_field)
    images_dir = os.path.abspath(os.path.expanduser(images_dir))
    summary = {"added": 0, "replaced": [], "skipped": [], "failed": []}

    tasks = []
    for path in files:
        tasks.extend(
            _plan_file(
                dataset, path, images_dir, max_pixels, dpi,
                _password_for(password, path), text_field, summary,
            )
        )

    if tasks:
        _render_and_add(
            dataset, tasks, text_field, num_workers, progress, summary
        )

    if GROUPED_VIEW not in dataset.list_saved_views() and len(dataset):
        dataset.save_view(
            GROUPED_VIEW,
            dataset.group_by("pdf_path", order_by="page_number"),
            description="The pages of each PDF, in order",
        )
    return summary


class NoPdfsFound(ValueError):
    """No PDF file was found where the user pointed (no dataset is created
    or changed)."""


def _nothing_found_message(pdfs):
    if isinstance(pdfs, (str, os.PathLike)):
        pdfs = [pdfs]
    compressed = []
    for item in pdfs:
        item = os.path.abspath(os.path.expanduser(os.fspath(item)))
        for root, _, names in os.walk(item):
            compressed.extend(
                os.path.join(root, n)
                for n in names
                if n.lower().endswith((".pdf.gz", ".pdf.bz2", ".pdf.xz"))
            )
    message = "No PDF files (*.pdf) in %s" % ", ".join(map(str, pdfs))
    if compressed:
        message += (
            "; found %d compressed ones (e.g. %s): decompress them first, "
            "e.g. gunzip -k FILE.pdf.gz" % (len(compressed), compressed[0])
        )
    return message


def failure_reason(path, error):
    """Why ``path`` failed, without the path itself (messages of the
    renderer often start with it)."""
    reason = str(error)
    if reason.startswith(path):
        reason = reason[len(path) :].lstrip(" :")
    return reason


def _skip(path, error):
    """Logs why ``path`` is skipped, as ``Skipping <path>: <reason>``."""
    logger.warning("Skipping %s: %s", path, failure_reason(path, error))


def find_pdfs(pdfs):
    """The PDF files named by ``pdfs`` (files, or folders searched
    recursively), absolute, in a stable order, each once."""
    if isinstance(pdfs, (str, os.PathLike)):
        pdfs = [pdfs]

    found = []
    for item in pdfs:
        item = os.path.abspath(os.path.expanduser(os.fspath(item)))
        if os.path.isdir(item):
            for root, dirs, names in os.walk(item):
                dirs.sort()
                for name in sorted(names):
                    if name.lower().endswith(".pdf"):
                        found.append(os.path.join(root, name))
        elif os.path.isfile(item):
            found.append(item)
        else:
            raise ValueError("No such PDF file or folder: %s" % item)

    return list(dict.fromkeys(found))


def _declare_fields(dataset, text_field):
    # declared up front: a field whose values are all None (no PDF has a
    # title, say) would otherwise not exist
    fields = {
        "pdf_path": fo.StringField,
        "pdf_sha256": fo.StringField,
        "page_number": fo.IntField,
        "num_pages": fo.IntField,
        "pdf_title": fo.StringField,
    }
    if text_field is not None:
        fields[text_field] = fo.StringField
    schema = dataset.get_field_schema()
    for name, ftype in fields.items():
        if name not in schema:
            dataset.add_sample_field(name, ftype)
        elif not isinstance(schema[name], ftype):
            raise ValueError(
                "Field '%s' of dataset '%s' is a %s, not a %s"
                % (name, dataset.name, type(schema[name]).__name__,
                   ftype.__name__)
            )


def _get_dataset(dataset):
    if isinstance(dataset, fo.Dataset):
        return dataset

    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError("dataset must be a fo.Dataset or a dataset name")
    if fo.dataset_exists(dataset):
        return fo.load_dataset(dataset)

    created = fo.Dataset(dataset)
    created.persistent = True
    return created


def _password_for(password, path):
    if isinstance(password, dict):
        return password.get(path)
    return password


def _plan_file(
    dataset, path, images_dir, max_pixels, dpi, password, text_field, summary
):
    """The render tasks still to do for one file (warns and returns none
    for a file that cannot be read)."""
    try:
        sha = pdf_render.file_sha256(path)
        info = pdf_render.describe(path, password)
    except (OSError, pdf_render.PdfError) as e:
        _skip(path, e)
        summary["failed"].append((path, None, str(e)))
        return []

    if info["num_pages"] == 0:
        message = "%s has no pages" % path
        _skip(path, message)
        summary["failed"].append((path, None, message))
        return []

    if len(dataset):
        # same path, other content: the file changed, its pages go
        stale = dataset.match(
            (fo.ViewField("pdf_path") == path)
            & (fo.ViewField("pdf_sha256") != sha)
        )
        if len(stale):
            logger.info("%s changed: replacing its %d pages", path, len(stale))
            dataset.delete_samples(stale)
            summary["replaced"].append(path)

        same = dataset.match(fo.ViewField("pdf_sha256") == sha)
        done = set(same.values("page_number"))
        paths = set(same.values("pdf_path"))
        if paths and path not in paths:
            logger.info(
                "%s has the content of %s, imported already: skipped",
                path,
                sorted(paths)[0],
            )
            summary["skipped"].append(path)
            return []
    else:
        done = set()

    todo = [p for p in range(1, info["num_pages"] + 1) if p not in done]
    if not todo:
        summary["skipped"].append(path)
        return []

    folder = os.path.join(images_dir, sha[:16])
    return [
        {
            "path": path,
            "sha256": sha,
            "page_number": page,
            "num_pages": info["num_pages"],
            "title": info["title"],
            "out_path": os.path.join(folder, "page-%04d.png" % page),
            "max_pixels": max_pixels,
            "dpi": dpi,
            "password": password,
            "with_text": text_field is not None,
        }
        for page in todo
    ]


def _render_and_add(dataset, tasks, text_field, num_workers, progress, summary):
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    num_workers = min(num_workers, len(tasks))

    pending = []

    def flush():
        if pending:
            dataset.add_samples(pending, progress=False)
            summary["added"] += len(pending)
            pending.clear()

    def handle(task, result, error):
        if error is not None:
            _skip(task["path"], error)
            summary["failed"].append((task["path"], task["page_number"], error))
            return
        pending.append(_sample(task, result, text_field))
        if len(pending) >= ADD_BATCH:
            flush()

    with fou.ProgressBar(total=len(tasks), progress=progress) as pb:
        try:
            if num_workers <= 0:
                for task in tasks:
                    handle(*pdf_render.render_task(task))
                    pb.update()
            else:
                with ProcessPoolExecutor(
                    max_workers=num_workers, mp_context=_context()
                ) as pool:
                    futures = [
                        pool.submit(pdf_render.render_task, t) for t in tasks
                    ]
                    for future in as_completed(futures):
                        handle(*future.result())
                        pb.update()
        finally:
            # what was rendered is kept, so an interrupted run resumes
            flush()


def _context():
    # fork: workers need no import path; elsewhere the default
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _sample(task, result, text_field):
    sample = fo.Sample(
        filepath=task["out_path"],
        pdf_path=task["path"],
        pdf_sha256=task["sha256"],
        page_number=task["page_number"],
        num_pages=task["num_pages"],
        pdf_title=task["title"],
        metadata=fo.ImageMetadata(
            width=result["width"],
            height=result["height"],
            num_channels=3,
            mime_type="image/png",
            size_bytes=os.path.getsize(task["out_path"]),
        ),
    )
    if text_field is not None:
        sample[text_field] = result["text"]
    return sample
