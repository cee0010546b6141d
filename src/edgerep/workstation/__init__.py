"""The workstation side (the ``[train]`` extra: torch, transformers, litert-torch,
ai-edge-quantizer): model loading (:mod:`.models`), PyTorch inference (:mod:`.inference`),
fine-tuning (:mod:`.train`), export to bundles (:mod:`.export`) and the quantization matrix
(:mod:`.matrix`).

May import the device side, :mod:`edgerep.data` and :mod:`edgerep.measure`; never the
application layer.
"""
