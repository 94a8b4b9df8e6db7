"""What the lake commands offer (``mlwarden profile``, ``mlwarden backtest``): the engines and
how many first rows fix the bins. A module of its own so the command line shows them in its
help without importing the engines, Polars and SciPy (``monitor.lake``)."""

from __future__ import annotations

ENGINES = ("polars", "spark")
# Enough values for 100 quantile bins to sit within a fraction of a bin of the whole lake's.
DEFAULT_LAYOUT_ROWS = 200_000
