"""The gridctl image: Dockerfile and build context, checked without a Docker engine."""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path

from tests.deploy.compose_file import ROOT


def _dockerfile_lines() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile() -> None:
    lines = _dockerfile_lines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    assert base.startswith("python:3.11") and "slim" in base and ":latest" not in base
    install = next(line for line in lines if line.startswith("RUN pip install"))
    assert "--require-hashes --no-deps -r requirements/runtime.txt" in install
    assert "pip install --no-deps ." in install
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["gridctl"]' in lines
    exposed = next(line for line in lines if line.startswith("EXPOSE")).split()[1:]
    assert set(exposed) == {"9000", "8080"}


def _build_context() -> list[Path]:
    """Files docker would send as build context, by .dockerignore (the patterns we use)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            if pattern.startswith("**/"):
                if any(fnmatch(part, pattern[3:]) for part in parts):
                    return True
            elif any(fnmatch(prefix, pattern) for prefix in prefixes):
                return True
        return False

    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = Path(dirpath).relative_to(ROOT).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not ignored(rel_dir + d)]
        out += [Path(dirpath) / f for f in filenames if not ignored(rel_dir + f)]
    return out


def test_build_context_has_what_the_image_needs_and_nothing_else() -> None:
    rels = {p.relative_to(ROOT).as_posix() for p in _build_context()}
    assert {
        "pyproject.toml",
        "README.md",
        "requirements/runtime.txt",
        "cli/main.py",
        "pipeline/topics.py",
    } <= rels
    assert any(r.startswith("migrations/V") for r in rels) or not any(
        (ROOT / "migrations").glob("V*.sql")
    )
    assert not any(r.startswith((".git/", ".venv/", "tests/", ".env")) for r in rels)


def test_build_context_holds_the_package_pip_installs(tmp_path: Path) -> None:
    """What ``RUN pip install .`` finds in the context: metadata files and every package.

    Building the wheel itself needs setuptools from the index (build isolation), so the
    test checks setuptools' package discovery on a copy of the context instead.
    """
    import tomllib

    import setuptools

    context = tmp_path / "context"
    for path in _build_context():
        target = context / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    project = tomllib.loads((context / "pyproject.toml").read_text())
    assert (context / project["project"]["readme"]).is_file()
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(setuptools.find_packages(where=str(context), include=include))
    expected = set(setuptools.find_packages(where=str(ROOT), include=include))
    assert {"cli", "pipeline", "pipeline.bus", "ocpp_gateway", "dr_bridge"} <= found
    assert found == expected
    module, _, func = project["project"]["scripts"]["gridctl"].partition(":")
    assert (context / (module.replace(".", "/") + ".py")).is_file() and func
