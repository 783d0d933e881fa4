"""The architecture, checked on the source: imports run one way, with no cycle anywhere in the three
packages (imports inside functions count), the floors hold, and no hand-written function is long."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("device_bench", "converters", "edgekit")
GENERATED = {"device_bench.metadata_schema_py_generated"}  # flatc's output, regenerated, never edited
# What each floor may import of the others (DESIGN: device_bench <- converters <- edgekit).
FLOORS = {"device_bench": set(), "converters": {"device_bench"}, "edgekit": {"device_bench", "converters"}}
MAX_FUNCTION_LINES = 60


def _modules():
    """Module name -> parsed AST for every .py file of the three packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = (path, ast.parse(path.read_text(), str(path)))
    return out


def _imports(name, tree, known, is_package):
    """The project modules ``name`` imports, anywhere in its body (relative imports resolved)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(anchor[:len(anchor) - node.level + 1] + ([base] if base else []))
            # `from package import module` depends on the module; `from module import name` on the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = _modules()
    return {name: _imports(name, tree, modules, path.name == "__init__.py")
            for name, (path, tree) in modules.items()}


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ may import its own submodules; a submodule importing its package's __init__
    # back is the cycle that counts
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_floors_hold():
    bad = [(m, t) for m, targets in import_graph().items() for t in targets
           if t.split(".")[0] != m.split(".")[0] and t.split(".")[0] not in FLOORS[m.split(".")[0]]]
    assert bad == []


def test_only_the_cli_imports_the_facade():
    importers = sorted(m for m, targets in import_graph().items()
                       if "edgekit.api" in targets and m not in ("edgekit", "edgekit.cli"))
    assert importers == []


def test_no_long_functions():
    long = []
    for name, (path, tree) in _modules().items():
        if name in GENERATED:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_public_api_is_typed():
    """mypy passes on the public modules and the records (py.typed promises annotations to users' checkers)."""
    from mypy import api
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
                                str(ROOT / "edgekit" / "api.py"), str(ROOT / "edgekit" / "conversion.py"),
                                str(ROOT / "device_bench" / "api.py"),
                                str(ROOT / "device_bench" / "records.py")])
    assert status == 0, out + err
    assert (ROOT / "edgekit" / "py.typed").is_file()


def test_the_lazy_facade_names_the_api():
    """edgekit/__init__ lists the facade without importing it (a fast --help): the list must be api's own."""
    import edgekit
    import edgekit.api
    assert set(edgekit._FACADE) == set(edgekit.api.__all__)
    assert all(callable(getattr(edgekit, name)) for name in edgekit._FACADE)
