"""Segments: the slices of traffic where error or drift grew most, with their share of traffic.

Slices are category values and reference-quantile bins (quartiles) of numeric features, with
"missing" and "(unseen)" as slices of their own. With an error column (1 = a wrong answer;
for a regression, one that misses by more than the model's typical error) a slice is ranked
by its *contribution to the growth of the overall error*:
``share_window * (error_window - error_reference)``, in points of error — a small slice with
a huge error rise and a large slice with a moderate one compete fairly.
Without errors, slices are ranked by how much their share of traffic moved.

>>> import pandas as pd
>>> ref = pd.DataFrame({"c": ["a", "b"] * 50, "error": [0] * 100})
>>> win = pd.DataFrame({"c": ["a", "b"] * 50, "error": [1, 0] * 50})
>>> top = find_segments(win, ref, min_rows=10)[0]
>>> (top.feature, top.value, top.window_share, top.window_error)
('c', 'a', 0.5, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
from pydantic import BaseModel

from mlwarden.diagnose.culprits import bin_labels

EXCLUDED_COLUMNS = ("error", "prediction", "target", "label", "score", "id", "timestamp", "time")


class Segment(BaseModel):
    feature: str
    value: str
    window_share: float
    reference_share: float | None = None
    window_error: float | None = None
    reference_error: float | None = None
    growth: float
    ranked_by: Literal["error", "share"]


def find_segments(
    window_rows: pd.DataFrame,
    reference_rows: pd.DataFrame | None = None,
    *,
    features: Sequence[str] | None = None,
    error_column: str = "error",
    min_rows: int = 20,
    limit: int = 5,
) -> list[Segment]:
    """The slices where error (or share) grew most, largest growth first, ties by name."""
    if window_rows.empty:
        return []
    cols = (
        list(features)
        if features is not None
        else [c for c in window_rows.columns if c not in EXCLUDED_COLUMNS and c != error_column]
    )
    has_error = error_column in window_rows.columns
    ref_has_error = reference_rows is not None and error_column in reference_rows.columns
    if not has_error and reference_rows is None:
        return []
    n_w = len(window_rows)
    min_support = max(min_rows, int(0.01 * n_w))
    overall_ref_error = (
        float(pd.to_numeric(reference_rows[error_column]).mean())
        if ref_has_error and reference_rows is not None
        else None
    )
    out: list[Segment] = []
    for col in sorted(cols):
        ref_col = (
            reference_rows[col] if reference_rows is not None and col in reference_rows else None
        )
        basis = ref_col if ref_col is not None else window_rows[col]
        w_labels = bin_labels(basis, window_rows[col], n_bins=4)
        r_labels = bin_labels(basis, ref_col, n_bins=4) if ref_col is not None else None
        w_share = w_labels.value_counts(normalize=True)
        r_share = r_labels.value_counts(normalize=True) if r_labels is not None else None
        for value in sorted(w_share.index):
            mask = w_labels == value
            if int(mask.sum()) < min_support:
                continue
            seg = Segment(
                feature=col,
                value=str(value),
                window_share=round(float(w_share[value]), 4),
                reference_share=None
                if r_share is None
                else round(float(r_share.get(value, 0.0)), 4),
                growth=0.0,
                ranked_by="error" if has_error else "share",
            )
            if has_error:
                err_w = float(pd.to_numeric(window_rows.loc[mask, error_column]).mean())
                if ref_has_error and r_labels is not None and reference_rows is not None:
                    r_mask = r_labels == value
                    err_r = (
                        float(pd.to_numeric(reference_rows.loc[r_mask, error_column]).mean())
                        if int(r_mask.sum()) >= min_rows
                        else overall_ref_error
                    )
                else:
                    err_r = float(pd.to_numeric(window_rows[error_column]).mean())
                seg.window_error, seg.reference_error = (
                    round(err_w, 4),
                    (None if err_r is None else round(err_r, 4)),
                )
                seg.growth = round(seg.window_share * (err_w - (err_r or 0.0)), 6)
            else:
                seg.growth = round(abs(seg.window_share - (seg.reference_share or 0.0)), 6)
            if seg.growth > 0:
                out.append(seg)
    out.sort(key=lambda s: (-s.growth, s.feature, s.value))
    return out[:limit]
