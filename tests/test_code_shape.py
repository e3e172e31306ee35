"""The engine's shape: no function over 80 lines and no numba kernel with more than 12
arguments in ``envs/``, so that each can be read at once. Fails on a new offender.

A kernel is a function decorated with a numba ``njit``/``jit`` (or a module's alias of one,
such as ``kernel``) or named ``*_nb``. Arguments count every parameter, keyword-only and
``*args`` included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENVS = Path(__file__).resolve().parents[1] / "envs"
MAX_LINES = 80
MAX_KERNEL_ARGS = 12

# (path relative to envs/, function name): why it cannot be split. Keep this empty where
# possible; every entry needs its reason.
ALLOWED: dict[tuple[str, str], str] = {}


def _is_kernel(node: ast.FunctionDef) -> bool:
    if node.name.endswith("_nb"):
        return True
    for dec in node.decorator_list:
        text = ast.unparse(dec)
        if "jit" in text or text.split("(")[0] in ("kernel", "inline_kernel", "row_kernel"):
            return True
    return False


def offenders(root: Path = ENVS) -> list[tuple[str, str, str]]:
    """(path, function, what is wrong) for every function over MAX_LINES lines and every
    kernel with more than MAX_KERNEL_ARGS arguments under `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            n_lines = node.end_lineno - node.lineno + 1
            a = node.args
            n_args = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg)
            if n_lines > MAX_LINES:
                found.append((rel, node.name, f"{n_lines} lines"))
            if _is_kernel(node) and n_args > MAX_KERNEL_ARGS:
                found.append((rel, node.name, f"kernel with {n_args} arguments"))
    return found


def test_no_long_function_or_wide_kernel_in_envs():
    new = [o for o in offenders() if (o[0], o[1]) not in ALLOWED]
    assert not new, "split these (or allow-list them with a reason):\n" + "\n".join(
        f"  envs/{path}: {name}: {what}" for path, name, what in new
    )


def test_allow_list_has_no_stale_entries():
    current = {(path, name) for path, name, _ in offenders()}
    stale = sorted(set(ALLOWED) - current)
    assert not stale, f"no longer offenders, remove from ALLOWED: {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n" + "    x = 1\n" * 80, [("m.py", "f", "81 lines")]),
        ("def f():\n" + "    x = 1\n" * 79, []),
        (
            "def g_nb(" + ", ".join(f"a{i}" for i in range(13)) + "):\n    pass\n",
            [("m.py", "g_nb", "kernel with 13 arguments")],
        ),  # fmt: skip
        (
            "@kernel\ndef h(" + ", ".join(f"a{i}" for i in range(13)) + "):\n    pass\n",
            [("m.py", "h", "kernel with 13 arguments")],
        ),  # fmt: skip
        ("def plain(" + ", ".join(f"a{i}" for i in range(13)) + "):\n    pass\n", []),
    ],
)
def test_offenders_finds_what_it_should(tmp_path, source, expected):
    (tmp_path / "m.py").write_text(source)
    assert offenders(tmp_path) == expected
