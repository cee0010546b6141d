"""``edgerep compress RUN``: distilled students, vocabulary pruning and mixed-precision recipes,
each variant validated, evaluated and benchmarked, and the recommended bundle chosen on the
validation split.

Stages and outputs under ``RUN/compress/`` (each kept when present, so an interrupted run
continues)::

    config.json                        resolved CompressConfig
    distill/k<K>[-f<F>]/               the K-layer student (:mod:`edgerep.workstation.compress.distill`),
                                       with F feed-forward units per layer when pruned
    models/<model>/                    teacher and students with pruned vocabulary and position table
    bundles/<model>/<quantization>/    validated LiteRT bundles (+ onnx-dynamic-int8 for comparison)
    bundles/<model>/same-graph/onnx-dynamic-int8/
                                       ONNX Runtime with the LiteRT bundles' [CLS]-only last layer
    results/evaluation-<variant>.json  validation accuracy, macro-F1, per class and domain
    results/bench.json                 one `edgerep bench` run: every variant, ONNX Runtime and the
                                       transformers float32 model, 1 thread, same tweets
    compression.json                   the ``edgerep.compression`` record: one row per variant,
                                       Pareto flags, the recommendation and how it was chosen

The recommended bundle is copied to ``RUN/bundles/recommended/`` and named in
``RUN/summary.json`` when that exists.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from edgerep.data import smoke_validation_size
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory, check_or_write_config, record_is_current, settings_dict
from edgerep.log import log
from edgerep.measure.records import make_record, read_record, write_record
from edgerep.registry import BERT_LARGE_PARAMETERS, MB, MODEL_INFO_FILE, PROFILES, Backend, Quantization, parse_quantizations

#: Default mixed-precision variants of every compressed model.
DEFAULT_QUANTIZATIONS = (Quantization.DYNAMIC_INT8, Quantization.DYNAMIC_INT8_EMB4, Quantization.DYNAMIC_INT4)
#: The vocabulary-pruned teacher's recipes beside students: the recommendation's 6-layer fallback.
DEFAULT_TEACHER_QUANTIZATIONS = (Quantization.DYNAMIC_INT4,)

#: Where the students' ONNX Runtime int8 bundle with the LiteRT bundles' graph (the last layer for
#: ``[CLS]`` only, :func:`edgerep.workstation.models.logits_module`) goes, and its variant suffix.
ORT_SAME_GRAPH_DIR = "same-graph"
ORT_SAME_GRAPH_SUFFIX = "-same-graph"

#: The size target of the study: 1/160 of BERT-large float32 (the paper's headline ratio).
PAPER_RATIO = 160.0


@dataclass(frozen=True)
class CompressConfig:
    """Settings of ``edgerep compress``.

    Attributes:
        layers: student depths to distill (empty: no distillation, only pruning and recipes;
            ``None``: half the teacher's depth, rounded up, :func:`default_student_layers`).
        teachers: extra fine-tuned models averaged with the run's own as an ensemble teacher; they
            may have another architecture and tokenizer (the reference encoder).
        run_model_in_targets: the run's own model gives soft targets too; ``False``: only
            ``teachers`` do, the students still taking the run model's layers and tokenizer.
        quantizations: LiteRT recipes built for every compressed model.
        teacher_quantizations: LiteRT recipes of the vocabulary-pruned teacher when there are
            students (a lone teacher gets ``quantizations``). Default ``dynamic-int4`` only: the
            6-layer fallback of the recommendation rule (its int8 and int8-emb4 variants are never
            recommended once there are students, and each costs export, evaluation and bench time).
        prune_vocabulary: keep only the WordPiece tokens of the training split's English tweets.
        epochs: distillation epochs.
        temperature: distillation temperature.
        alpha: weight of the distillation term (1 - alpha: gold labels).
        hidden_weight: weight of the hidden-state distillation term (TinyBERT-style; 0: logits only).
        ffn_widths: feed-forward widths of the students (structured pruning before distillation,
            :mod:`edgerep.workstation.compress.prune`): one student per depth and width, named
            ``k<K>-f<F>`` (``k<K>`` at the teacher's own width); empty: the teacher's width only.
        prune_after_epoch: with ``ffn_widths``, the narrow students are distilled at the
            teacher's width for this many epochs and pruned then (0: pruned before distillation;
            :class:`edgerep.workstation.compress.distill.DistillConfig`).
        ffn_keep_last: with ``ffn_widths``, the narrow students' last layer keeps the teacher's
            width (it runs for ``[CLS]`` alone in the LiteRT bundles: one token's MACs); named
            ``k<K>-f<F>-last<full>``.
        transfer_text: TweetEval sentiment folders whose training portion joins every student's
            transfer set as unlabelled tweets (teacher soft targets only;
            :class:`edgerep.workstation.compress.distill.DistillConfig`).
        quant_aware: train the students with this recipe's weight grid (quantization-aware
            distillation, :mod:`edgerep.workstation.compress.qat`); ``None``: float32.
        vocab_min_count: vocabulary pruning keeps corpus tokens used at least this often.
        accuracy_budget: the recommendation stays within this many accuracy (and macro-F1)
            points of the run's fine-tuned float32 model (fraction: 0.01 = 1.0 point).
        bucket_step: sequence-length buckets of the compressed bundles every this many tokens from
            16 to max_seq_len (16, 24, ..., 56 at 8; 0: the export default 16, 32, max_seq_len).
            Less padding per tweet, at a cost per signature in file size (each subgraph repeats
            the per-channel quantization parameters, 12 bytes per embedding row) and one more
            packed copy of the weights in memory (docs/experiments/compression.md measures both).
            Compressed bundles carry no batch signature (the same cost, for ``--batch 8`` only).
        latency_tweets: validation tweets timed one by one per variant.
        threads: inference threads of the benchmark (1 = a single edge core).
        limit: smoke runs: at most this many distillation tweets and evaluation tweets.
    """

    layers: tuple[int, ...] | None = None
    teachers: tuple[str, ...] = ()
    run_model_in_targets: bool = True
    quantizations: tuple[Quantization, ...] = DEFAULT_QUANTIZATIONS
    teacher_quantizations: tuple[Quantization, ...] = DEFAULT_TEACHER_QUANTIZATIONS
    prune_vocabulary: bool = True
    epochs: int = 3
    temperature: float = 2.0
    alpha: float = 0.5
    hidden_weight: float = 1.0
    ffn_widths: tuple[int, ...] = ()
    prune_after_epoch: int = 0
    ffn_keep_last: bool = False
    transfer_text: tuple[str, ...] = ()
    quant_aware: str | None = Quantization.DYNAMIC_INT4.value
    vocab_min_count: int = 3
    accuracy_budget: float = 0.01
    bucket_step: int = 8
    latency_tweets: int = 300
    threads: int = 1
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizations", tuple(parse_quantizations(list(self.quantizations))))
        object.__setattr__(self, "teacher_quantizations", tuple(parse_quantizations(list(self.teacher_quantizations))))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(sorted(set(int(k) for k in self.layers))))
        object.__setattr__(self, "teachers", tuple(str(t) for t in self.teachers))
        if not self.run_model_in_targets and not self.teachers:
            raise ConfigError("--teacher-only: give the teacher(s) with --teacher MODEL")
        object.__setattr__(self, "transfer_text", tuple(str(t) for t in self.transfer_text))
        object.__setattr__(self, "ffn_widths", tuple(sorted(set(int(w) for w in self.ffn_widths), reverse=True)))
        if any(w < 1 for w in self.ffn_widths):
            raise ConfigError(f"feed-forward widths must be >= 1, got {list(self.ffn_widths)}")
        if not 0 <= self.prune_after_epoch < self.epochs:
            raise ConfigError(f"prune_after_epoch must be in [0, epochs - 1 = {self.epochs - 1}], got {self.prune_after_epoch}")
        if self.ffn_keep_last and not self.ffn_widths:
            raise ConfigError("ffn_keep_last needs feed-forward widths to prune the other layers to (--ffn-widths)")
        from edgerep.workstation.compress.qat import qat_mode  # torch-free; names checked before any work

        mode = qat_mode(self.quant_aware)
        object.__setattr__(self, "quant_aware", mode.value if mode else None)
        if self.vocab_min_count < 1:
            raise ConfigError(f"vocab_min_count must be >= 1, got {self.vocab_min_count}")
        if any(k < 1 for k in self.layers or ()):
            raise ConfigError(f"student layers must be >= 1, got {list(self.layers or ())}")
        if Quantization.FULL_INT8 in self.quantizations + self.teacher_quantizations:
            raise ConfigError(
                "full-int8 needs calibration and lost >10% label agreement on MiniLM; valid here: "
                + ", ".join(q.value for q in Quantization if q is not Quantization.FULL_INT8)
            )
        if not 0 <= self.accuracy_budget < 1:
            raise ConfigError(f"accuracy_budget must be in [0, 1), got {self.accuracy_budget}")
        if self.bucket_step < 0 or 0 < self.bucket_step < 4:
            raise ConfigError(f"bucket_step must be 0 (export default) or >= 4 tokens, got {self.bucket_step}")
        if self.latency_tweets < 2:
            raise ConfigError("latency_tweets must be >= 2")

    #: Settings saved only when set (:func:`edgerep.io.settings_dict`).
    OPTIONAL = {
        "teacher_quantizations": [q.value for q in DEFAULT_TEACHER_QUANTIZATIONS],
        "prune_after_epoch": 0,
        "ffn_keep_last": False,
        "transfer_text": (),
        "run_model_in_targets": True,
    }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantizations"] = [q.value for q in self.quantizations]
        d["teacher_quantizations"] = [q.value for q in self.teacher_quantizations]
        d["ffn_widths"] = list(self.ffn_widths) or None  # no width: the teacher's
        return settings_dict(d, self.OPTIONAL)

    def student_layers(self, teacher_layers: int) -> tuple[int, ...]:
        """The depths to distill for a teacher of ``teacher_layers`` layers."""
        return default_student_layers(teacher_layers) if self.layers is None else self.layers


def default_student_layers(teacher_layers: int) -> tuple[int, ...]:
    """Half the teacher's depth, rounded up: 6 -> 3 (all-MiniLM-L6-v2), 24 -> 12 (BERT-large,
    MobileBERT), 2 -> 1 (docs/experiments/compression.md compares depths)."""
    return (max(1, -(-int(teacher_layers) // 2)),)


def step_buckets(max_seq_len: int, step: int) -> tuple[int, ...]:
    """Buckets every ``step`` tokens from 16 (or ``max_seq_len`` when shorter) to ``max_seq_len``:
    ``step_buckets(56, 8) == (16, 24, 32, 40, 48, 56)``."""
    first = min(16, max_seq_len)
    return tuple(range(first, max_seq_len, step)) + (max_seq_len,)


def bert_large_mb(run_dir: Path | None = None) -> tuple[float, str]:
    """BERT-large float32 size in MB and where the figure comes from: the LiteRT file measured by
    ``edgerep matrix`` (``runs/matrix/matrix.json`` beside the run) when present, else 4 bytes
    per parameter of :data:`edgerep.registry.BERT_LARGE_PARAMETERS`."""
    for cand in [run_dir.parent / "matrix" / "matrix.json"] if run_dir else []:
        try:
            rec = json.loads(cand.read_text())
            if rec.get("bert_large_fp32_mb"):
                return float(rec["bert_large_fp32_mb"]), f"{cand}: {rec.get('bert_large_fp32_source', 'edgerep matrix')}"
        except (OSError, ValueError):
            pass
    return round(BERT_LARGE_PARAMETERS * 4 / MB, 1), "bert-large-uncased parameters x 4 bytes"


def check_transfer_text(folders) -> None:
    """Read the training portion of each ``transfer_text`` folder (:class:`CompressConfig`) once,
    so that a wrong path fails before a run writes anything, not when distillation starts.

    Raises:
        DataError: a missing folder or malformed file (:func:`edgerep.data.tweeteval.load_sentiment`
            names the file and line).
    """
    from edgerep.data.tweeteval import TRAIN_PORTION, load_sentiment

    for folder in folders:
        load_sentiment(folder, TRAIN_PORTION)


def compress(
    data_root: str | os.PathLike, run_dir: str | os.PathLike, config: CompressConfig = CompressConfig(), log_file: bool = False
) -> dict:
    """Compress the fine-tuned model of ``run_dir`` (an ``edgerep run`` or ``edgerep train`` output);
    return the ``edgerep.compression`` record (see the module docstring).

    Raises:
        ModelLoadError: ``run_dir`` holds no fine-tuned model, or a teacher is not one.
        ConfigError: a student deeper than the teacher, teachers that disagree, settings that
            differ from an earlier compress of this run.
        DataError: unreadable corpus or ``transfer_text`` folder (file and line named).

    ``log_file``: also append every log and progress line to ``RUN/compress/edgerep.log`` (the
    command line; ``edgerep run`` keeps its own log).
    """
    from edgerep.data import SplitConfig, part_texts
    from edgerep.data.replab import find_split_dir
    from edgerep.workstation.compress.distill import DistillConfig, check_teachers
    from edgerep.workstation.models import read_model_info

    run = Path(run_dir)
    teacher = _find_model(run)
    info = read_model_info(teacher)
    layers = config.student_layers(_config_value(teacher) or 1)
    for width in config.ffn_widths or (None,):  # every user mistake is found before anything is written
        check_teachers(DistillConfig(teachers=(str(teacher), *config.teachers), layers=max(layers, default=1), ffn_width=width))
    find_split_dir(data_root, "training")  # a missing corpus fails before anything is written
    if layers:
        check_transfer_text(config.transfer_text)  # likewise a missing or malformed folder
    out = run / "compress"
    out.mkdir(parents=True, exist_ok=True)
    check_or_write_config(out / "config.json", config.to_dict(), ConfigError)
    if log_file:
        from edgerep.log import configure

        configure(log_file=out / "edgerep.log")
    if (out / "compression.json").is_file():
        record = read_record(out / "compression.json", "compression")
        log(f"[green]compress[/]: {out / 'compression.json'} exists, keeping it")
        if record.get("recommended") and not (run / "bundles" / "recommended" / "manifest.json").is_file():
            _install_recommended(run, Path(record["recommended"]["path"]), record)
        return record

    val = part_texts(data_root, SplitConfig(**info.get("split", {})))["validation"]  # read once, for every stage
    log("[bold]compress 1/4 models[/] (distillation, vocabulary pruning)")
    models = _models(data_root, teacher, out, config, layers, val.texts)
    log("[bold]compress 2/4 export[/]")
    bundles = _export(models, out / "bundles", config, val)
    log("[bold]compress 3/4 evaluate[/] (validation split)")
    evals = _evaluate(data_root, out / "results", bundles, models, config)
    log(f"[bold]compress 4/4 bench[/] (single tweet, {config.threads} thread, one run)")
    cells = _bench(out / "results" / "bench.json", bundles, teacher, config, val)
    record = _record(data_root, run, teacher, models, evals, cells, config)
    write_record(out / "compression.json", record)
    rec = record.get("recommended")
    if rec:
        _install_recommended(run, Path(rec["path"]), record)
    return record


def _find_model(run: Path) -> Path:
    from edgerep.errors import ModelLoadError

    for cand in (run / "train" / "model", run / "model", run):
        if (cand / MODEL_INFO_FILE).is_file():
            return cand
    raise ModelLoadError(f"{run}: no fine-tuned model (expected {run / 'train' / 'model'}; run `edgerep run` or `edgerep train` first)")


def _models(data_root, teacher: Path, out: Path, config: CompressConfig, layers: tuple[int, ...], val_texts: list[str]) -> dict[str, Path]:
    """``{name: fine-tuned model dir}``: the teacher and each student, vocabulary-pruned."""
    from edgerep.workstation.compress.distill import DistillConfig, distill

    sources = {"teacher": teacher}
    full = int(json.loads((teacher / "config.json").read_text()).get("intermediate_size", 0))
    for k in layers:
        for width in config.ffn_widths or (full,):
            name = f"k{k}" if width == full else f"k{k}-f{width}" + (f"-last{full}" if config.ffn_keep_last else "")
            dcfg = DistillConfig(
                teachers=(str(teacher), *config.teachers),
                layers=k,
                epochs=config.epochs,
                temperature=config.temperature,
                alpha=config.alpha,
                hidden_weight=config.hidden_weight,
                ffn_width=None if width == full else width,
                quant_aware=config.quant_aware,
                limit=config.limit,
                prune_after_epoch=0 if width == full else config.prune_after_epoch,
                ffn_keep_last=config.ffn_keep_last and width != full,
                transfer_text=config.transfer_text,
                source_in_targets=config.run_model_in_targets,
            )
            sources[name] = distill(data_root, out / "distill" / name, dcfg)
    if not config.prune_vocabulary:
        return sources
    from edgerep.data.replab import entity_names, load_texts
    from edgerep.workstation.compress.vocab import prune_checkpoint

    texts = None
    models = {}

    for name, src in sources.items():
        dst = out / "models" / f"{name}-pruned"
        if not (dst / MODEL_INFO_FILE).is_file():
            if texts is None:
                texts = [r.text for r in load_texts(data_root, "training")[0]]
                names = sorted(set(entity_names(data_root).values()))
            entry = prune_checkpoint(src, dst, texts, names, check_texts=val_texts, min_count=config.vocab_min_count)
            log(
                f"prune {name}: vocabulary {entry['original_vocabulary']} -> {entry['kept_vocabulary']} tokens "
                f"({entry['kept_from_corpus']} used by {entry['corpus_texts']} tweets), position rows -> {entry['position_rows']}; "
                f"[UNK] rate on validation {entry['unk_rate']['before']:.4%} -> {entry['unk_rate']['after']:.4%}"
            )
        models[f"{name}-pruned"] = dst
    return models


def _export(models: dict[str, Path], out: Path, config: CompressConfig, validation) -> dict[str, Path]:
    """``{variant: bundle dir}``; variant = ``<model>/<quantization>``, plus ``<student>/onnx-dynamic-int8``.
    ``validation``: the validation part's :class:`~edgerep.data.Samples` (a spread is compared with PyTorch)."""
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import read_model_info

    val = validation.spread(500 if config.limit is None else 50)
    bundles = {}
    for name, path in models.items():
        buckets = step_buckets(int(read_model_info(path)["max_seq_len"]), config.bucket_step) if config.bucket_step else None
        # not strict: a variant beyond its recipe's tolerance (e.g. an int4 embedding table under a
        # student trained in float32) is kept, measured and marked, never recommended
        recipes = config.teacher_quantizations if name.startswith("teacher") and len(models) > 1 else config.quantizations
        for r in export_bundles(path, out / name, list(recipes), val, buckets=buckets, batch_size=1, strict=False):
            bundles[f"{name}/{r.mode}"] = Path(r.path)
            if not r.validation.get("passed", True):
                log(
                    f"[yellow]compress[/]: {name}/{r.mode} is beyond its recipe's tolerance against PyTorch "
                    f"(max |Δlogit| {r.validation['max_abs_logit_diff']:.3f}, label agreement {r.validation['label_agreement']:.2%}); "
                    "measured, marked, not recommended"
                )
        if not name.startswith("teacher") or len(models) == 1:  # ONNX Runtime for the students (or a lone teacher)
            # the model's own graph (what torch.onnx / optimum give ONNX Runtime users), and the
            # LiteRT bundles' [CLS]-only last layer (same MACs: the kernels compared alone)
            for sub, cls_only, suffix in (("", False, ""), (ORT_SAME_GRAPH_DIR, True, ORT_SAME_GRAPH_SUFFIX)):
                for r in export_bundles(
                    path,
                    out / name / sub,
                    [Quantization.DYNAMIC_INT8],
                    val,
                    backend=Backend.ONNXRUNTIME,
                    buckets=buckets,
                    batch_size=1,
                    cls_only=cls_only,
                ):
                    bundles[f"{name}/{r.mode}{suffix}"] = Path(r.path)
    return bundles


def _evaluate(data_root, results: Path, bundles: dict[str, Path], models: dict[str, Path], config: CompressConfig) -> dict[str, dict]:
    from edgerep.measure.evaluate import evaluate, kept_evaluation

    evals = {}
    targets = {**{f"{n}/pytorch": p for n, p in models.items()}, **bundles}
    for variant, path in targets.items():
        rec_path = results / f"evaluation-{variant.replace('/', '--')}.json"
        rec = kept_evaluation(rec_path, path)  # None: the variant was rebuilt since
        if rec is None:
            rec = evaluate(path, data_root, "training", "validation", limit=config.limit and smoke_validation_size(config.limit))
            write_record(rec_path, rec)
        evals[variant] = rec
        m = rec["metrics"]
        log(f"evaluate {variant}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} (n={m['n']})")
    return evals


def _bench(path: Path, bundles: dict[str, Path], teacher: Path, config: CompressConfig, validation) -> dict[str, dict]:
    """Single-tweet latency of every bundle and of the transformers float32 teacher in one
    :func:`edgerep.measure.bench.bench` run; ``{variant or "transformers": cell}``."""
    from edgerep.measure.bench import bench

    rec = read_record(path, "bench") if path.is_file() else None
    wanted = {str(p) for p in bundles.values()} | {str(teacher)}
    if rec is not None and not (wanted <= {c["path"] for c in rec["cells"]} and record_is_current(path, *bundles.values())):
        log(f"compress: {path} lacks some variants or predates them; timing all of them again (figures compared come from one run)")
        rec = None
    if rec is None:
        tweets = validation.spread(config.latency_tweets)
        rec = bench(
            list(bundles.values()),
            tweets.texts,
            threads=(config.threads,),
            profiles=(PROFILES["host"],),
            baseline=teacher,
            warmup=10,
            entities=tweets.entities,
            checkpoint=path.with_suffix(".partial.json"),
        )
        write_record(path, rec)
        path.with_suffix(".partial.json").unlink(missing_ok=True)
    by_path = {str(p): v for v, p in bundles.items()}
    cells = {}
    for c in rec["cells"]:
        if "error" in c:
            log(f"[red]bench {c['path']}[/]: {c['error']}")
            continue
        name = "transformers" if c["kind"] == "pytorch" else by_path.get(c["path"])
        if name:
            cells[name] = c
    return cells


def pareto_front(rows: list[dict], keys: tuple[str, ...] = ("size_mb", "latency_p50_ms", "error")) -> list[bool]:
    """Whether each row is Pareto-optimal: no other row is at least as good in every key (lower
    is better) and better in one."""

    def dominates(a, b):
        return all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)

    return [not any(dominates(o, r) for o in rows if o is not r) for r in rows]


def choose(rows: list[dict], reference: dict, budget: float) -> tuple[dict | None, str]:
    """The recommended row: among LiteRT variants that passed export validation and are within
    ``budget`` of ``reference``'s accuracy
    and macro-F1 (validation split), the fastest (p50 at 1 thread); variants within 5% of that
    latency count as ties, broken by the smaller size. Returns ``(row or None, rule in words)``."""
    rule = (
        f"LiteRT variants within {100 * budget:.1f} points of the fine-tuned float32 model "
        f"(accuracy >= {reference['accuracy'] - budget:.4f}, macro-F1 >= {reference['macro_f1'] - budget:.4f}, validation split); "
        "the fastest p50 at 1 thread, ties within 5% broken by the smaller file"
    )
    ok = [
        r
        for r in rows
        if r["backend"] == "litert"
        and r.get("latency_p50_ms") is not None
        and r.get("validation_passed", True)
        and r["accuracy"] >= reference["accuracy"] - budget
        and r["macro_f1"] >= reference["macro_f1"] - budget
    ]
    if not ok:
        return None, rule + ": none qualifies"
    fastest = min(r["latency_p50_ms"] for r in ok)
    return min((r for r in ok if r["latency_p50_ms"] <= 1.05 * fastest), key=lambda r: (r["size_mb"], r["latency_p50_ms"])), rule


def _reference_evaluation(data_root, run: Path, teacher: Path, config: CompressConfig) -> tuple[dict, Path]:
    """The run's fine-tuned model's evaluation record (``results/evaluation-pytorch.json``; made
    now for an ``edgerep train`` output, which has no results yet) and its path."""
    ref_path = run / "results" / "evaluation-pytorch.json"
    if ref_path.is_file():
        ref_rec = read_record(ref_path, "evaluation")
    else:
        from edgerep.measure.evaluate import evaluate

        ref_rec = evaluate(teacher, data_root, "training", "validation", limit=config.limit and smoke_validation_size(config.limit))
        write_record(ref_path, ref_rec)
    if "predictions" not in ref_rec:
        log(
            f"[yellow]compress[/]: {ref_path} keeps no per-tweet predictions: "
            "no confidence intervals of the differences to it; delete it to evaluate the model again"
        )
    return ref_rec, ref_path


def _variant_row(variant: str, rec: dict, models: dict[str, Path], ref_rec: dict, cells: dict, large_mb: float) -> dict:
    """One row of the compression record: the variant's size, accuracy, paired difference to the
    reference, export validation and bench figures."""
    from edgerep.measure.evaluate import paired_comparison
    from edgerep.measure.metrics import validation_summary
    from edgerep.workstation.models import read_model_info

    model, mode = variant.split("/", 1)
    m = rec["metrics"]
    row = {
        "variant": variant,
        "model": model,
        "quantization": mode,
        "backend": "pytorch" if mode == "pytorch" else ("onnxruntime" if mode.startswith("onnx-") else "litert"),
        "path": rec["model"]["path"],
        "size_mb": rec["model"]["size_mb"],
        "x_smaller_than_bert_large": round(large_mb / rec["model"]["size_mb"], 1),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "negative_f1": m["per_class"]["NEGATIVE"]["f1"],
        "error": round(1 - m["accuracy"], 6),
        "layers": read_model_info(models[model]).get("distillation", {}).get("layers") or _config_value(models[model]),
        "ffn_width": _config_value(models[model], "intermediate_size"),
        "ffn_layer_widths": _layer_widths(models[model]),
    }
    if "filtering" in m:
        row["filtering"] = validation_summary(m)["filtering"]
    vs = paired_comparison(ref_rec, rec)
    if vs is not None:  # other - reference on the same validation tweets, with a paired bootstrap 95% interval
        row["vs_reference"] = vs
    manifest = Path(rec["model"]["path"]) / "manifest.json"
    if row["backend"] != "pytorch" and manifest.is_file():
        row["validation_passed"] = bool(json.loads(manifest.read_text()).get("validation", {}).get("passed", True))
    c, base = cells.get(variant), cells.get("transformers")
    if c is not None:
        row.update(
            latency_p50_ms=c["latency"]["p50_ms"],
            latency_p90_ms=c["latency"]["p90_ms"],
            throughput_tweets_per_s=c["throughput_tweets_per_s"],
            peak_rss_mb=c["peak_rss_mb"],
        )
        if base is not None:
            row["speedup_vs_transformers"] = round(c["throughput_tweets_per_s"] / base["throughput_tweets_per_s"], 2)
    return row


def _record(data_root, run: Path, teacher: Path, models: dict[str, Path], evals: dict, cells: dict, config: CompressConfig) -> dict:
    ref_rec, ref_path = _reference_evaluation(data_root, run, teacher, config)
    reference, ref_source = ref_rec["metrics"], str(ref_path)
    large_mb, large_source = bert_large_mb(run)
    base = cells.get("transformers")
    rows = [_variant_row(variant, rec, models, ref_rec, cells, large_mb) for variant, rec in evals.items()]
    for r in rows:  # vs ONNX Runtime dynamic int8 of the same model, same run: its own graph, and the LiteRT bundles' graph
        for key, quantization in (
            ("speedup_vs_onnxruntime_int8", "onnx-dynamic-int8"),
            ("speedup_vs_onnxruntime_int8_same_graph", "onnx-dynamic-int8" + ORT_SAME_GRAPH_SUFFIX),
        ):
            ort = next((o for o in rows if o["model"] == r["model"] and o["quantization"] == quantization), None)
            if ort is not None and r["backend"] == "litert" and "throughput_tweets_per_s" in r and "throughput_tweets_per_s" in ort:
                r[key] = round(r["throughput_tweets_per_s"] / ort["throughput_tweets_per_s"], 2)
    timed = [r for r in rows if "latency_p50_ms" in r]
    for r, front in zip(timed, pareto_front(timed)):
        r["pareto"] = front
    chosen, rule = choose(rows, reference, config.accuracy_budget)
    if chosen is not None:
        chosen["recommended"] = True
    payload = {
        "run": str(run),
        "config": config.to_dict(),
        "reference": {
            "source": ref_source,
            "accuracy": reference["accuracy"],
            "macro_f1": reference["macro_f1"],
            "negative_f1": reference["per_class"]["NEGATIVE"]["f1"],
        },
        "bert_large_fp32_mb": large_mb,
        "bert_large_source": large_source,
        "paper_target_mb": round(large_mb / PAPER_RATIO, 2),
        "transformers": None
        if base is None
        else {
            "latency_p50_ms": base["latency"]["p50_ms"],
            "throughput_tweets_per_s": base["throughput_tweets_per_s"],
            "peak_rss_mb": base["peak_rss_mb"],
            "size_mb": base["model_size_mb"],
        },
        "models": {name: _model_entry(path) for name, path in models.items()},
        "rows": rows,
        "rule": rule,
        "recommended": chosen
        and {k: chosen[k] for k in ("variant", "path", "size_mb", "accuracy", "macro_f1", "latency_p50_ms", "filtering") if k in chosen},
    }
    return make_record("compression", payload)


def _model_entry(model_dir: Path) -> dict:
    """What a compressed model is: depth, vocabulary pruning, and its distillation (teachers,
    best epoch, the student's own validation figures, minutes)."""
    from edgerep.workstation.models import read_model_info

    info = read_model_info(model_dir)
    d = info.get("distillation")
    return {
        "path": str(model_dir),
        "layers": _config_value(model_dir),
        "ffn_width": _config_value(model_dir, "intermediate_size"),
        "ffn_layer_widths": _layer_widths(model_dir),
        "vocabulary_pruning": info.get("vocabulary_pruning"),
        "distillation": None
        if d is None
        else {
            "teachers": d["teachers"],
            "layer_map": d["layer_map"],
            "temperature": d["temperature"],
            "alpha": d["alpha"],
            "hidden_weight": d.get("hidden_weight", 0.0),
            "quant_aware": d.get("quant_aware"),
            "transfer": d["transfer"],
            "best_epoch": info.get("best_epoch"),
            "validation": info.get("validation"),
            "minutes": round(info.get("train_seconds", 0) / 60, 1),
        },
    }


def _config_value(model_dir: Path, key: str = "num_hidden_layers") -> int | None:
    """An integer of the model's ``config.json`` (default: its depth); ``None`` if unreadable."""
    try:
        return int(json.loads((model_dir / "config.json").read_text())[key])
    except (OSError, ValueError, KeyError):
        return None


def _layer_widths(model_dir: Path) -> list[int] | None:
    """Feed-forward units per layer (``config.json``), ``None`` if unreadable."""
    from edgerep.workstation.compress.prune import ffn_layer_widths

    try:
        return ffn_layer_widths(json.loads((model_dir / "config.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _install_recommended(run: Path, bundle: Path, record: dict) -> None:
    """Copy the recommended bundle to ``RUN/bundles/recommended`` and name it in ``summary.json``."""
    target = run / "bundles" / "recommended"
    with atomic_directory(target, overwrite=True) as tmp:
        for f in bundle.iterdir():
            shutil.copy2(f, tmp / f.name)
    summary = run / "summary.json"
    if summary.is_file():
        rec = read_record(summary, "summary")
        rec["recommended"] = {**record["recommended"], "installed": str(target)}
        write_record(summary, rec)
    log(
        f"[green]compress[/]: recommended {record['recommended']['variant']} "
        f"({record['recommended']['size_mb']:.1f} MB, accuracy {record['recommended']['accuracy']:.4f}) -> {target}"
    )
