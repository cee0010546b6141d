"""Validation of a converted model against its PyTorch source: both run on the same real tweets
and the recipe's :class:`~edgerep.registry.Tolerance` decides (numpy only).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from edgerep.registry import Tolerance


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Agreement of two logit arrays float32 [n, classes].

    Returns:
        ``{"n", "max_abs_logit_diff", "mean_abs_logit_diff", "label_agreement"}``.
    """
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "n": int(len(reference)),
        "max_abs_logit_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0,
        "label_agreement": float((reference.argmax(-1) == candidate.argmax(-1)).mean()) if len(reference) else 1.0,
    }


def judge(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> dict:
    """:func:`compare_logits` plus ``tolerance`` and ``passed`` (both thresholds met)."""
    v = compare_logits(reference, candidate)
    v["tolerance"] = asdict(tolerance)
    v["passed"] = bool(v["max_abs_logit_diff"] <= tolerance.max_abs_logit and v["label_agreement"] >= tolerance.min_agreement)
    return v
