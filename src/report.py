"""Stage `report`: reports/report.md, a self-contained reports/report.html and reports/figures/.

Reads the outputs of train, evaluate and rotation_sweep for the params' models x augments (never a
glob, so models dropped from params do not linger), and refreshes the offline template that lets
`dvc plots show` draw its charts without a network.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from equiseg.config import Params, load_params, stage_parser
from equiseg.errors import EquisegError, exit_on_user_error
from equiseg.io import atomic_dir
from equiseg.report.offline_plots import ensure_offline_plots_template
from equiseg.report.run_report import build_run_report
from equiseg.report.setting import ReportSetting


def report_setting(params: Params) -> ReportSetting:
    """What the report says was run, from params.yaml."""
    data, train, sweep = params.data, params.train, params.sweep
    return ReportSetting(
        models=params.models, augments=params.augments, seeds=params.seeds,
        profile=params.profile, source=data.source, image_size=data.image_size,
        pad_size=data.pad_size, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
        weight_decay=train.weight_decay, rot90_seed=params.evaluate.rot90_seed,
        angle_step=sweep.angle_step, max_images=sweep.max_images, gif=sweep.gif,
        model_groups={m: params.architecture(m).group for m in params.models})


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--root", default=".", help="project root holding metrics/ and plots/")
    parser.add_argument("--out", default="reports", help="report folder, relative to --root")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    params = load_params(args.params)
    root = Path(args.root)
    with atomic_dir(root / args.out) as tmp:
        build_run_report(report_setting(params), root, tmp)
    try:  # a convenience for `dvc plots show`; the report itself is done
        ensure_offline_plots_template(root)
    except EquisegError as err:
        print(f"warning: {err}", file=sys.stderr)
    print(f"report: wrote {root / args.out / 'report.html'} and report.md "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
