"""The package's layering: packages follow the pipeline, and each module imports only modules earlier in it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sonotype"

#: the data flow, earliest first: audio -> features -> models -> training -> detection -> store -> runner ->
#: discovery -> report -> web -> api/demo/cli. Within a package, its modules in their own order.
ORDER = [
    "errors", "params", "units", "runtime", "tables",
    "audio.span", "audio.io", "audio.resample", "audio.synth",
    "features.frontend", "features.pooling", "features.torch_frontend", "features.render",
    "models.localconv", "models.lstm_v3", "models.sharedconv", "models.checkpoint", "models.embed", "models.infer",
    "models.backends.base", "models.backends.birdnet", "models.backends.lstm", "models.backends",
    "training.metrics", "training.dataset", "training.augment", "training.framebank", "training.train",
    "training.distill", "training.finetune",
    "detection.regions", "detection.events", "detection.detector", "detection.crossval", "detection.backend",
    "detection.fusion", "detection.evaluate",
    "detection.detect",
    "store.queries", "store.rows", "store.db", "store.base", "store.detections", "store.discovery", "store.curation",
    "store.store", "store", "store.export",
    "runner.batch", "runner.ray_cluster", "runner.parallel",
    "discovery.dtw", "discovery.sequences", "discovery.cluster", "discovery.agreement", "discovery.maps",
    "discovery.search", "discovery.clustereval", "discovery.discover", "discovery.curation",
    "report._plot", "report._render", "report.figures", "report.maps", "report.model_report", "report",
    "report.build",
    "config", "api",
    "web.context", "web.schemas", "web.api", "web.edit", "web.media", "web.pages", "web.app", "web",
    "demo", "cli",
]


def module_of(path: Path) -> str:
    """'features.frontend' for src/sonotype/features/frontend.py; 'store' for src/sonotype/store/__init__.py."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> list[str]:
    return list(path.relative_to(SRC).parts)[:-1]


def _exists(dotted: str) -> bool:
    p = SRC.joinpath(*dotted.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def imported(path: Path) -> set[str]:
    """sonotype modules (dotted, without 'sonotype.') imported by ``path``, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = package_of(path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "sonotype":
                    continue
                base = parts[1:]
            else:
                base = pkg[: len(pkg) - node.level + 1] + (node.module.split(".") if node.module else [])
            for a in node.names:  # `from .pkg import module` names a module; else the module itself
                full = ".".join(base + [a.name])
                out.add(full if _exists(full) else ".".join(base))
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".", 1)[1] for a in node.names if a.name.startswith("sonotype."))
    return {m for m in out if m}


def _modules() -> dict[str, Path]:
    return {module_of(p): p for p in SRC.rglob("*.py") if p.name != "__main__.py" and module_of(p)}


def _rank(name: str, rank: dict[str, int]) -> int | None:
    """A listed module's rank; an unlisted package's is that of its last listed module (its __init__ re-exports)."""
    if name in rank:
        return rank[name]
    inside = [r for m, r in rank.items() if m.startswith(name + ".")]
    return max(inside) if inside else None


def test_every_module_is_placed_in_the_order():
    unplaced = [m for m, p in _modules().items() if m not in ORDER and p.name != "__init__.py"]
    assert unplaced == []
    assert len(set(ORDER)) == len(ORDER)


def test_packages_are_contiguous_in_the_order():
    seen, bad = [], []
    for top in (m.split(".")[0] for m in ORDER):
        if seen and seen[-1] == top:
            continue
        if top in seen:
            bad.append(top)
        seen.append(top)
    assert bad == []


def test_modules_import_only_earlier_ones():
    rank = {m: i for i, m in enumerate(ORDER)}
    bad = []
    for me, p in sorted(_modules().items()):
        mine = _rank(me, rank)
        for other in imported(p) - {me}:
            if p.name == "__init__.py" and other.startswith(me + "."):
                continue  # a package's __init__ re-exports its own modules
            theirs = _rank(other, rank)
            if theirs is not None and mine is not None and theirs >= mine:
                bad.append(f"{p.relative_to(SRC)} imports {other}")
    assert bad == []


def test_only_the_report_imports_matplotlib_and_only_the_store_a_database_driver():
    for p in SRC.rglob("*.py"):
        top = p.relative_to(SRC).parts[0]
        text = p.read_text(encoding="utf-8")
        if top != "report":
            assert "import matplotlib" not in text and "from matplotlib" not in text, p
        if top != "store":
            assert "sqlalchemy" not in text.lower() and "psycopg" not in text, p
