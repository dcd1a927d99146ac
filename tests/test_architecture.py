"""The layers of docs/architecture.md hold: imports run one way, with no circle, at module level.

Data flows files -> samples -> dataset -> masks -> model -> metrics -> report, and imports follow
it: a module may import its own layer and the layers below, never one above.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module belongs to the first entry that is it or a package above it
LAYERS = [
    ("foundations", ["limssr.atomic", "limssr.subsets", "limssr.metrics", "limssr.sequence", "limssr.config",
                     "limssr.checkpoint", "limssr.precision", "limssr.compat", "limssr.environment"]),
    ("blocks", ["limssr.layers", "limssr.losses", "limssr.attention", "limssr.kernels"]),
    ("data", ["limssr.data"]),
    ("extract", ["limssr.extract"]),  # video files -> features in the data layout
    ("masks", ["limssr.masking"]),
    ("backbone", ["limssr.backbone"]),
    ("methods", ["limssr.methods"]),
    ("training", ["limssr.training"]),
    ("evaluation", ["limssr.evaluation", "limssr.conformal", "limssr.trust", "limssr.report", "limssr.aggregate",
                    "limssr.paired", "limssr.export",
                    "limssr.plots"]),
    ("runs", ["limssr.runs", "limssr.scorer", "limssr.benchmark", "limssr.paper_tables", "limssr.speed"]),
    ("interfaces", ["limssr.api", "limssr.cli", "limssr"]),
]
# a local import is allowed only for these (why: see the comment beside each)
LOCAL_OK = {
    ("limssr.methods.registry", "importlib"),  # methods register on first use, by module name
    ("limssr.cli", "*"),  # each verb imports what it runs, so `limssr --help` starts in a blink
    ("limssr", "*"),  # the package exports the API lazily, for the same reason
}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "limssr").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer_of(name: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            covers = name == p or (name.startswith(p + ".") and p != "limssr")  # the package: its __init__ only
            if covers and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"module {name} is in no layer of tests/test_architecture.py"
    return best[0]


def imports(name: str, path: Path, known: dict) -> list[tuple[str, int, bool]]:
    """(imported limssr module, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, not nested) for a in child.names if a.name.startswith("limssr"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([child.module] if child.module else []))
                if base.startswith("limssr"):
                    for a in child.names:  # `from pkg import submodule` imports the submodule
                        target = f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                        found.append((target, child.lineno, not nested))
            elif isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            else:
                visit(child, inner if not isinstance(child, ast.ClassDef) else nested)

    visit(tree, False)
    return found


def graph():
    known = modules()
    return known, {n: imports(n, p, known) for n, p in known.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_import_runs_up_the_layers():
    known, edges = graph()
    upward = [f"{known[n].relative_to(SRC)}:{line}: {n} ({LAYERS[layer_of(n)][0]}) imports {t} "
              f"({LAYERS[layer_of(t)][0]})"
              for n, targets in edges.items() for t, line, _ in targets
              if t in known and layer_of(t) > layer_of(n)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    known, edges = graph()
    adj = {n: sorted({t for t, _, top in targets if t in known and t != n}) for n, targets in edges.items()}
    state, stack, circles = {}, [], []

    def dfs(n):
        state[n] = 1
        stack.append(n)
        for t in adj[n]:
            if state.get(t) == 1:
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                dfs(t)
        stack.pop()
        state[n] = 2

    for n in adj:
        if n not in state:
            dfs(n)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_imports_are_at_module_level():
    known, edges = graph()
    local = [f"{known[n].relative_to(SRC)}:{line}: {n} imports {t} inside a function"
             for n, targets in edges.items() for t, line, top in targets
             if not top and (n, "*") not in LOCAL_OK and (n, t) not in LOCAL_OK]
    assert not local, "local imports (move them to the top, or say why in LOCAL_OK):\n" + "\n".join(local)
