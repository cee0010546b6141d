"""``edgerep report``: built from real evaluation/bench records of the tiny model; rendered in
headless Chromium (skipped, with the reason, where Chromium is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import run_cli
from edgerep.errors import ConfigError
from edgerep.app.report import build_report
from edgerep.app.report.build import BERT_LARGE_FP32_MB_ESTIMATE
from edgerep.measure.records import write_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, tiny_bundles, tiny_model, data_root, validation_texts):
    """A run-shaped results directory: two evaluations, one bench record, bundle manifests."""
    from edgerep.measure.bench import bench
    from edgerep.registry import PROFILES
    from edgerep.measure.evaluate import evaluate

    root = tmp_path_factory.mktemp("results")
    for name, path in (("pytorch", tiny_model), ("dynamic-int8", tiny_bundles["dynamic-int8"])):
        write_record(root / "results" / f"evaluation-{name}.json", evaluate(path, data_root, "training", limit=120))
    rec = bench([tiny_bundles["fp32"], tiny_bundles["dynamic-int8"]], validation_texts[:8], threads=[1], profiles=[PROFILES["host"], PROFILES["rpi4"]], warmup=1)
    write_record(root / "bench" / "bench.json", rec)
    for mode in ("fp32", "dynamic-int8"):
        shutil.copytree(tiny_bundles[mode], root / "bundles" / mode)
    return root


@pytest.fixture(scope="module")
def report(results_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    return out, build_report([results_dir], out)


def test_report_tables_and_figures_come_from_the_records(results_dir, report):
    out, info = report
    assert info["records"] == 5 and info["skipped"] == []
    md = (out / "report.md").read_text()
    for section in ("## Accuracy", "## Footprint", "## Latency, throughput and memory"):
        assert section in md
    ev = json.loads((results_dir / "results" / "evaluation-dynamic-int8.json").read_text())
    row = next(ln for ln in md.splitlines() if "| litert | dynamic-int8 |" in ln)
    assert f"| {ev['metrics']['accuracy']:.4f} | {ev['metrics']['macro_f1']:.4f} |" in row
    size = (results_dir / "bundles" / "dynamic-int8" / "model.tflite").stat().st_size / 1e6
    assert re.search(rf"\| {size:.1f} \| {BERT_LARGE_FP32_MB_ESTIMATE / size:.1f} \|", md)  # footprint ratio to BERT-large
    bench = json.loads((results_dir / "bench" / "bench.json").read_text())
    cell = next(c for c in bench["cells"] if c["profile"]["profile"] == "rpi4" and c["quantization"] == "dynamic-int8")
    assert f"| {cell['latency']['p50_ms']:.2f} ± {cell['latency']['mad_ms']:.2f} | {cell['latency']['p90_ms']:.2f} |" in md
    import matplotlib.image as mpimg

    names = {p.name for p in (out / "figures").iterdir()}
    assert names == {"accuracy_vs_size.png", "confusion_matrices.png", "footprint.png", "latency.png", "throughput.png"}
    for n in names:
        img = mpimg.imread(out / "figures" / n)
        assert img.shape[0] > 100 and img.shape[1] > 100 and np.std(img[..., :3]) > 0.05  # a drawing, not a blank
        assert f"figures/{n}" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "src=\"figures/" not in html  # self-contained
    assert html.count("<table>") >= 4 and 'style="text-align:right"' in html  # markdown-it tables, numbers right-aligned


def test_report_errors_and_skips(tmp_path, results_dir):
    with pytest.raises(ConfigError, match="no edgerep results under"):
        build_report([tmp_path], tmp_path / "r")
    with pytest.raises(ConfigError, match="results directory not found"):
        build_report([tmp_path / "missing"], tmp_path / "r")
    d = tmp_path / "mixed"
    shutil.copytree(results_dir / "results", d / "results")
    rec = json.loads((d / "results" / "evaluation-pytorch.json").read_text())
    (d / "results" / "future.json").write_text(json.dumps({**rec, "schema_version": 99}))
    (d / "results" / "bench.json.partial").write_text("{}")  # not *.json: ignored
    (d / "results" / "broken.json").write_text("{not json")
    info = build_report([d], tmp_path / "r")
    assert info["records"] == 2
    assert any("schema_version 99 is newer" in s for s in info["skipped"]) and any("not valid JSON" in s for s in info["skipped"])
    proc = run_cli("report", str(tmp_path / "missing"), "-o", str(tmp_path / "r2"))
    assert proc.returncode == 1 and b"results directory not found" in proc.stderr and b"Traceback" not in proc.stderr
    assert not (tmp_path / "r2").exists()
    with pytest.raises(ConfigError, match="not a previous report; refusing to replace it"):
        build_report([d], d)  # -o pointing at a results directory must not wipe it
    assert (d / "results" / "evaluation-pytorch.json").is_file()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (CI installs Debian's chromium)")
def test_html_report_renders_in_headless_chromium(report, tmp_path):
    out, info = report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count("<table") >= 4 and dom.count("<img") == len(info["figures"]) and "<h2>Accuracy</h2>" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    import matplotlib.image as mpimg

    px = mpimg.imread(shot)[..., :3]
    assert px.shape[:2] == (2400, 1280)
    colourful = (px.max(axis=2) - px.min(axis=2)) > 0.25  # the plots are the only saturated colour on the page
    assert colourful.mean() > 0.01, "no plot pixels in the screenshot: images did not decode"


def test_markdown_and_html_rendering_escape_and_align():
    from edgerep.app.report.render import Section, Table, markdown_table, to_html

    md = markdown_table(["model", "MB", "note"], [["a|b", "26.6", "x"], ["c", "–", "y"]])
    assert md.splitlines()[1] == "|---|---:|---|" and "a\\|b" in md  # numeric column right-aligned, pipes escaped
    page = to_html("<script>alert(1)</script>", [Section("S <b>", ["text with <img src=x onerror=alert(1)>", Table(["h"], [["<i>x</i>"]])])])
    assert "<script>" not in page and "<img src=x" not in page and "&lt;i&gt;x&lt;/i&gt;" in page
