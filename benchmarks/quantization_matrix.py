#!/usr/bin/env python
"""Regenerate the quantization matrix (docs/usage/quantization.md) at real sizes (takes tens of minutes on 2 cores).

    python benchmarks/quantization_matrix.py --data ../shared/data/replab2013 \
        --model-dir runs/default/train/model --out runs/matrix

Converts the fine-tuned model and MobileBERT / BERT-base / BERT-large built from their configs
(random weights) to every quantization on LiteRT and ONNX Runtime, validates each against its
float source on real validation tweets, evaluates the fine-tuned bundles on the validation
split, and prints the Markdown table (also written to OUT/matrix.md). Re-running skips
finished artifacts. Not part of the test suite: the tiny-config version is
``tests/test_train_eval.py::test_quantization_matrix_tiny``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgerep.app.report.tables import matrix_markdown
from edgerep.io import atomic_write_text
from edgerep.log import configure
from edgerep.registry import parse_architectures
from edgerep.workstation.matrix import MatrixConfig, quantization_matrix


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/replab2013"))
    ap.add_argument("--model-dir", type=Path, default=Path("runs/default/train/model"))
    ap.add_argument("--out", type=Path, default=Path("runs/matrix"))
    ap.add_argument("--architectures", default="mobilebert,bert-base,bert-large")
    ap.add_argument("--validation-tweets", type=int, default=100)
    ap.add_argument("--calibration-tweets", type=int, default=100)
    args = ap.parse_args()
    configure(verbose=False)
    t0 = time.perf_counter()
    cfg = MatrixConfig(
        architectures=parse_architectures(args.architectures),
        validation_tweets=args.validation_tweets,
        calibration_tweets=args.calibration_tweets,
    )
    rec = quantization_matrix(args.data, args.out, args.model_dir if args.model_dir.is_dir() else None, cfg)
    md = matrix_markdown(rec)
    atomic_write_text(args.out / "matrix.md", md)
    print(md)
    print(f"({(time.perf_counter() - t0) / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
