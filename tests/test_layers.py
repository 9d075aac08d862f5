"""The house's shape: imports run down the declared layers only, without cycles, in modules and functions
small enough to read (README, *Architecture*)."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "streamer"
CLIENT = REPO / "client"  # installed as streamer.client
LAYERS = [  # bottom first; a module may import from its own layer and those below it
    ("streamer",),  # errors, files, the version
    ("streamer.model",),  # metadata: manifest, ModelInfo, vocabulary, geometry and sample rate
    ("streamer.backends",),  # what runs the model: the Backend seam, ONNX Runtime, Triton
    ("streamer.sources", "streamer.text"),  # audio in; CTC decoding and the written form
    ("streamer.core",),  # the sans-I/O stream
    ("streamer.driver",),  # the batcher, the synchronous captioner, offline
    ("streamer.export", "streamer.captions"),  # export tools; caption formats and files
    ("streamer.serve",),  # the caption server
    ("streamer.cli", "streamer.client"),  # the command line and the Python client
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")) + sorted(CLIENT.glob("*.py")):
        root, base = (CLIENT, ["streamer", "client"]) if path.is_relative_to(CLIENT) else (PACKAGE, ["streamer"])
        parts = base + list(path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every streamer module this one imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = package_of(name, path).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t.split(".")[0] == "streamer"}
    return out - {name}


def layer_of(module: str) -> int:
    best = max((prefix for layer in LAYERS for prefix in layer
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def test_imports_run_down_the_layers_without_cycles():
    found = modules()
    graph = {name: imports_of(name, path, set(found)) for name, path in found.items()}
    unknown = {(m, t) for m, targets in graph.items() for t in targets if t not in found}
    assert not unknown, f"imports of modules that do not exist: {sorted(unknown)}"
    upward = sorted((m, t) for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert not upward, "imports that run back up a layer:\n" + "\n".join(f"  {m} -> {t}" for m, t in upward)
    packages = {package_of(name, path) for name, path in found.items()} | {name.rpartition(".")[0] for name in found}
    for name in found:  # every folder has its layer
        layer_of(name)
    assert {p for p in packages if p.count(".") == 1} <= {prefix for layer in LAYERS for prefix in layer}
    cycle = find_cycle(graph)
    assert cycle is None, "an import cycle: " + " -> ".join(cycle)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [node, target] if target in path else [node, target]
            if target not in state and (found := visit(target, path + [node])) is not None:
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])) is not None:
            return cycle
    return None


def test_the_layer_check_finds_an_upward_import_and_a_cycle():
    assert layer_of("streamer.core.stream") < layer_of("streamer.serve.server")
    assert layer_of("streamer.files") == 0 and layer_of("streamer.model.geometry") == 1
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_modules_and_functions_are_small():
    big_modules, big_functions = [], []
    for name, path in modules().items():
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            big_modules.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big_functions.append(f"{name}.{node.name} (line {node.lineno}): {length} lines")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not big_functions, f"functions over {MAX_FUNCTION_LINES} lines: {big_functions}"
