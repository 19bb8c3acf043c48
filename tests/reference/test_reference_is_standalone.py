"""specmix.reference depends on NumPy and the standard library only: no torch, no application,
no data or plotting modules (read from the sources, so nothing is executed)."""
import ast
import pathlib

import specmix.reference

REFERENCE = pathlib.Path(specmix.reference.__file__).parent


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_reference_imports_only_numpy_stdlib_and_itself():
    allowed_top = {"numpy", "__future__", "math", "dataclasses", "functools", "typing"}
    files = sorted(REFERENCE.glob("*.py"))
    assert {f.name for f in files} >= {"ops.py", "model.py", "gradcheck.py", "spectral.py"}
    for path in files:
        for name in _imports(path):
            if name.startswith("."):
                assert name.count(".") == 1 and not name.startswith(".."), f"{path.name}: {name}"
            else:
                assert name.split(".")[0] in allowed_top, f"{path.name} imports {name}"
