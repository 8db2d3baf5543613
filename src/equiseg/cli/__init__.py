"""The `equiseg` command line: `equiseg audit` (also `python -m equiseg audit`), `equiseg
sample-images` and `equiseg plots-template` (`equiseg.cli.commands`).

Exit codes: 0 done (and every gate passed); 1 a gate (`--fail-under`, `--require-exact`) failed,
with one line on stderr naming what; 2 bad input, with one `error:` line on stderr.

`main` tunes the process's memory (`equiseg.runtime`) before it imports the commands: the library
makes its first tensors on import, and torch reads its huge-page setting at its first allocation.
"""

from __future__ import annotations

from equiseg.runtime import huge_pages_for_torch, keep_freed_memory


def main(argv: list[str] | None = None) -> int:
    """Run `equiseg` with `argv` (default: the process's arguments); the exit code."""
    keep_freed_memory()
    with huge_pages_for_torch():
        from equiseg.cli.commands import run_command

        return run_command(argv)
