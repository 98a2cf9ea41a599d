"""The folder tree is the architecture: layers that import one way, small
modules, one logger, thin entry points."""

import ast
import os
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGE = os.path.join(REPO, "keras_transfer")
MAX_MODULE_LINES = 300
SUBPACKAGES = ("cli", "data", "models", "training", "evaluation", "serving", "run")


def _modules():
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_the_import_contracts_hold():
    """setup.cfg's import-linter contracts: the layers of the data flow, thin
    `python -m` entry points, and no import cycle at any depth."""
    linter = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([linter, "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_part_of_the_data_flow_is_a_subpackage(package):
    assert os.path.isfile(os.path.join(PACKAGE, package, "__init__.py"))


def test_no_module_is_over_300_lines():
    long = {os.path.relpath(path, REPO): lines for path in _modules()
            if (lines := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_MODULE_LINES}
    assert not long


def test_library_code_logs_and_never_prints():
    """Only the command lines print (their output: a table, JSON lines); the
    rest logs through `logging.getLogger("keras_transfer")`."""
    printing = []
    for path in _modules():
        if os.sep + "cli" + os.sep in path:
            continue
        tree = ast.parse(open(path, encoding="utf-8").read())
        printing += [f"{os.path.relpath(path, REPO)}:{node.lineno}" for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print"]
    assert not printing


def test_no_function_takes_a_log_callable():
    taking = []
    for path in _modules():
        tree = ast.parse(open(path, encoding="utf-8").read())
        taking += [f"{os.path.relpath(path, REPO)}:{node.name}" for node in ast.walk(tree)
                   if isinstance(node, ast.FunctionDef)
                   and any(arg.arg in ("log", "warn") for arg in node.args.args
                           + node.args.kwonlyargs)]
    assert not taking
