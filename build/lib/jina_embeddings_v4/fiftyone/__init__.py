"""The FiftyOne-facing layer: the zoo model (``zoo.py``), what FiftyOne's
call context says (``context.py``), heatmap labels, PDF import, sharding
and re-ranking. Everything here may import FiftyOne."""
