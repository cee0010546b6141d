"""The published tables against their records, and the documentation's house rules."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _render_module():
    spec = importlib.util.spec_from_file_location("render_tables", REPO / "scripts" / "render_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_published_table_matches_its_record():
    """Like a lock file: a table edited by hand, or a record changed without rendering, fails."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "render_tables.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_changed_record_is_caught_and_rendered(tmp_path):
    R = _render_module()
    records = tmp_path / "records"
    shutil.copytree(REPO / "docs" / "records", records)
    readme = (REPO / "README.md").read_text()
    assert "<!-- table: headline -->" in readme and R.update(readme, records) == readme
    rec = json.loads((records / "headline.json").read_text())
    rec["rows"][0][3] = "0.9999"
    (records / "headline.json").write_text(json.dumps(rec))
    changed = R.update(readme, records)
    assert changed != readme and "| **0.9999** |" in changed


def test_a_malformed_record_names_file_and_field(tmp_path):
    R = _render_module()
    (tmp_path / "bad.json").write_text(json.dumps({"schema": R.SCHEMA, "title": "t", "caption": "c", "machine": "m",
                                                   "date": "d", "source": "s", "columns": ["a", "b"], "rows": [["1"]]}))
    with pytest.raises(R.RecordError, match=r"bad\.json: rows\[0\] has 1 cells, columns has 2"):
        R.load("bad", tmp_path)
    with pytest.raises(R.RecordError, match=r"missing\.json: no such record"):
        R.load("missing", tmp_path)


def test_every_table_states_its_machine():
    for path in sorted((REPO / "docs" / "records").glob("*.json")):
        rec = json.loads(path.read_text())
        assert rec["machine"].strip() and rec["date"].strip(), path.name


HISTORY = re.compile(r"\bsession[- ]\d+|\bissue \d+|\bREADME command 1\b|\bclean clone at [0-9a-f]{7}")


def test_readme_is_for_users_and_no_page_or_source_narrates_history():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 400
    files = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "src").rglob("*.py"),
             *(REPO / "tests").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    hits = [f"{p.relative_to(REPO)}:{n}: {m.group(0)}" for p in files if p.name != "test_docs.py"
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) for m in [HISTORY.search(line)] if m]
    assert hits == []
