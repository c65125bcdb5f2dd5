"""The package's layering: each module imports only modules earlier in the data flow."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sonotype"

#: the data flow, earliest first (README: io -> features -> model -> train/detect -> store -> analysis ->
#: report -> web/cli)
ORDER = ["errors", "params", "units", "runtime", "io", "resample", "features", "pooling", "features_torch", "model",
         "sharedconv", "checkpoint", "metrics", "dataset", "augment", "framebank", "train", "embed", "infer", "backends",
         "distill", "finetune", "regions", "events", "detector", "evaluate", "detect", "store",
         "batch", "raydetect", "parallel", "export",
         "synth", "dtw", "sequences", "cluster", "agreement", "maps", "search", "clustereval", "discover",
         "curation", "render", "report", "config", "api", "web", "demo", "cli"]


def top_module(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(path: Path) -> set[str]:
    """sonotype top-level modules imported by ``path`` (relative or absolute imports, anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth_of_pkg = len(path.relative_to(SRC).parts) - 1  # 0 for sonotype/x.py, 1 for sonotype/pkg/x.py
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] == "sonotype" and len(parts) > 1:
                    out.add(parts[1])
            elif node.level == depth_of_pkg + 1:  # relative to the sonotype package itself
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sonotype."))
    return out


def test_every_module_is_placed_in_the_order():
    modules = {top_module(p) for p in SRC.rglob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(ORDER), sorted(modules - set(ORDER))


def test_modules_import_only_earlier_ones():
    rank = {m: i for i, m in enumerate(ORDER)}
    bad = []
    for p in sorted(SRC.rglob("*.py")):
        me = top_module(p)
        if me in ("__init__", "__main__"):
            continue
        for other in imported(p) - {me, "__version__"}:
            if other in rank and rank[other] >= rank[me]:
                bad.append(f"{p.relative_to(SRC)} imports {other}")
    assert bad == []


def test_only_the_report_imports_matplotlib_and_only_the_store_a_database_driver():
    for p in SRC.rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        if top_module(p) != "report":
            assert "import matplotlib" not in text and "from matplotlib" not in text, p
        if top_module(p) != "store":
            assert "sqlalchemy" not in text.lower() and "psycopg" not in text, p
