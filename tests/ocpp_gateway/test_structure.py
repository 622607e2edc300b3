"""The gateway's shape, checked on its source: what issue 16 promised stays true.

- no module under ``ocpp_gateway/`` reads a private attribute of the ocpp library;
- no import cycle between gateway modules (``TYPE_CHECKING`` imports included);
- no comparison with a version name outside the version packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ocpp_gateway

ROOT = Path(ocpp_gateway.__file__).parent
VERSION_NAMES = {"1.6", "2.0.1", "2.1", "ocpp1.6", "ocpp2.0.1", "ocpp2.1"}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def test_no_private_attribute_of_the_ocpp_library_is_read() -> None:
    offences = []
    for name, tree in modules().items():
        from_ocpp = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ocpp":
                for alias in node.names:
                    if alias.name.startswith("_"):
                        offences.append(f"{name}: imports {alias.name}")
                    from_ocpp.add(alias.asname or alias.name)
            if isinstance(node, ast.Import):
                from_ocpp |= {a.asname or a.name for a in node.names if a.name.startswith("ocpp")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                # a subclass of a library class reads its privates through ``self``
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                if bases & from_ocpp:
                    offences.append(f"{name}:{node.lineno}: subclasses {bases & from_ocpp}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and _private(str(node.args[1].value))
            ):
                attr = node.args[1].value
                offences.append(f"{name}:{node.lineno}: {node.func.id}(..., {attr!r})")
            if isinstance(node, ast.Attribute) and _private(node.attr):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in from_ocpp:
                    offences.append(f"{name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in ("_on_action", "_after_action"):
                offences.append(f"{name}:{node.lineno}: the library's route marks")
    assert offences == []


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ocpp_gateway"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else str(node.module))
    out.discard(name)
    return {m for m in out if not name.startswith(m + ".")}  # a package's own __init__


def test_no_import_cycle() -> None:
    trees = modules()
    graph = {name: _imports(name, tree, set(trees)) for name, tree in trees.items()}
    cycles = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(node)

    finished: set[str] = set()
    for name in graph:
        visit(name, [name], finished)
    assert cycles == []


def test_no_version_switch_outside_the_version_packages() -> None:
    offences = []
    for name, tree in modules().items():
        if name.startswith(("ocpp_gateway.v16", "ocpp_gateway.v201")):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for part in (node.left, *node.comparators):
                    if isinstance(part, ast.Constant) and part.value in VERSION_NAMES:
                        offences.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in VERSION_NAMES:
                        offences.append(f"{name}:{node.lineno}: a table keyed by version")
    assert offences == []
