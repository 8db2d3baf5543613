"""What an audit found, in memory: the summary, the per-image frame, the gate, and writing it.

`equiseg.audit.audit(...)` returns an `AuditResult`; `equiseg audit` writes one and exits by
its gate. Both ask the same questions of it, so the command line and a user's test agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from equiseg.audit.gates import check_gates, gate_failures, gate_spec
from equiseg.audit.options import AuditOptions
from equiseg.audit.output import write_audit

if TYPE_CHECKING:
    from equiseg.analysis.predictor import Predictor
    from equiseg.audit.images import AuditImages

FailUnder = Mapping[str, float] | Sequence[tuple[str, float]]


@dataclass
class AuditResult:
    """An audit's findings. `summary` is what summary.json holds; `frame` what results.csv holds
    (one row per image, perturbation and level, with `judgeable` per image); `scored` the rows
    the figures cover (the judgeable images')."""

    summary: dict
    frame: pd.DataFrame
    scored: pd.DataFrame
    options: AuditOptions
    predictor: Predictor  # kept to draw the least consistent images when writing
    images: AuditImages
    symmetrized_frame: pd.DataFrame | None = None
    symmetrized_scored: pd.DataFrame | None = None

    def gate_failures(self, fail_under: FailUnder = (),
                      require_exact: str | None = None) -> list[str]:
        """What the gate finds wrong, one phrase each (empty: it passes); the command line's
        `--fail-under NAME=VALUE` and `--require-exact p4|p4m`. A "cannot judge" verdict fails
        unless the audit ran with `allow_degenerate=True`."""
        gate = gate_spec(fail_under, require_exact)
        if not gate.fail_under and gate.require_exact is None:
            raise ValueError("give fail_under={'consistency': 0.95} and/or require_exact='p4': "
                             "with no criterion there is nothing to pass")
        check_gates(gate, self.options, has_masks=self.images.masks is not None)
        return gate_failures(self.summary, gate, self.options.allow_degenerate)

    def passed(self, fail_under: FailUnder = (), require_exact: str | None = None) -> bool:
        """True when the gate finds nothing wrong (see `gate_failures`, which says what)."""
        return not self.gate_failures(fail_under, require_exact)

    def write(self, folder: str | Path) -> Path:
        """Write what `equiseg audit --out folder` writes. `folder` must be absent, empty, or
        an earlier audit's own output (replaced whole); anything else is refused untouched."""
        return write_audit(Path(folder), self)


