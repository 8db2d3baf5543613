"""Training replicates (`params.seeds`): mean, spread and count of every figure over seeds.

Convention: `sd` is the sample standard deviation across seeds (ddof=1, the spread one would
expect between two further seeds), NaN when only one seed ran, since one run says nothing
about the spread. `n` counts the seeds. Two runs are said to differ beyond the seed-to-seed
spread when their means are further apart than the sum of their standard deviations,
|mean_a - mean_b| > sd_a + sd_b: a deliberately plain rule (two error bars that do not touch),
not a significance test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

SD_SUFFIX = "_sd"


def replicate_stats(per_seed: pd.DataFrame, by: Sequence[str] = (),
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation and count over the rows (one per seed) of `per_seed`.

    Rows are grouped by the `by` columns (e.g. `angle`), kept in first-seen order; with no `by`
    the result is one row. Each numeric column `c` (or each of `columns`) becomes `c`, the mean
    over seeds (NaNs skipped), and `c_sd`, the sample sd (ddof=1; NaN for one seed); `n` is the
    number of rows (seeds) in the group.
    """
    if columns is None:
        columns = [c for c in per_seed.select_dtypes("number").columns
                   if c not in by and c != "seed"]
    columns = list(columns)
    values = per_seed[list(by) + columns].copy()
    values[columns] = values[columns].astype(float)
    if by:
        grouped = values.groupby(list(by), sort=False)
        mean, sd, n = grouped[columns].mean(), grouped[columns].std(ddof=1), grouped.size()
    else:
        mean = values[columns].mean().to_frame().T
        sd = values[columns].std(ddof=1).to_frame().T
        n = pd.Series([len(values)])
    stats = pd.concat([mean, sd.add_suffix(SD_SUFFIX)], axis=1)
    stats["n"] = n.to_numpy()
    return stats[list(stats_columns(columns))].reset_index(drop=not by)


def stats_columns(columns: Sequence[str], by: Sequence[str] = ()) -> tuple[str, ...]:
    """The columns of `replicate_stats(per_seed, by, columns)`, in order: `by`, then each
    column and its sd, then `n`."""
    return (*by, *(c for column in columns for c in (column, column + SD_SUFFIX)), "n")


def differs_beyond_spread(mean_a: float, sd_a: float, mean_b: float, sd_b: float) -> bool | None:
    """Whether |mean_a - mean_b| > sd_a + sd_b; None when a spread is unknown (one seed)."""
    if any(math.isnan(float(v)) for v in (sd_a, sd_b)):
        return None
    return abs(mean_a - mean_b) > sd_a + sd_b


def headline_metrics(stats: pd.DataFrame, columns: Sequence[str]) -> dict:
    """The first row of `replicate_stats` as `{"n": n, column: {"mean": m, "sd": s}, ...}` for a
    metrics JSON; sd is None (JSON null, which `dvc metrics show` leaves out) for one seed."""
    row = stats.iloc[0]
    sd = {c: float(row[c + SD_SUFFIX]) for c in columns}
    return {"n": int(row["n"]),
            **{c: {"mean": float(row[c]), "sd": None if math.isnan(sd[c]) else sd[c]}
               for c in columns}}
