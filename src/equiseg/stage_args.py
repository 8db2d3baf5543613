"""The command line that every stage script shares, so that `--params` reads the same everywhere."""

from __future__ import annotations

import argparse


def stage_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of the stage's docstring, with `--params`."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
    return parser
