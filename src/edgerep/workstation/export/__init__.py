"""Export of fine-tuned models to validated LiteRT / ONNX Runtime bundles (heavy: torch,
litert-torch, ai-edge-quantizer): :mod:`.convert` (float32 conversion), :mod:`.quantize`
(post-training quantization), :mod:`.validate` (agreement with PyTorch), :mod:`.bundles`
(assembly). The registry of modes and recipes is :mod:`edgerep.registry`.
"""

from edgerep.workstation.export.bundles import ExportResult, default_buckets, export_bundles, parse_buckets, tool_versions
from edgerep.workstation.export.validate import compare_logits, judge

__all__ = ["ExportResult", "compare_logits", "default_buckets", "export_bundles", "judge", "parse_buckets", "tool_versions"]
