"""The model that ships inside the package: a LiteRT bundle that ``classify``, ``serve`` and
``batch`` use when no bundle is given, so a fresh ``pip install edgerep`` classifies tweets.

The bundle lives in the package data folder ``edgerep/device/default_bundle/`` beside its model
card (``MODEL_CARD.md``), the card's figures as a record (``card.json``) and the evaluation record
they come from (``evaluation.json``). ``card.json`` names the SHA-256 of every bundle file: a
package whose bundle does not match its card is refused (:func:`default_bundle`), never used.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgerep.errors import BundleError
from edgerep.io import sha256_file

#: The package data folder holding the shipped bundle and its card.
DEFAULT_BUNDLE_DIR = Path(__file__).with_name("default_bundle")
#: The files of the shipped bundle whose SHA-256 the card records.
BUNDLE_FILES = ("manifest.json", "model.tflite", "tokenizer.json")
CARD_FILE = "card.json"


class ShippedModelError(BundleError):
    """The shipped bundle is missing from this installation or does not match its card."""


def read_card(folder: Path = DEFAULT_BUNDLE_DIR) -> dict:
    """The shipped bundle's card record (``card.json``: schema ``edgerep.model-card``).

    Returns:
        dict with ``name``, ``sha256`` (file name -> hex SHA-256 for :data:`BUNDLE_FILES`),
        ``made_by`` (command, commit), ``validation`` (per fold: accuracy, macro_f1, per-class F1,
        the evaluation record they come from, and for a fold the bundle itself trained on, the
        same recipe's own models as ``models``) and ``limits``.

    Raises:
        ShippedModelError: the card is missing or is not a JSON object with a ``sha256`` table.
    """
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShippedModelError(
            f"this installation has no shipped model ({path} is missing): give a bundle directory, e.g. runs/default/bundles/recommended"
        ) from None
    except (OSError, ValueError) as exc:
        raise ShippedModelError(f"{path}: not a readable JSON card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), dict):
        raise ShippedModelError(f"{path}: expected a JSON object with a 'sha256' table of the bundle's files")
    return card


def verify_bundle(folder: Path = DEFAULT_BUNDLE_DIR) -> dict:
    """Check every bundle file against the SHA-256 its card records.

    Args:
        folder: the shipped bundle's folder (default: the package's).

    Returns:
        The card (:func:`read_card`).

    Raises:
        ShippedModelError: a file is missing or its SHA-256 differs from the card's.
    """
    card = read_card(folder)
    for name in BUNDLE_FILES:
        path = folder / name
        want = card["sha256"].get(name)
        if not path.is_file():
            raise ShippedModelError(f"the shipped model is incomplete: {path} is missing (reinstall edgerep)")
        got = sha256_file(path)
        if got != want:
            raise ShippedModelError(f"{path}: SHA-256 {got[:12]}... differs from its card's {str(want)[:12]}... (reinstall edgerep)")
    return card


def default_bundle() -> Path:
    """The shipped bundle's folder, checked against its card (:func:`verify_bundle`).

    Returns:
        Path of a bundle directory that :class:`edgerep.device.runtime.PolarityClassifier` loads.

    Raises:
        ShippedModelError: the installation has no shipped model, or its files do not match the card.
    """
    verify_bundle(DEFAULT_BUNDLE_DIR)
    return DEFAULT_BUNDLE_DIR


def resolve_bundle(bundle: Path | None) -> Path:
    """``bundle`` when given, else the shipped one (:func:`default_bundle`).

    Raises:
        ShippedModelError: no bundle given and the shipped one is missing or altered.
    """
    return bundle if bundle is not None else default_bundle()


def _pct(x: float) -> str:
    return f"{x:.4f}"


def render_card(card: dict) -> str:
    """The model card as Markdown (``MODEL_CARD.md``), rendered from the card record.

    Sections follow Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): model
    details, intended use, training data, evaluation, limits.

    Raises:
        KeyError: the card lacks a field the text names (``name``, ``bundle``, ``made_by``,
            ``training_data``, ``validation``, ``limits``, ``sha256``).
    """
    b, made = card["bundle"], card["made_by"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        "<!-- generated from card.json by scripts/ship_model.py; edit card.json, not this file -->",
        "",
        "## Model",
        "",
        f"- Task: reputation polarity of an English tweet for a named entity ({', '.join(b['labels'])}), "
        "RepLab 2013's polarity-for-reputation task.",
        f"- Bundle: {b['variant']}, {b['quantization']} LiteRT FlatBuffer of {b['size_mb']:.2f} MB ({b['files_mb']:.2f} MB with its tokenizer and manifest), "
        f"{b['parameters'] / 1e6:.1f}M parameters, {b['layers']} encoder layers, vocabulary {b['vocab_size']:,} tokens, "
        f"at most {b['max_seq_len']} tokens per (entity, tweet) pair.",
        f"- Teacher: {card['teacher']}.",
        f"- Made by: `{made['command']}` at commit `{made['commit']}` ({made['date']}).",
        "",
        "## Intended use",
        "",
        "Classify tweets about an entity one by one or as an archive, on a workstation or an edge device "
        "(`edgerep classify`, `serve`, `batch` use this bundle when no other is given). "
        "Every tweet needs the entity it is about (`--entity`).",
        "",
        "## Training data",
        "",
        *[f"- {line}" for line in card["training_data"]],
        "",
        "## Validation",
        "",
        "| fold | validation tweets | period | accuracy | macro-F1 | NEGATIVE F1 | NEUTRAL F1 | POSITIVE F1 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for fold, v in card["validation"].items():
        f1 = v["f1"]
        lines.append(
            f"| {fold} | {v['n']:,} | {v['period']} | {_pct(v['accuracy'])} | {_pct(v['macro_f1'])} | "
            f"{_pct(f1['NEGATIVE'])} | {_pct(f1['NEUTRAL'])} | {_pct(f1['POSITIVE'])} |"
        )
    own = [f"{fold.capitalize()}: {v['models']}." for fold, v in card["validation"].items() if v.get("models")]
    for note in [*own, *card.get("validation_notes", [])]:
        lines += ["", note]
    lines += ["", "## Limits", "", *[f"- {line}" for line in card["limits"]], ""]
    lines += ["## Files", "", "| file | SHA-256 |", "|---|---|"]
    lines += [f"| `{name}` | `{digest}` |" for name, digest in sorted(card["sha256"].items())]
    return "\n".join(lines) + "\n"
