"""The project in two layers: the core a newcomer reads (the entry scripts, parse_config.py,
base/, trainer/, model/, data_loader/) over a support floor (utils/, logger/) that keeps the
guarantees. The floor imports nothing from the core, so that it can be read, tested and
replaced on its own, and the way from train.py to the loop never runs back up."""

import ast

from tests.helpers import PROJECT_DIR

CORE = {"base", "trainer", "model", "data_loader", "parse_config", "train", "test", "predict", "sweep", "export"}
FLOOR = ("utils", "logger")


def imported_modules(path) -> set[str]:
    """The top-level names of every module a file imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_support_floor_imports_nothing_from_the_core():
    files = [path for folder in FLOOR for path in sorted((PROJECT_DIR / folder).glob("*.py"))]
    assert len(files) >= 5
    upward = {path.relative_to(PROJECT_DIR).as_posix(): sorted(imported_modules(path) & CORE) for path in files}
    assert {name: found for name, found in upward.items() if found} == {}


def test_the_check_sees_an_upward_import(tmp_path):
    """The test above would catch one: an import inside a function counts too."""
    path = tmp_path / "floor.py"
    path.write_text("import os\n\n\ndef f():\n    from base.base_trainer import BaseTrainer\n", encoding="utf-8")
    assert imported_modules(path) == {"os", "base"}
