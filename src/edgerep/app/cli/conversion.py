"""Conversion commands: ``export`` and ``matrix``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgerep.app.cli import tables
from edgerep.app.cli.options import DataDir, JsonFlag, _print_json, app, err, out
from edgerep.registry import (
    ARCHITECTURES,
    Backend,
    Quantization,
    names,
)

# ----------------------------------------------------------------------------- export


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="Fine-tuned model directory (…/train/model).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundles are written to OUT/<quantization>/ (ONNX: OUT/onnx-<quantization>/).")],
    data: DataDir,
    quantize: Annotated[str, typer.Option(help=f"Comma-separated: {names(Quantization)}, or all.")] = "fp32,dynamic-int8",
    backend: Annotated[str, typer.Option(help=f"One of {names(Backend)}.")] = "litert",
    validation_tweets: Annotated[int, typer.Option(min=1, help="Validation tweets compared with PyTorch.")] = 500,
    calibration_tweets: Annotated[
        int, typer.Option(min=1, help="Training tweets in the representative dataset (full-integer int8).")
    ] = 200,
    strict: Annotated[
        bool, typer.Option("--strict/--no-strict", help="Fail on a validation failure (default), or write and report it.")
    ] = True,
    buckets: Annotated[
        str, typer.Option(help="Sequence-length buckets: auto (16,32,...,max_seq_len), none (pad to max_seq_len), or e.g. 16,32,48.")
    ] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace existing bundles.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert, quantize, validate against PyTorch on real tweets, and write bundles.

    LiteRT bundles of BERT-style models compute the last layer for [CLS] only (the same logits,
    fewer MACs; the manifest's source.graph says so); ONNX bundles keep the model's own graph.

    \b
    Examples:
      edgerep export runs/default/train/model --out runs/default/bundles --data ../shared/data/replab2013
      edgerep export RUN/model --out BUNDLES --data DIR --quantize all --no-strict
      edgerep export RUN/model --out BUNDLES --data DIR --backend onnxruntime --quantize dynamic-int8
    """
    from edgerep.data import SplitConfig, part_texts
    from edgerep.registry import check_combinations, parse_backend, parse_quantizations
    from edgerep.workstation.export import export_bundles, parse_buckets
    from edgerep.workstation.models import read_model_info

    modes = parse_quantizations(quantize)
    chosen_backend = parse_backend(backend)
    check_combinations(chosen_backend, modes)
    info = read_model_info(model_dir)
    bucket_list = parse_buckets(buckets, int(info["max_seq_len"]))
    parts = part_texts(data, SplitConfig(**info.get("split", {})))
    results = export_bundles(
        model_dir,
        out_dir,
        modes,
        parts["validation"].spread(validation_tweets),
        overwrite=overwrite,
        calibration_texts=parts["train"].spread(calibration_tweets),
        strict=strict,
        backend=chosen_backend,
        buckets=bucket_list,
    )
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    out.print(tables.export_table(results))


@app.command()
def matrix(
    data: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Matrix directory; re-running skips finished artifacts.")],
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Fine-tuned model (…/train/model): its bundles are also evaluated.")
    ] = None,
    quantize: Annotated[str, typer.Option(help=f"Comma-separated: {names(Quantization)}, or all.")] = "all",
    backends: Annotated[str, typer.Option(help=f"Comma-separated: {names(Backend)}.")] = "litert,onnxruntime",
    architectures: Annotated[
        str, typer.Option(help=f"Paper architectures built from config: {', '.join(ARCHITECTURES)} (comma-separated), or none.")
    ] = "none",
    validation_tweets: Annotated[int, typer.Option(min=1, help="Validation tweets compared with the float source per artifact.")] = 200,
    calibration_tweets: Annotated[int, typer.Option(min=1, help="Representative dataset size (training tweets).")] = 200,
    eval_limit: Annotated[int | None, typer.Option(min=1, help="Evaluate fine-tuned bundles on at most N validation tweets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Model x quantization x backend: size, agreement with float, accuracy; the footprint table.

    \b
    Example: edgerep matrix --data ../shared/data/replab2013 --model-dir runs/default/train/model --architectures mobilebert,bert-base,bert-large --out runs/matrix
    """
    from edgerep.registry import parse_architectures, parse_backends, parse_quantizations
    from edgerep.workstation.matrix import MatrixConfig, quantization_matrix

    cfg = MatrixConfig(
        quantizations=tuple(parse_quantizations(quantize)),
        backends=tuple(parse_backends(backends)),
        architectures=parse_architectures(architectures),
        validation_tweets=validation_tweets,
        calibration_tweets=calibration_tweets,
        eval_limit=eval_limit,
    )
    rec = quantization_matrix(data, out_dir, model_dir, cfg)
    if as_json:
        _print_json(rec)
        return
    out.print(tables.matrix_table(rec))
    err.print(f"matrix written to {Path(out_dir) / 'matrix.json'}")
