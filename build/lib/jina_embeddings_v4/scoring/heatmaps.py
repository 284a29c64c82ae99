"""Where a page matched a query: per-cell maps from multi vectors.

A page's multi vectors are the chat-template tokens before the image, the
``rows * cols`` image tokens (one per merged 28x28 patch of the resized
page, row-major), then the template tokens after it. The query's multi
vectors are its instruction prefix (``Query: ``) followed by its text.

- :func:`cell_map`: cell ``(r, c)`` is the max over the query's content
  tokens of their similarity to image token ``(r, c)``.
- :func:`maxsim_parts`: each query token's term of the MaxSim score (its
  best match over all page tokens) and, when that best match is an image
  token, its cell; the terms add up to the score.
- :func:`shared_range`: one ``[floor, top]`` for the maps of one call, so a
  weak page looks weak and cells under the floor stay transparent.

Pure numpy; knows nothing of FiftyOne or the model.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

DEFAULT_FLOOR_QUANTILE = 0.5


@dataclass
class Grid:
    """Where a page's image tokens are in its multi vectors.

    Attributes:
        rows: image tokens per column (the page's height in cells)
        cols: image tokens per row (its width in cells)
        offset: index of image token ``(0, 0)`` in the multi vectors
    """

    rows: int
    cols: int
    offset: int

    @classmethod
    def of(cls, value):
        if isinstance(value, Grid):
            return value
        rows, cols, offset = (int(v) for v in value)
        return cls(rows, cols, offset)

    @property
    def n_cells(self):
        return self.rows * self.cols


@dataclass
class MaxSimParts:
    """The parts of a page's MaxSim score for one query.

    Attributes:
        score: the MaxSim sum over all query tokens
        contributions: per query token, its best similarity over all page
            tokens (they add up to ``score``)
        cells: per query token, the ``(row, col)`` of its best match when
            that is an image token, else None (a template token)
        prefix_share: the share of ``score`` from the instruction-prefix
            tokens
        template_share: the share of ``score`` from content tokens whose
            best match is a template token (they have no place on the page)
    """

    score: float
    contributions: np.ndarray
    cells: List[Optional[Tuple[int, int]]]
    prefix_share: float
    template_share: float


def _check(query, page, grid):
    query = np.asarray(query, dtype=np.float32)
    page = np.asarray(page, dtype=np.float32)
    grid = Grid.of(grid)
    if query.ndim != 2 or page.ndim != 2 or query.shape[1] != page.shape[1]:
        raise ValueError(
            "query and page must be [n_tokens, dim] with one dim; got %s "
            "and %s" % (query.shape, page.shape)
        )
    if grid.rows < 1 or grid.cols < 1 or grid.offset < 0:
        raise ValueError("Invalid grid %s" % (grid,))
    if grid.offset + grid.n_cells > len(page):
        raise ValueError(
            "The page has %d tokens, fewer than its grid %dx%d at offset %d "
            "needs" % (len(page), grid.rows, grid.cols, grid.offset)
        )
    return query, page, grid


def content_tokens(query, n_prefix):
    """The query's tokens after its instruction prefix (all of them when
    the prefix would leave none)."""
    query = np.asarray(query, dtype=np.float32)
    if 0 <= n_prefix < len(query):
        return query[n_prefix:]
    return query


def cell_map(query, page, grid, n_prefix=0):
    """The page's per-cell match to the query.

    Args:
        query: ``[n_q, dim]`` query multi vectors
        page: ``[n_tokens, dim]`` page multi vectors
        grid: a :class:`Grid` or ``(rows, cols, offset)``
        n_prefix (0): the query's instruction-prefix tokens, left out

    Returns:
        float32 ``[rows, cols]``, C-contiguous: cell ``(r, c)`` is the max
        over the content tokens of their similarity to image token
        ``(r, c)``
    """
    query, page, grid = _check(query, page, grid)
    tokens = content_tokens(query, n_prefix)
    image = page[grid.offset : grid.offset + grid.n_cells]
    best = (tokens @ image.T).max(axis=0)
    return np.ascontiguousarray(
        best.reshape(grid.rows, grid.cols), dtype=np.float32
    )


def maxsim_parts(query, page, grid, n_prefix=0):
    """Splits the page's MaxSim score into its query tokens' terms.

    Args:
        query: ``[n_q, dim]`` query multi vectors
        page: ``[n_tokens, dim]`` page multi vectors
        grid: a :class:`Grid` or ``(rows, cols, offset)``
        n_prefix (0): how many leading query tokens are the instruction
            prefix

    Returns:
        a :class:`MaxSimParts`
    """
    query, page, grid = _check(query, page, grid)
    sims = query @ page.T
    best = sims.argmax(axis=1)
    contributions = sims[np.arange(len(query)), best]
    score = float(contributions.sum())
    cells = []
    for token, j in enumerate(best):
        k = int(j) - grid.offset
        if token >= n_prefix and 0 <= k < grid.n_cells:
            cells.append((k // grid.cols, k % grid.cols))
        else:
            cells.append(None)

    n_prefix = min(max(n_prefix, 0), len(query))
    prefix = float(contributions[:n_prefix].sum())
    template = float(
        sum(
            contributions[t]
            for t in range(n_prefix, len(query))
            if cells[t] is None
        )
    )
    share = (lambda part: part / score) if score != 0 else (lambda part: 0.0)
    return MaxSimParts(
        score=score,
        contributions=contributions.astype(np.float32),
        cells=cells,
        prefix_share=share(prefix),
        template_share=share(template),
    )


def shared_range(maps, floor_quantile=DEFAULT_FLOOR_QUANTILE):
    """One ``[floor, top]`` for a call's maps.

    ``top`` is the best cell of all maps and ``floor`` the
    ``floor_quantile`` quantile of all their cells: with the App's heatmap
    colouring, cells below the floor are transparent, so the weaker half
    of the cells (by default) leaves the page visible, and a page whose
    best cell is weak shows little colour.

    Args:
        maps: the maps (2-D arrays) of one call
        floor_quantile (0.5): in ``[0, 1)``

    Returns:
        ``[floor, top]`` as Python floats, ``floor < top``
    """
    if not 0 <= floor_quantile < 1:
        raise ValueError(
            "floor_quantile must be in [0, 1), got %r" % (floor_quantile,)
        )
    maps = [np.asarray(m, dtype=np.float32) for m in maps]
    if not maps:
        raise ValueError("No maps")

    cells = np.concatenate([m.reshape(-1) for m in maps])
    top = float(cells.max())
    floor = float(np.quantile(cells, floor_quantile))
    if floor >= top:
        floor = top - 1e-6
    return [floor, top]


def cell_center(cell, grid):
    """The centre of cell ``(r, c)`` in relative ``[0, 1]`` image
    coordinates ``(x, y)``: the App stretches a map over the whole image,
    so cell ``(r, c)`` covers ``x in [c/cols, (c+1)/cols)`` and
    ``y in [r/rows, (r+1)/rows)``."""
    grid = Grid.of(grid)
    r, c = cell
    return ((c + 0.5) / grid.cols, (r + 0.5) / grid.rows)
