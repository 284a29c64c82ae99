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

Integrity under concurrency and kills:

- a page is ``(pdf_sha256, page_number)``, and a unique index of the
  dataset on that pair (:data:`PAGE_INDEX`) lets MongoDB refuse a second
  copy: two runs at once into one dataset add each page once, the pages
  one run rendered and the other added first counted as
  ``added_elsewhere``;
- render workers are fresh interpreters that import the renderer only
  (they hold none of this process's database sockets, and a script that
  calls :func:`add_pdfs` needs no ``__main__`` guard) and die with this
  process, even when it is killed with SIGKILL (see
  ``pdf_render.render_in_processes``);
- a worker killed by the system (the OOM killer, say) costs no page: the
  page it was rendering is rendered again in a new worker, and fails only
  if it kills that one too.
"""

import collections
import contextlib
import logging
import os

import fiftyone as fo
import fiftyone.core.utils as fou
from pymongo.errors import BulkWriteError, OperationFailure

from ..io import pdf_render

logger = logging.getLogger(__name__)

DEFAULT_TEXT_FIELD = "pdf_text"
DEFAULT_WORDS_FIELD = "pdf_words"
GROUPED_VIEW = "pages_by_pdf"
# pages added to the dataset at a time as they are rendered
ADD_BATCH = 32
# the fields that identify a page, and the unique index over them; samples
# that are no PDF page (no pdf_sha256) are outside it
PAGE_KEY = [("pdf_sha256", 1), ("page_number", 1)]
PAGE_INDEX = "pdf_sha256_1_page_number_1"
PAGE_INDEX_FILTER = {"pdf_sha256": {"$type": "string"}}
DUPLICATE_KEY = 11000
# what a message lists of many duplicate pages
DUPLICATES_NAMED = 5


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
    remove_duplicates=False,
    words_field=DEFAULT_WORDS_FIELD,
):
    """Adds the pages of PDF files to a dataset.

    Safe to run in several processes at once on one dataset: each page is
    added once (see the module's notes). The dataset is reloaded first,
    to see what other processes did to it: save edits of its own
    attributes (``info``, say) before.

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
        remove_duplicates (False): first remove the extra copies of
            pages that are in the dataset more than once (see
            :func:`remove_duplicate_pages`); without it such a dataset
            raises :class:`DuplicatePages`
        words_field ("pdf_words"): the field for each page's words and
            their boxes on the page image, stored compactly (read them
            with :func:`jina_embeddings_v4.io.pdf_words.unpack`), from
            which searches draw where a query's words matched
            (``text_matches_field`` of the ``jina_multivector`` index);
            None to skip it

    Returns:
        a dict: ``added`` (pages added), ``added_elsewhere`` (pages this
        run rendered that another run had added meanwhile), ``replaced``
        (files whose changed content replaced their pages), ``skipped``
        (files already complete), ``failed`` (``(path, page or None,
        message)``), ``duplicates_removed`` (extra copies removed)
    """
    if max_pixels is None and dpi is None:
        raise ValueError("Set max_pixels, dpi, or both")
    if dpi is not None and not dpi > 0:
        raise ValueError("dpi must be positive, got %r" % (dpi,))
    pdf_render.import_pdfium()
    files = find_pdfs(pdfs)
    if not files:
        raise NoPdfsFound(_nothing_found_message(pdfs))
    dataset = _get_dataset(dataset)
    # what other processes did to it since this one loaded it (fields,
    # media type, saved views): FiftyOne keeps one object per dataset
    dataset.reload()
    if words_field is not None and words_field == text_field:
        raise ValueError(
            "text_field and words_field are both %r: give them different "
            "fields" % (words_field,)
        )
    _declare_fields(dataset, text_field, words_field)
    summary = {
        "added": 0,
        "added_elsewhere": 0,
        "replaced": [],
        "skipped": [],
        "failed": [],
        "duplicates_removed": 0,
    }
    if remove_duplicates:
        summary["duplicates_removed"] = remove_duplicate_pages(dataset)
    ensure_page_index(dataset)
    images_dir = os.path.abspath(os.path.expanduser(images_dir))

    tasks = []
    for path in files:
        tasks.extend(
            _plan_file(
                dataset, path, images_dir, max_pixels, dpi,
                _password_for(password, path), text_field, words_field,
                summary,
            )
        )

    if tasks:
        _render_and_add(
            dataset, tasks, text_field, words_field, num_workers, progress,
            summary,
        )

    _save_grouped_view(dataset)
    return summary


def _save_grouped_view(dataset):
    # another run may have saved it since this one loaded the dataset
    dataset.reload()
    if GROUPED_VIEW in dataset.list_saved_views() or not len(dataset):
        return
    try:
        dataset.save_view(
            GROUPED_VIEW,
            dataset.group_by("pdf_path", order_by="page_number"),
            description="The pages of each PDF, in order",
        )
    except ValueError:
        # saved by another run in between
        if GROUPED_VIEW not in dataset.list_saved_views():
            raise


class DuplicatePages(ValueError):
    """The dataset holds some page (``pdf_sha256``, ``page_number``) more
    than once, which keeps its unique page index from being built.

    Attributes:
        duplicates: ``{(pdf_path, page_number): number of samples}``
    """

    def __init__(self, dataset_name, duplicates):
        self.duplicates = duplicates
        named = sorted(duplicates)[:DUPLICATES_NAMED]
        more = len(duplicates) - len(named)
        super().__init__(
            "%d pages are in the dataset twice or more (%s%s), as runs of "
            "older versions at the same time left them: dataset '%s' cannot "
            "get the unique page index that keeps this from happening again. "
            "Remove the extra copies (the oldest sample of each page stays) "
            "with `jina-v4 add-pdfs --remove-duplicate-pages ...` or "
            "`remove_duplicate_pages(dataset)` of "
            "jina_embeddings_v4.fiftyone.pdfs, then import again"
            % (
                len(duplicates),
                ", ".join("%s page %d" % key for key in named),
                ", and %d more" % more if more else "",
                dataset_name,
            )
        )


def ensure_page_index(dataset):
    """Gives the dataset its unique index on ``(pdf_sha256,
    page_number)`` (:data:`PAGE_INDEX`), if it has none yet.

    Raises:
        DuplicatePages: when pages already in the dataset more than once
            keep the index from being built (it names them and the fix)
    """
    if PAGE_INDEX in dataset.list_indexes():
        if dataset.get_index_information()[PAGE_INDEX].get("unique"):
            return
    try:
        dataset.create_index(
            PAGE_KEY,
            unique=True,
            partialFilterExpression=PAGE_INDEX_FILTER,
        )
    except (OperationFailure, ValueError) as e:
        if _is_duplicate_key(e):
            raise DuplicatePages(dataset.name, _duplicates(dataset)) from e
        raise


def _is_duplicate_key(error):
    while error is not None:
        if isinstance(error, BulkWriteError):
            codes = {w.get("code") for w in error.details.get("writeErrors", [])}
            return codes == {DUPLICATE_KEY}
        if isinstance(error, OperationFailure):
            return error.code == DUPLICATE_KEY
        error = error.__cause__
    return False


def _page_copies(dataset):
    """``{(sha256, page): [(created_at, id, pdf_path), ...]}`` of every PDF
    page in the dataset, oldest first."""
    pages = dataset.match(fo.ViewField("pdf_sha256").exists())
    columns = pages.values(
        ["pdf_sha256", "page_number", "created_at", "id", "pdf_path"]
    )
    copies = collections.defaultdict(list)
    for sha, page, created, sample_id, path in zip(*columns):
        copies[(sha, page)].append((created, sample_id, path))
    for samples in copies.values():
        samples.sort(key=lambda c: (c[0] is None, c[0], c[1]))
    return copies


def _duplicates(dataset):
    return {
        (samples[0][2], page): len(samples)
        for (_, page), samples in _page_copies(dataset).items()
        if len(samples) > 1
    }


def remove_duplicate_pages(dataset):
    """Deletes the extra copies of pages that are in the dataset more than
    once (same ``pdf_sha256`` and ``page_number``), keeping the oldest
    sample of each page, so that the unique page index can be built.

    Args:
        dataset: a ``fo.Dataset``, or the name of one

    Returns:
        the number of samples deleted
    """
    dataset = _get_dataset(dataset, create=False)
    extra = [
        c[1]
        for samples in _page_copies(dataset).values()
        for c in samples[1:]
    ]
    if extra:
        logger.info(
            "Removing %d duplicate pages from dataset '%s'",
            len(extra),
            dataset.name,
        )
        dataset.delete_samples(extra)
    return len(extra)


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


def _declare_fields(dataset, text_field, words_field=None):
    if dataset.media_type is None:
        # set before any page is added: a run that set it while another
        # added pages would be refused (not on an empty dataset)
        try:
            dataset.media_type = "image"
        except ValueError:
            dataset.reload()
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
    if words_field is not None:
        fields[words_field] = fo.DictField
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


def _get_dataset(dataset, create=True):
    if isinstance(dataset, fo.Dataset):
        return dataset

    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError("dataset must be a fo.Dataset or a dataset name")
    if fo.dataset_exists(dataset) or not create:
        return fo.load_dataset(dataset)

    try:
        created = fo.Dataset(dataset)
    except Exception as e:
        # another run created it since: a unique name, refused twice
        if _is_duplicate_key(e) or fo.dataset_exists(dataset):
            return fo.load_dataset(dataset)
        raise
    created.persistent = True
    return created


def _password_for(password, path):
    if isinstance(password, dict):
        return password.get(path)
    return password


def _plan_file(
    dataset, path, images_dir, max_pixels, dpi, password, text_field,
    words_field, summary,
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
            "with_words": words_field is not None,
        }
        for page in todo
    ]


def _render_and_add(
    dataset, tasks, text_field, words_field, num_workers, progress, summary
):
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    num_workers = min(num_workers, len(tasks))

    pending = []

    def flush():
        if pending:
            _insert(dataset, list(pending), summary)
            pending.clear()

    def handle(task, result, error):
        if error is not None:
            _skip(task["path"], error)
            summary["failed"].append((task["path"], task["page_number"], error))
            return
        pending.append(_sample(task, result, text_field, words_field))
        if len(pending) >= ADD_BATCH:
            flush()

    with fou.ProgressBar(total=len(tasks), progress=progress) as pb:

        def done(task, result, error):
            handle(task, result, error)
            pb.update()

        try:
            if num_workers <= 0:
                for task in tasks:
                    done(*pdf_render.render_task(task))
            else:
                outcomes = pdf_render.render_in_processes(tasks, num_workers)
                with contextlib.closing(outcomes):
                    for outcome in outcomes:
                        done(*outcome)
        finally:
            # what was rendered is kept, so an interrupted run resumes
            flush()


def _insert(dataset, samples, summary):
    """Adds ``samples`` in one ordered insert; a page that another run
    added meanwhile (refused by the unique page index) is counted in
    ``added_elsewhere`` and the insert continues after it."""
    while samples:
        try:
            dataset.add_samples(samples, batcher=False, progress=False)
        except ValueError as e:
            bulk = e.__cause__
            if not (isinstance(bulk, BulkWriteError) and _is_duplicate_key(bulk)):
                raise
            # an ordered insert stops at the refused page: those before it
            # are in, those after it are tried again
            refused = bulk.details["writeErrors"][0]["index"]
            summary["added"] += refused
            summary["added_elsewhere"] += 1
            samples = samples[refused + 1 :]
            continue
        summary["added"] += len(samples)
        return


def _sample(task, result, text_field, words_field=None):
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
    if words_field is not None:
        sample[words_field] = result.get("words")
    return sample
