"""The renderer's size bounds and its worker guard: pure code, no
database (the guard test starts real processes)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jina_embeddings_v4.io import image_inputs, pdf_render

SIZES = [
    (1e7, 1),
    (1, 1e7),
    (1e7, 1e7),
    (612, 792),
    (14400, 14400),
    (1e-3, 1e-3),
    (1e-300, 1e7),
    (200, 2e5),
]
SETTINGS = [
    (602112, None),
    (None, 300),
    (602112, 300),
    (None, 1e6),
    (10**12, None),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "%gx%g" % s)
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "mp%s-dpi%s" % s)
def test_every_page_renders_within_the_bounds(size, setting):
    width_pt, height_pt = size
    scale = pdf_render.render_scale(width_pt, height_pt, *setting)
    width, height = pdf_render.pixel_size(width_pt, height_pt, scale)
    assert width * height <= pdf_render.RENDER_MAX_PIXELS
    assert max(width, height) <= pdf_render.RENDER_MAX_SIDE
    max_pixels = setting[0]
    if max_pixels is not None:
        assert width * height <= max_pixels


def test_a_10e7_by_1_point_page_is_a_strip_the_model_pads_as_is():
    scale = pdf_render.render_scale(1e7, 1)
    assert pdf_render.pixel_size(1e7, 1, scale) == (57582, 1)
    assert pdf_render.pixel_size(1, 1e7, pdf_render.render_scale(1, 1e7)) == (
        1,
        57582,
    )
    # the longest side image_inputs pads without shrinking first
    assert pdf_render.RENDER_MAX_SIDE == image_inputs.pad_long_side_limit()
    assert pdf_render.RENDER_MAX_PIXELS == image_inputs.PAD_CANVAS_MAX_PIXELS
    # at 300 dpi, no budget: capped as well (41666667 x 5 uncapped)
    dpi300 = pdf_render.render_scale(1e7, 1, None, dpi=300)
    assert pdf_render.pixel_size(1e7, 1, dpi300) == (57582, 1)


def test_dpi_alone_is_exact_within_the_bounds():
    assert pdf_render.render_scale(612, 792, None, dpi=144) == 2.0
    # a 100-inch square at 600 dpi is 60000 x 60000: capped at 4096 x 4096
    big = pdf_render.render_scale(7200, 7200, None, dpi=600)
    assert pdf_render.pixel_size(7200, 7200, big) == (4096, 4096)


@pytest.mark.parametrize(
    "size", [(0, 10), (10, -1), (float("inf"), 1), (float("nan"), 1)]
)
def test_a_page_without_a_finite_positive_size_is_a_pdf_error(size):
    with pytest.raises(pdf_render.PdfError):
        pdf_render.render_scale(*size)


@pytest.mark.parametrize("dpi", [0, -72])
def test_dpi_must_be_positive(dpi):
    with pytest.raises(ValueError, match="dpi must be positive"):
        pdf_render.render_scale(612, 792, None, dpi=dpi)


# A parent that starts guarded workers, prints their pids, and waits to be
# killed
_PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from jina_embeddings_v4.io import pdf_render

    def pid_after(seconds):
        time.sleep(seconds)
        return os.getpid()

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(
            max_workers=2,
            mp_context=multiprocessing.get_context(sys.argv[1]),
            initializer=pdf_render.guard_worker,
            initargs=(os.getpid(),),
        )
        # two tasks at once: two workers
        futures = [pool.submit(pid_after, 1.0) for _ in range(2)]
        pids = sorted({f.result() for f in futures})
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(600)
    """
)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_guarded_workers_die_with_a_sigkilled_parent(tmp_path, method):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), method], stdout=subprocess.PIPE, text=True
    )
    workers = []
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(map(_alive, workers))
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.05)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_worker_whose_parent_is_gone_ends_itself():
    # the portable check: a parent pid that is not this process's parent
    code = (
        "import os, time\n"
        "from jina_embeddings_v4.io import pdf_render\n"
        "pdf_render.guard_worker(os.getppid() + 1 or 2, poll_s=0.05)\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stderr) == (1, "")
    assert time.monotonic() - started < 20


def _pdf_tasks(tmp_path, pages):
    pdfium = pdf_render.import_pdfium()
    path = str(tmp_path / "doc.pdf")
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(612, 792)
    pdf.save(path)
    pdf.close()
    return [
        {
            "path": path,
            "page_number": page,
            "out_path": str(tmp_path / "pages" / ("page-%04d.png" % page)),
            "max_pixels": 602112,
            "dpi": None,
            "password": None,
            "with_text": True,
        }
        for page in range(1, pages + 1)
    ]


def _children(besides=()):
    """This process's live descendants (pids), less ``besides``."""
    import psutil

    return sorted(
        p.pid for p in psutil.Process().children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE and p.pid not in besides
    )


def test_render_in_processes_renders_every_page_once(tmp_path):
    tasks = _pdf_tasks(tmp_path, 6)
    before = _children()
    outcomes = list(pdf_render.render_in_processes(tasks, 2))
    assert sorted(t["page_number"] for t, _, _ in outcomes) == [1, 2, 3, 4, 5, 6]
    for task, result, error in outcomes:
        assert error is None
        assert (result["width"], result["height"]) == (682, 882)
        assert result["text"] == ""
        assert os.path.getsize(task["out_path"]) > 0
    # no temporary file is left beside the pages
    assert sorted(os.listdir(tmp_path / "pages")) == [
        "page-%04d.png" % p for p in range(1, 7)
    ]
    assert _children(before) == []


def test_a_page_that_cannot_be_rendered_is_that_pages_error(tmp_path):
    tasks = _pdf_tasks(tmp_path, 4)
    tasks[1]["page_number"] = 99
    outcomes = list(pdf_render.render_in_processes(tasks, 2))
    errors = {t["page_number"]: e for t, _, e in outcomes}
    assert errors == {
        1: None,
        99: "%s has 4 pages, no page 99" % tasks[1]["path"],
        3: None,
        4: None,
    }


def test_closing_it_early_ends_the_workers(tmp_path):
    before = _children()
    outcomes = pdf_render.render_in_processes(_pdf_tasks(tmp_path, 8), 2)
    next(outcomes)
    assert len(_children(before)) == 2
    outcomes.close()
    assert _children(before) == []
