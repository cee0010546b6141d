"""Where a bundle's memory and time go on this CPU: peak-RSS breakdown, MACs per tweet, achieved
GMAC/s next to this CPU's measured int8 (and float32) peak.

    python benchmarks/runtime_profile.py runs/default/bundles/recommended runs/default/bundles/dynamic-int8 \\
        --data ../shared/data/replab2013 --out runs/profile.json

For each bundle:

* **memory**: a fresh process (``python -c``) that imports and loads step by step, reading
  ``VmRSS`` of ``/proc/self/status`` after each step: interpreter start, numpy, tokenizers,
  ai_edge_litert, edgerep's runtime modules, the tokenizer file, the LiteRT model (file mapped),
  ``allocate_tensors`` (XNNPACK packs the weights of every signature), the first inference, and
  classifying the timed tweets; the last line is the peak (``VmHWM``).
* **compute**: multiply-accumulates per tweet counted from the architecture (config.json of the
  bundle's source) and the bucket width each tweet runs at: per layer ``4 L H^2`` (Q, K, V,
  attention output) ``+ 2 L H I`` (feed-forward) ``+ 2 L^2 H`` (scores and weighted sum), plus
  the pooler ``H^2`` and head; in a bundle whose ``source.graph`` is ``cls-only-last-layer`` the
  last layer counts ``2 L H^2`` (keys, values) ``+ 2 H^2 + 2 H I`` (query, output, feed-forward
  of [CLS]) ``+ 2 L H`` (its scores and weighted sum); achieved GMAC/s = MACs of the timed tweets / their time, single
  tweets at 1 thread (the runtime's own path).
* **peak**: one fully-connected layer [256 x 1024] x [1024 x 4096] (1.07 GMAC) converted with
  litert-torch and quantized with the same ai_edge_quantizer recipes, timed in LiteRT at
  1 thread: the practical peak of XNNPACK's kernels on this CPU (int8: ``dynamic_wi8_afp32``;
  int4: ``dynamic_wi4_afp32``; float32).

Needs the ``[train]`` extra for the peak measurement (litert-torch, ai-edge-quantizer).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_MEMORY_PROBE = r'''
import json, sys, time
def rss():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1000
    return out
steps = [("python interpreter", rss())]
import numpy; steps.append(("import numpy", rss()))
import tokenizers; steps.append(("import tokenizers", rss()))
from ai_edge_litert.interpreter import Interpreter; steps.append(("import ai_edge_litert", rss()))
from edgerep.device import runtime; steps.append(("import edgerep.device.runtime", rss()))
bundle, texts, entities = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
from edgerep.device.manifest import Manifest
from edgerep.device.tokenizer import TweetTokenizer
m = Manifest.read(bundle)
tok = TweetTokenizer(f"{bundle}/tokenizer.json", m.max_seq_len, m.entity_conditioned); steps.append(("tokenizer.json loaded", rss()))
it = Interpreter(model_path=f"{bundle}/{m.model_file}", num_threads=1); steps.append(("LiteRT model loaded", rss()))
it.allocate_tensors(); steps.append(("allocate_tensors (XNNPACK packs weights)", rss()))
del it, tok
clf = runtime.PolarityClassifier(bundle, num_threads=1); steps.append(("PolarityClassifier (reuses the memory freed above)", rss()))
clf.logits(texts[:1], entities=entities[:1] if m.entity_conditioned else None); steps.append(("first inference", rss()))
clf.logits(texts, entities=entities if m.entity_conditioned else None); steps.append((f"{len(texts)} tweets classified", rss()))
print(json.dumps(steps))
'''


def memory_breakdown(bundle: Path, texts: list[str], entities: list[str]) -> list[dict]:
    """RSS (MB) after each loading step in a fresh process (see the module docstring)."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(bundle), json.dumps(texts), json.dumps(entities)],
                         capture_output=True, text=True, check=True)
    steps = json.loads(out.stdout.strip().splitlines()[-1])
    rows, prev = [], 0.0
    for name, r in steps:
        rows.append({"step": name, "rss_mb": round(r["VmRSS"], 1), "delta_mb": round(r["VmRSS"] - prev, 1), "peak_mb": round(r["VmHWM"], 1)})
        prev = r["VmRSS"]
    return rows


def macs_per_tweet(config: dict, width: int, num_labels: int = 3, cls_only: bool = False) -> int:
    """Multiply-accumulates of one BERT-family forward pass at sequence length ``width`` (see the
    module docstring; MobileBERT counts its true hidden and bottleneck sizes the same way);
    ``cls_only``: the last layer computed for [CLS] only. Per-layer feed-forward widths
    (``ffn_layer_widths``, a student whose last layer kept its units) are counted layer by layer."""
    from edgerep.workstation.compress.prune import ffn_layer_widths

    h = int(config["hidden_size"])
    widths = ffn_layer_widths(config)
    if config.get("model_type") == "mobilebert":
        h = int(config.get("intra_bottleneck_size", h)) if config.get("use_bottleneck", True) else h
        widths = [w * int(config.get("num_feedforward_networks", 1)) for w in widths]

    def layer(i: int) -> int:
        return 4 * width * h * h + 2 * width * h * i + 2 * width * width * h

    last = 2 * width * h * h + 2 * h * h + 2 * h * widths[-1] + 2 * width * h if cls_only else layer(widths[-1])
    return sum(layer(i) for i in widths[:-1]) + last + h * h + h * num_labels


def achieved(bundle: Path, texts: list[str], entities: list[str], repeats: int = 3) -> dict:
    """Time single tweets through the runtime at 1 thread; MACs from the bundle's architecture."""
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.workstation.models import GRAPH_CLS_ONLY, GRAPH_FULL

    clf = PolarityClassifier(bundle, num_threads=1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    config = json.loads((Path(manifest["source"]["path"]) / "config.json").read_text())
    buckets = manifest.get("buckets") or [manifest["max_seq_len"]]
    lengths = clf.tokenizer.token_lengths(texts, entities if clf.entity_conditioned else None)
    widths = [next(b for b in buckets if b >= min(n, manifest["max_seq_len"])) for n in lengths]
    cls_only = manifest["source"].get("graph") == GRAPH_CLS_ONLY
    macs = sum(macs_per_tweet(config, w, cls_only=cls_only) for w in widths)
    names = entities if clf.entity_conditioned else None
    for k in range(10):
        clf.logits(texts[k : k + 1], entities=None if names is None else names[k : k + 1])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k in range(len(texts)):
            clf.logits(texts[k : k + 1], entities=None if names is None else names[k : k + 1])
        best = min(best, time.perf_counter() - t0)
    return {"tweets": len(texts), "mean_width": round(float(np.mean(widths)), 1), "gmac_per_tweet": round(macs / len(texts) / 1e9, 4),
            "ms_per_tweet": round(1e3 * best / len(texts), 3), "achieved_gmac_per_s": round(macs / best / 1e9, 1),
            "graph": manifest["source"].get("graph", GRAPH_FULL), "layers": config["num_hidden_layers"], "hidden": config["hidden_size"], "intermediate": config.get("ffn_layer_widths") or config["intermediate_size"]}


def kernel_peak(rows: int = 256, k: int = 1024, n: int = 4096, repeats: int = 20) -> dict:
    """GMAC/s of one [rows x k] x [k x n] fully-connected layer in LiteRT at 1 thread per recipe."""
    import torch
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    from edgerep.log import native_output_captured

    torch.manual_seed(0)
    layer = torch.nn.Linear(k, n).eval()
    x = torch.randn(1, rows, k)
    out = {}
    with tempfile.TemporaryDirectory() as d, native_output_captured():
        fp = Path(d) / "fc.tflite"
        litert_torch.convert(layer, (x,)).export(str(fp))
        paths = {"float32": fp}
        for name, rec in (("int8 (dynamic_wi8_afp32)", recipe.dynamic_wi8_afp32()), ("int4 (dynamic_wi4_afp32)", recipe.dynamic_wi4_afp32())):
            q = quantizer.Quantizer(str(fp))
            q.load_quantization_recipe(rec)
            p = Path(d) / f"{name.split()[0]}.tflite"
            p.write_bytes(bytes(q.quantize().quantized_model))
            paths[name] = p
        for name, p in paths.items():
            it = Interpreter(model_path=str(p), num_threads=1)
            it.allocate_tensors()
            inp = it.get_input_details()[0]["index"]
            it.set_tensor(inp, x.numpy())
            for _ in range(3):
                it.invoke()
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                it.invoke()
                ts.append(time.perf_counter() - t0)
            out[name] = round(rows * k * n / float(np.median(ts)) / 1e9, 1)
    return {"shape": [rows, k, n], "gmac_per_s": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path, help="bundle directories (LiteRT)")
    ap.add_argument("--data", type=Path, required=True, help="RepLab 2013 corpus root (validation tweets are timed)")
    ap.add_argument("--tweets", type=int, default=200, help="validation tweets timed per bundle")
    ap.add_argument("--out", type=Path, help="write the record here (JSON)")
    args = ap.parse_args(argv)

    from edgerep.data import sample_texts
    from edgerep.measure.records import make_record, write_record

    tweets = sample_texts(args.data, "validation", args.tweets)
    entities = tweets.entities or ["unknown"] * len(tweets)
    rec = {"kernel_peak": kernel_peak(), "bundles": []}
    peak8 = rec["kernel_peak"]["gmac_per_s"]["int8 (dynamic_wi8_afp32)"]
    print(f"kernel peak at 1 thread (GMAC/s): {rec['kernel_peak']['gmac_per_s']}")
    for b in args.bundles:
        mem = memory_breakdown(b, tweets.texts, entities)
        comp = achieved(b, tweets.texts, entities)
        comp["share_of_int8_peak"] = round(comp["achieved_gmac_per_s"] / peak8, 2)
        rec["bundles"].append({"bundle": str(b), "memory": mem, "compute": comp})
        print(f"\n## {b}\n\n| step | RSS MB | delta MB |\n|---|---:|---:|")
        for r in mem:
            print(f"| {r['step']} | {r['rss_mb']:.1f} | {r['delta_mb']:+.1f} |")
        print(f"| peak (VmHWM) | {mem[-1]['peak_mb']:.1f} | |")
        print(f"\ncompute: {comp}")
    if args.out:
        write_record(args.out, make_record("runtime_profile", rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
