"""Packaging: the folder ``platform/`` never shadows the standard library, and the
built wheel holds (and installs) every module of the source tree.

The repository root has a folder called ``platform``; if it ever became an
importable package (``platform/__init__.py``), ``import uuid``, pytest, Alembic
and uvicorn would all break when run from the root.  These tests run the real
commands from the root, build a real wheel from a copy of the tree, install it
outside the repository and import every module from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = ("platform", "tenants", "billing", "webrtc")
PACKAGE_DATA_SUFFIXES = (".html", ".js", ".css", ".ini", ".mako", ".json", ".svg")
STDLIB_PLATFORM = os.path.dirname(os.__file__)


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _wheel_python(target: Path, script: str) -> list[str]:
    """Python with the wheel's install first and the dependencies after it, but
    without ``site`` (so the editable install's finder and .pth files stay out)."""
    return [sys.executable, "-S", "-c", f"import sys; sys.path[1:1] = [{str(target)!r}, {_site_packages()!r}]\n" + script]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "KEFU_"))}
    env.update(extra)
    return env


def test_import_platform_from_repository_root_is_the_standard_library() -> None:
    result = _run(
        [sys.executable, "-c", "import platform, uuid; print(platform.__file__); print(platform.system())"],
        cwd=ROOT,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    module_file, system = result.stdout.split()
    assert Path(module_file).parent == Path(STDLIB_PLATFORM)
    assert system == "Linux"


def test_pytest_collects_from_repository_root_with_the_standard_platform(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe_platform.py"
    probe.write_text(
        "import platform, uuid\n"
        "def test_platform_is_stdlib():\n"
        f"    assert platform.__file__.startswith({STDLIB_PLATFORM!r})\n"
        "    assert platform.system()\n"
    )
    for mode in ("prepend", "importlib"):
        result = _run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--import-mode={mode}",
             "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(probe)],
            cwd=ROOT,
            env=_clean_env(),
        )
        assert result.returncode == 0, f"--import-mode={mode}: {result.stdout}\n{result.stderr}"
        assert "1 passed" in result.stdout


def test_alembic_runs_from_repository_root() -> None:
    result = _run([sys.executable, "-m", "alembic", "--help"], cwd=ROOT, env=_clean_env())
    assert result.returncode == 0, result.stderr
    assert "upgrade" in result.stdout and "downgrade" in result.stdout


def test_no_top_level_package_shadows_platform_or_kefu() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert not (ROOT / "kefu").exists()
    for context in CONTEXTS:
        assert not (ROOT / context / "kefu" / "__init__.py").exists(), f"{context}/kefu/__init__.py breaks the kefu namespace"


def test_kefu_help_lists_every_subcommand() -> None:
    kefu = Path(sys.executable).parent / "kefu"
    result = _run([str(kefu), "--help"], cwd=ROOT, env=_clean_env())
    assert result.returncode == 0, result.stderr
    commands_section = result.stdout.split("COMMAND", 1)[1]
    for command in ("serve", "api", "worker", "media", "db", "demo", "ops"):
        assert f"\n    {command} " in commands_section, f"'kefu --help' does not explain {command!r}:\n{result.stdout}"
    for argv, words in ((["db", "--help"], ("upgrade", "downgrade", "current")), (["ops", "--help"], ("create-client",)),
                        (["serve", "--help"], ("--host", "--port", "--data-dir"))):
        sub = _run([str(kefu), *argv], cwd=ROOT, env=_clean_env())
        assert sub.returncode == 0, sub.stderr
        for word in words:
            assert word in sub.stdout, f"'kefu {' '.join(argv)}' does not mention {word}"


# --- the wheel ---------------------------------------------------------------


def _source_files() -> set[str]:
    """Every module and package-data file of the source tree, as wheel paths (``kefu/...``)."""
    found: set[str] = set()
    for context in CONTEXTS:
        base = ROOT / context
        for path in (base / "kefu").rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(base).as_posix()
            in_assets = "templates" in path.parts or "static" in path.parts
            if path.suffix == ".py" or path.suffix in PACKAGE_DATA_SUFFIXES or in_assets:
                found.add(rel)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built by pip (PEP 517, isolated build) from a copy of the working tree."""
    work = tmp_path_factory.mktemp("wheel-build")
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in CONTEXTS:
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = work / "dist"
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], cwd=work, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("kefu-*.whl")
    return built


def test_wheel_holds_every_module_of_the_source_tree(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    in_wheel = {n for n in names if n.startswith("kefu/")}
    source = _source_files()
    assert source - in_wheel == set(), "modules missing from the wheel"
    assert not any(n.startswith(("platform/", "tenants/", "billing/", "webrtc/", "tests/")) for n in names)
    assert "kefu/__init__.py" not in in_wheel, "kefu must stay a namespace package"
    assert "kefu = kefu.platform.cli:main" in entry_points
    assert "kefu/platform/migrations/env.py" in in_wheel
    assert any(n.startswith("kefu/platform/migrations/versions/0001") for n in in_wheel)


@pytest.fixture(scope="module")
def installed_wheel(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("wheel-install") / "site"
    result = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], cwd=target.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    yield target


def test_installed_wheel_imports_every_module_from_outside_the_repository(installed_wheel: Path) -> None:
    modules = sorted(
        p.relative_to(installed_wheel).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for p in (installed_wheel / "kefu").rglob("*.py")
        # Migration scripts are run by Alembic, not imported as modules.
        if "migrations" not in p.parts
    )
    assert "kefu.platform.app" in modules and "kefu.tenants.models" in modules
    script = (
        "import importlib, sys\n"
        f"target = {str(installed_wheel)!r}\n"
        f"source_dirs = {[str(ROOT)] + [str(ROOT / c) for c in CONTEXTS]!r}\n"
        "assert not set(source_dirs) & {p.rstrip('/') for p in sys.path}, sys.path\n"
        "bad = []\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    if not module.__file__.startswith(target + '/'):\n"
        "        bad.append((name, module.__file__))\n"
        "import kefu\n"
        "assert list(kefu.__path__) == [target + '/kefu'], kefu.__path__\n"
        f"print('imported', {len(modules)}, 'bad', bad)\n"
        "from kefu.platform.db.migrate import MIGRATIONS_DIR\n"
        "assert str(MIGRATIONS_DIR).startswith(target), MIGRATIONS_DIR\n"
        "assert (MIGRATIONS_DIR / 'script.py.mako').exists()\n"
    )
    result = _run(_wheel_python(installed_wheel, script), cwd=installed_wheel.parent, env=_clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imported {len(modules)} bad []"


def test_installed_wheel_migrates_an_empty_sqlite_database(installed_wheel: Path) -> None:
    database = installed_wheel.parent / "wheel.sqlite3"
    script = (
        "from kefu.platform.db import migrate\n"
        f"migrate.upgrade('sqlite+aiosqlite:///{database}')\n"
        "import sqlite3\n"
        f"print(sqlite3.connect({str(database)!r}).execute('select version_num from alembic_version').fetchone()[0])\n"
    )
    result = _run(_wheel_python(installed_wheel, script), cwd=installed_wheel.parent, env=_clean_env())
    assert result.returncode == 0, result.stderr
    heads = sorted(p.name.split("_")[0] for p in (ROOT / "platform/kefu/platform/migrations/versions").glob("[0-9]*.py"))
    assert result.stdout.strip().splitlines()[-1] == heads[-1]


def test_the_container_image_installs_every_context_and_leaves_tests_out() -> None:
    """The Dockerfile (docker cannot run here) copies what ``pip install .`` needs: the
    project file, the README it names, every context folder; .dockerignore keeps the
    rest of the checkout out of the build context."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {path.split("/")[0] for path in project["tool"]["setuptools"]["package-dir"].values()}
    assert folders == set(CONTEXTS)
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    copied = {part.rstrip("/") for line in dockerfile if line.startswith("COPY ") for part in line.split()[1:-1]}
    assert copied == {"pyproject.toml", project["project"]["readme"], *CONTEXTS}
    assert any(line.startswith("RUN pip install") and " . " in f"{line} " for line in dockerfile)
    assert 'ENTRYPOINT ["kefu"]' in dockerfile and "USER kefu" in dockerfile
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "bench"} <= ignored and not ignored & copied
