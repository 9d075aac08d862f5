"""No test module imports another test module or conftest, at the top or inside a function: what tests
share lives in tests/helpers.py (issue 27)."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def is_test_module(name: str) -> bool:
    top = name.split(".")[0]
    return top == "conftest" or top.startswith("test_")


def imported_test_modules(source: str) -> list[str]:
    """Every test module or conftest the source imports, anywhere in it (`import`, `from … import`, and
    importlib.import_module or __import__ of a literal name)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and is_test_module(node.module):
            found.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "__import__") and is_test_module(str(node.args[0].value)):
                found.append(node.args[0].value)
    return found


def test_no_test_module_imports_another():
    offenders = {path.name: names for path in sorted(TESTS.rglob("*.py"))
                 if (names := imported_test_modules(path.read_text(encoding="utf-8")))}
    assert offenders == {}, f"move what they share into tests/helpers.py: {offenders}"


def test_the_check_sees_imports_inside_functions():
    source = '''
import numpy
from helpers import start_server

def test_something():
    from test_broadcast import speech_file
    import conftest
    import importlib
    importlib.import_module("test_subtitle")
'''
    assert imported_test_modules(source) == ["test_broadcast", "conftest", "test_subtitle"]
