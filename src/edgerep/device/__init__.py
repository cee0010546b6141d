"""The device side: what a Raspberry Pi installs (``pip install edgerep``). Tweet normalization
(:mod:`.text`), tokenization (:mod:`.tokenizer`), the bundle manifest (:mod:`.manifest`), the
LiteRT runtime (:mod:`.runtime`) and the local HTTP API (:mod:`.serve`, the ``[serve]`` extra).

May import: numpy, tokenizers, ai_edge_litert, the top-level modules of :mod:`edgerep` (errors,
io, log, registry) and each other; never torch, transformers, litert_torch, ai_edge_quantizer,
nor edgerep's workstation or application layers (a test enforces it).
"""
