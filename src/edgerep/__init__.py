"""edgerep: reputation polarity of tweets with quantized transformer classifiers on edge devices.

The package is split along the device boundary:

* light (runs on the device; imports numpy, ``tokenizers`` and ``ai_edge_litert`` only):
  :mod:`edgerep.text`, :mod:`edgerep.tokenization`, :mod:`edgerep.manifest`,
  :mod:`edgerep.runtime`, :mod:`edgerep.metrics`, :mod:`edgerep.data`, :mod:`edgerep.results`;
* heavy (workstation; needs the ``train`` extra: torch, transformers, litert-torch,
  ai-edge-quantizer): :mod:`edgerep.models`, :mod:`edgerep.train`, :mod:`edgerep.export`.
"""

__version__ = "0.1.0"

#: Reputation polarity classes, in logit order. Source: RepLab 2013 README, "polarity" field.
LABELS: tuple[str, ...] = ("NEGATIVE", "NEUTRAL", "POSITIVE")
