"""PDF pages to PNG images, with pypdfium2 (PDFium, in its wheel).

Why pypdfium2: PDFium is the PDF engine of Chromium, so it renders what
browsers render; its wheels ship the library (no poppler or ghostscript to
install), it is Apache-2.0/BSD-licensed (PyMuPDF is AGPL), it is released
often, and it renders a page in tens of milliseconds. It is not
thread-safe, so pages are rendered in worker processes.

Pages are rendered at a pixel budget: by default the model's
``max_pixels``, since the model resizes anything larger down to it (no
point rendering pixels it discards). ``dpi`` renders at a fixed
resolution instead, still within the budget, so a 200-inch poster page
stays a few hundred thousand pixels. Whatever the settings, a rendered
page has at most :data:`RENDER_MAX_PIXELS` pixels and no side longer than
:data:`RENDER_MAX_SIDE`: a 699-byte PDF whose page is 10^7 x 1 points
renders to a 57k x 1 strip, not to gigabytes.

Pages are rendered in worker processes (:func:`render_in_processes`):
fresh interpreters that import this module only, hold none of the
caller's database sockets, and die with the caller, even when it is
killed with SIGKILL. Knows nothing of FiftyOne.
"""

import collections
import ctypes
import hashlib
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid

from ..options import DEFAULT_MAX_PIXELS
from .image_inputs import PAD_CANVAS_MAX_PIXELS, pad_long_side_limit
from . import pdf_words

logger = logging.getLogger(__name__)

# The bounds of every rendered page, whatever max_pixels and dpi ask for:
# the pixel ceiling of a padded canvas in image_inputs (PDFium's bitmap is
# then at most 64 MB), and the longest side that image_inputs keeps
# unshrunk when it pads an extreme aspect ratio: such a page is sized here,
# before any padding, and the model pads it as rendered.
RENDER_MAX_PIXELS = PAD_CANVAS_MAX_PIXELS
RENDER_MAX_SIDE = pad_long_side_limit()

# how often a render worker checks that its parent is still there
PARENT_POLL_S = 0.5
# Linux prctl(2): ask for a signal when the parent dies
_PR_SET_PDEATHSIG = 1

POINTS_PER_INCH = 72.0
PDF_MAGIC = b"%PDF-"
# the header may follow some junk bytes (PDF readers look this far)
MAGIC_WINDOW = 1024


class PdfError(ValueError):
    """A PDF (or one of its pages) that cannot be read or rendered."""


def render_scale(width_pt, height_pt, max_pixels=DEFAULT_MAX_PIXELS, dpi=None):
    """The scale (pixels per point) to render a page at.

    Whatever ``max_pixels`` and ``dpi`` ask for, the page's bitmap has at
    most :data:`RENDER_MAX_PIXELS` pixels and no side longer than
    :data:`RENDER_MAX_SIDE` pixels.

    Args:
        width_pt: the page width in points (1/72 inch)
        height_pt: its height in points
        max_pixels (602112): the pixel budget, or None for none (the
            bounds above still hold)
        dpi (None): render at this resolution (capped by the budget and
            the bounds); None: exactly at the budget

    Returns:
        a positive float
    """
    if not (0 < width_pt < math.inf and 0 < height_pt < math.inf):
        raise PdfError("page size %sx%s pt" % (width_pt, height_pt))
    if dpi is None and max_pixels is None:
        raise ValueError("Set max_pixels, dpi, or both")
    if dpi is not None and not dpi > 0:
        raise ValueError("dpi must be positive, got %r" % (dpi,))

    area = width_pt * height_pt
    bounds = min(
        math.sqrt(RENDER_MAX_PIXELS / area),
        RENDER_MAX_SIDE / max(width_pt, height_pt),
    )
    if max_pixels is None and dpi / POINTS_PER_INCH <= bounds:
        width, height = pixel_size(width_pt, height_pt, dpi / POINTS_PER_INCH)
        if width * height <= RENDER_MAX_PIXELS:
            return dpi / POINTS_PER_INCH

    scale = bounds
    if max_pixels is not None:
        scale = min(scale, math.sqrt(max_pixels / area))
    if dpi is not None:
        scale = min(scale, dpi / POINTS_PER_INCH)

    # PDFium's bitmap is ceil(size * scale): shrink the scale to whole
    # pixels so that the rounded-up size stays within the budget
    width = max(1, math.floor(width_pt * scale))
    height = max(1, math.floor(height_pt * scale))
    return min(width / width_pt, height / height_pt) * (1 - 1e-9)


def pixel_size(width_pt, height_pt, scale):
    """The ``(width, height)`` in pixels of a page rendered at ``scale``,
    as PDFium sizes its bitmap."""
    return (
        max(1, math.ceil(width_pt * scale)),
        max(1, math.ceil(height_pt * scale)),
    )


def file_sha256(path, chunk=1 << 20):
    """The file's content hash: a PDF's identity."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_pdf(path):
    """Whether the file starts (within 1 KB) with the PDF header."""
    with open(path, "rb") as f:
        return PDF_MAGIC in f.read(MAGIC_WINDOW)


PIP_INSTALL = "pip install 'pypdfium2==5.15.2'"


def import_pdfium():
    """pypdfium2, or an ImportError naming the pip command."""
    try:
        import pypdfium2
    except ImportError as e:
        raise ImportError(
            "Importing PDFs needs pypdfium2, which is not installed. Run: %s"
            % PIP_INSTALL
        ) from e
    return pypdfium2


def open_pdf(path, password=None):
    """Opens a PDF, or raises a :class:`PdfError` that says why not."""
    pdfium = import_pdfium()

    if not looks_like_pdf(path):
        raise PdfError("%s: not a PDF (no %%PDF- header)" % path)
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as e:
        text = str(e)
        if "password" in text.lower():
            hint = (
                "wrong password"
                if password
                else "it is encrypted: pass its password"
            )
            raise PdfError("%s: %s (%s)" % (path, hint, text)) from e
        if getattr(e, "err_code", None) == 0:
            # PDFium loads no document without pages, and reports no error
            raise PdfError(
                "%s has no pages (or no page tree PDFium can read)" % path
            ) from e
        raise PdfError("%s cannot be read: %s" % (path, text)) from e


def describe(path, password=None):
    """``{"num_pages", "title"}`` of a PDF."""
    pdf = open_pdf(path, password)
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
        return {"num_pages": len(pdf), "title": title or None}
    finally:
        pdf.close()


def render_page(
    path,
    page_number,
    out_path,
    max_pixels=DEFAULT_MAX_PIXELS,
    dpi=None,
    password=None,
    with_text=False,
    with_words=False,
):
    """Renders one page (1-based) to a PNG.

    Returns:
        ``{"width", "height", "text", "words"}``: the image's pixel size,
        the page's own text layer (None unless ``with_text``) and its words
        with their boxes on the image (None unless ``with_words``; see
        :func:`jina_embeddings_v4.io.pdf_words.page_words`)
    """
    pdf = open_pdf(path, password)
    try:
        if not 1 <= page_number <= len(pdf):
            raise PdfError(
                "%s has %d pages, no page %d" % (path, len(pdf), page_number)
            )
        page = pdf[page_number - 1]
        size = None
        try:
            width_pt, height_pt = page.get_size()
            scale = render_scale(width_pt, height_pt, max_pixels, dpi)
            size = pixel_size(width_pt, height_pt, scale)
            image = page.render(scale=scale).to_pil()
            if image.mode != "RGB":
                image = image.convert("RGB")
            text = words = None
            if with_text or with_words:
                textpage = page.get_textpage()
                try:
                    if with_text:
                        text = textpage.get_text_bounded().replace("\r\n", "\n")
                    if with_words:
                        words = pdf_words.page_words(page, textpage)
                finally:
                    textpage.close()
        except PdfError as e:
            raise PdfError("%s page %d: %s" % (path, page_number, e)) from e
        except MemoryError as e:
            raise PdfError(
                "%s page %d: out of memory rendering it%s"
                % (path, page_number, " at %dx%d px" % size if size else "")
            ) from e
        except Exception as e:
            raise PdfError(
                "%s page %d cannot be rendered: %s" % (path, page_number, e)
            ) from e
        finally:
            page.close()
    finally:
        pdf.close()

    _save_png(image, out_path)
    return {
        "width": image.width,
        "height": image.height,
        "text": text,
        "words": words,
    }


def _save_png(image, out_path):
    """Writes ``out_path`` whole or not at all: through a temporary file of
    this process's own, so that two runs rendering the same page at once
    never write into one file."""
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    tmp = "%s.%d-%s.tmp" % (out_path, os.getpid(), uuid.uuid4().hex[:8])
    try:
        # "x": a new file, with the umask's permissions (as the page gets)
        with open(tmp, "xb") as f:
            image.save(f, format="PNG")
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def render_task(task):
    """:func:`render_page` for a worker process: ``task`` is a dict of its
    arguments; returns ``(task, result, error message or None)``. A page
    that cannot be rendered, for want of memory too, is that page's error,
    not the worker's end."""
    try:
        result = render_page(
            task["path"],
            task["page_number"],
            task["out_path"],
            max_pixels=task["max_pixels"],
            dpi=task["dpi"],
            password=task["password"],
            with_text=task["with_text"],
            with_words=task.get("with_words", False),
        )
        return task, result, None
    except PdfError as e:
        return task, None, str(e)
    except MemoryError:
        return task, None, "%s page %d: out of memory rendering it" % (
            task["path"],
            task["page_number"],
        )


def guard_worker(parent_pid, poll_s=PARENT_POLL_S):
    """Makes this process (a render worker) die with its parent.

    On Linux the kernel kills it (SIGKILL) when the parent dies, however
    the parent dies; everywhere a daemon thread checks every ``poll_s``
    seconds that the parent is still its parent, and ends the worker when
    not. The worker ignores SIGINT: a Ctrl-C at the terminal reaches the
    whole process group, and the parent, which gets it too, stops the
    workers itself.

    Args:
        parent_pid: the pid of the process that starts the workers
        poll_s (0.5): seconds between two checks of the parent
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        _kill_me_with_my_parent()
    if os.getppid() != parent_pid:
        # the parent died before any of this was in place
        os._exit(1)
    watcher = threading.Thread(
        target=_watch_parent,
        args=(parent_pid, poll_s),
        name="watch-parent",
        daemon=True,
    )
    watcher.start()


def _kill_me_with_my_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            logger.debug(
                "prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno()
            )
    except (OSError, AttributeError) as e:
        # the parent watch below still ends the worker
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s", e)


def _watch_parent(parent_pid, poll_s):
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


# -- render worker processes ------------------------------------------------

# A worker is a fresh interpreter started with this (argv: the folder that
# holds the package, the parent's pid): it imports the renderer alone,
# never the caller's __main__ (multiprocessing's spawn would run an
# unguarded script again in each worker), and inherits no open file or
# database socket of the caller (subprocess closes them).
WORKER_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from %s import serve; serve(int(sys.argv[2]))" % __name__
)
WORKER_DIED = "its render process died twice"


def serve(parent_pid):
    """A render worker's main loop: ``{"ready"}`` out on stdout once it
    can render, then a task (JSON, one a line) in on stdin and
    ``{"result", "error"}`` out, until stdin closes.

    A page that cannot be rendered is that page's error; any other
    exception (an unwritable images folder, say) is sent as ``{"raise",
    "os_error"}`` for the parent to raise. Output of the libraries below
    goes to stderr: stdout carries the replies only.
    """
    guard_worker(parent_pid)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    import_pdfium()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        try:
            _, result, error = render_task(json.loads(line))
            reply = {"result": result, "error": error}
        except Exception as e:
            reply = {
                "raise": "%s: %s" % (type(e).__name__, e),
                "os_error": isinstance(e, OSError),
            }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


class _Worker:
    """One render worker process, driven by one thread of the parent."""

    def __init__(self):
        package = sys.modules[__name__.split(".")[0]]
        root = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, root, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            encoding="utf-8",
        )

    def wait_ready(self):
        if not self.proc.stdout.readline():
            # not a page's fault: no worker would start
            raise RuntimeError(
                "A PDF render worker did not start (%s); its error is above"
                % self.how_it_died()
            )

    def render(self, task):
        """``(result, error)``, or None when the worker died."""
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (OSError, ValueError):
            # a broken pipe, or the pipes closed by stop()
            return None
        if not line:
            return None
        reply = json.loads(line)
        if "raise" in reply:
            raise (OSError if reply["os_error"] else RuntimeError)(
                "PDF render worker: %s" % reply["raise"]
            )
        return reply["result"], reply["error"]

    def how_it_died(self):
        code = self.proc.wait()
        if code < 0:
            try:
                return "killed by %s" % signal.Signals(-code).name
            except ValueError:
                return "killed by signal %d" % -code
        return "exit status %d" % code

    def close(self):
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass


class _Raised:
    def __init__(self, error):
        self.error = error


def render_in_processes(tasks, num_workers):
    """Renders tasks (:func:`render_task`'s dicts) in worker processes.

    Each worker is a fresh interpreter that imports the renderer only (not
    the caller's ``__main__``, so a script needs no ``if __name__ ==
    "__main__"`` guard), holds none of the caller's files or database
    sockets, and dies with the caller, even when the caller is killed with
    SIGKILL (:func:`guard_worker`). A worker that dies while it renders a
    page (the OOM killer, a crash in PDFium) is replaced and the page is
    rendered again once; if that kills its process too, the page fails
    with :data:`WORKER_DIED`.

    Args:
        tasks: a list of task dicts (JSON-serialisable)
        num_workers: worker processes (at most one per task)

    Yields:
        ``(task, result, error message or None)`` for each task, as they
        finish. Close the generator to stop early: the workers are killed.
    """
    todo = collections.deque(tasks)
    results = queue.Queue()
    stop = threading.Event()
    workers = []
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_drive,
            args=(todo, results, stop, workers, lock),
            name="pdf-render-%d" % i,
            daemon=True,
        )
        for i in range(max(1, min(num_workers, len(tasks))))
    ]
    for thread in threads:
        thread.start()
    finished = False
    try:
        for _ in range(len(tasks)):
            item = results.get()
            if isinstance(item, _Raised):
                raise item.error
            yield item
        finished = True
    finally:
        stop.set()
        if not finished:
            with lock:
                for worker in workers:
                    worker.kill()
        for thread in threads:
            thread.join()


def _drive(todo, results, stop, workers, lock):
    """One thread's loop: tasks from ``todo`` through one worker process
    into ``results``."""
    worker = None
    try:
        while not stop.is_set():
            try:
                task = todo.popleft()
            except IndexError:
                return
            outcome = None
            for attempt in range(2):
                if worker is None:
                    worker = _Worker()
                    with lock:
                        workers.append(worker)
                    worker.wait_ready()
                reply = worker.render(task)
                if reply is not None:
                    outcome = (task,) + reply
                    break
                if stop.is_set():
                    return
                how = worker.how_it_died()
                worker.close()
                worker = None
                logger.warning(
                    "The render process of %s page %d died (%s)%s",
                    task["path"],
                    task["page_number"],
                    how,
                    ": rendering it again" if attempt == 0 else "",
                )
            if outcome is None:
                outcome = (
                    task,
                    None,
                    "%s page %d: %s" % (task["path"], task["page_number"], WORKER_DIED),
                )
            results.put(outcome)
    except BaseException as e:
        results.put(_Raised(e))
    finally:
        if worker is not None:
            worker.close()
