"""edgerep: reputation polarity of tweets with quantized transformer classifiers on edge devices.

Layers (folder names say what each may import; a test enforces the device boundary):

* top-level modules — :mod:`edgerep.errors`, :mod:`edgerep.io`, :mod:`edgerep.log`,
  :mod:`edgerep.registry`: shared by all, standard library + rich only;
* :mod:`edgerep.device` — what runs on the board (numpy, tokenizers, ai_edge_litert);
* :mod:`edgerep.data` — the RepLab 2013 corpus (standard library + numpy);
* :mod:`edgerep.measure` — metrics, records, evaluation, benchmark;
* :mod:`edgerep.workstation` — training, export, quantization (the ``[train]`` extra);
* :mod:`edgerep.app` — command line, pipeline, report.

``from edgerep import PolarityClassifier`` loads the light runtime on first use.
"""

__version__ = "0.1.0"

#: Reputation polarity classes, in logit order. Source: RepLab 2013 README, "polarity" field.
LABELS: tuple[str, ...] = ("NEGATIVE", "NEUTRAL", "POSITIVE")

#: The class of tweets that are not about the entity (RepLab 2013 README, "filtering" field).
UNRELATED = "UNRELATED"

#: Classes of a model that also decides relatedness (RepLab's filtering task), in logit order:
#: the polarity classes then :data:`UNRELATED`, one softmax over four. P(related) is
#: ``1 - P(UNRELATED)``; polarity is read from the first three (:func:`edgerep.device.runtime.relatedness_split`).
RELATEDNESS_LABELS: tuple[str, ...] = (*LABELS, UNRELATED)

__all__ = ["LABELS", "RELATEDNESS_LABELS", "UNRELATED", "PolarityClassifier", "Prediction", "__version__"]


def __getattr__(name: str):
    """Lazy exports, so ``import edgerep`` (and the CLI's ``--help``) stays free of numpy and tokenizers."""
    if name in ("PolarityClassifier", "Prediction"):
        from edgerep.device import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'edgerep' has no attribute {name!r}")
