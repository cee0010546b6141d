"""Classification metrics for polarity: accuracy, macro-F1, per-class P/R/F1, confusion matrix.

Definitions follow scikit-learn's ``precision_recall_fscore_support`` (zero_division=0): for
class c, precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); macro-F1 is the
unweighted mean of per-class F1 over all classes, present or not. numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts int64 [n_classes, n_classes]; row = true class, column = predicted class.

    Raises:
        ValueError: lengths differ or a label is outside ``[0, n_classes)``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """All polarity metrics as a JSON-ready dict.

    Args:
        y_true, y_pred: class indices into ``labels``, same length.
        labels: class names in index order.

    Returns:
        ``{"n", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}},
        "confusion_matrix": [[...]], "labels": [...]}``; ratios in [0, 1].
    """
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "per_class": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }
