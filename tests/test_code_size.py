"""Modules stay readable: none over 300 lines, no function over 60 (the style guide's limits)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def test_no_module_over_300_lines_and_no_function_over_60():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(SRC)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: "
                                    f"{node.end_lineno - start + 1} lines")
    assert not too_long, "\n".join(too_long)
