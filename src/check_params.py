"""Stage `params`: validate the whole of params.yaml before any stage's outputs are removed.

DVC deletes a stage's outputs before it runs the stage's command, so a stage that found a bad
parameter itself would already have lost its previous results. Every other stage depends on this
stage's output, so DVC runs it first; the output's content never changes, so a valid change reruns
only the stages whose own parameters changed.

`--unchanged` runs before and after every other stage's command: it refuses when params.yaml is no
longer what this stage validated (as dvc.lock records it), e.g. because a second `dvc exp run`
in the same workspace rewrote it mid-run. It compares values as DVC reads them, not text, and
imports nothing of the schema but its error format, so it costs a fraction of a second. The full
check imports neither torch nor albumentations: the schema's types are plain Python.

DVC records a finished stage's parameters by reading params.yaml after the stage's command, and so
after its closing guard: a rewrite that lands in between records the second run's values beside
outputs made with the first's. The guard that then refuses also forgets such entries (recorded as
params.yaml is now, not as validated) in dvc.lock and in DVC's run cache, so DVC reruns those
stages instead of trusting or restoring them.
"""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from equiseg.config.checks import ConfigError, param_error, stage_parser
from equiseg.errors import exit_on_user_error
from equiseg.io import write_text

try:  # DVC's own loader (it comes with dvc)
    from ruamel.yaml import YAML, YAMLError
except ImportError:  # no DVC, so no dvc.lock to compare with
    YAML, YAMLError = None, yaml.YAMLError

if TYPE_CHECKING:
    from equiseg.config import Params

STAMP = "params.yaml passed src/check_params.py; every stage depends on this file to run after it\n"


def check_reachable(params: Params) -> None:
    """The data source checks that are cheap: a local archive must exist."""
    archive = params.data.archive
    if archive is not None and not Path(archive).exists():
        raise param_error("data.archive", f"is {archive!r}, which does not exist",
                          "a local zip or extracted folder, or null to download data.urls")


def read_yaml(path: Path) -> Any:
    """A YAML file as DVC reads it (ruamel.yaml, YAML 1.2: `1e-3` is a float, `nan` a string), so
    params.yaml and the values dvc.lock recorded from it compare alike; PyYAML without DVC."""
    if YAML is None:
        return yaml.safe_load(path.read_text())
    return YAML(typ="safe", pure=True).load(path.read_text())


def same(before: Any, now: Any) -> bool:
    """Equal YAML values, a NaN equal to itself (`.nan` in params.yaml is no change)."""
    if isinstance(before, dict) and isinstance(now, dict):
        return before.keys() == now.keys() and all(same(before[k], now[k]) for k in before)
    if isinstance(before, list) and isinstance(now, list):
        return len(before) == len(now) and all(map(same, before, now))
    if isinstance(before, float) and isinstance(now, float) and math.isnan(before):
        return math.isnan(now)
    return before == now


def dotted(values: dict[str, Any], key: str) -> Any:
    """The value DVC records under a params key such as `data.image_size` (KeyError if absent)."""
    for part in key.split("."):
        values = values[part]
    return values


def recorded_as(entry: dict[str, Any], params_file: str, values: dict[str, Any]) -> bool:
    """Whether a dvc.lock stage entry recorded exactly `values` for every params key it tracks."""
    recorded = (entry.get("params") or {}).get(params_file) or {}
    try:
        return bool(recorded) and all(same(v, dotted(values, k)) for k, v in recorded.items())
    except (KeyError, TypeError):
        return False


def forget_run_cache(root: Path, entry: dict[str, Any]) -> None:
    """Remove DVC's run-cache record of a stage entry (the `evaluate` and `report` stages have
    one), which would otherwise restore the mis-recorded outputs for the rewritten values."""
    import shutil

    try:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo
        from dvc.stage.cache import _get_cache_hash  # the run cache's own key (dvc is pinned)
    except ImportError:
        return  # no DVC, no run cache
    key = _get_cache_hash(copy.deepcopy(entry), key=True)
    try:
        with Repo(str(root)) as repo:
            shutil.rmtree(repo.stage_cache._get_cache_dir(key), ignore_errors=True)
    except NotDvcRepoError:
        return


def forget_misrecorded(lock_file: Path, recorded: dict[str, Any], params_file: str,
                       validated: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Drop from dvc.lock the stages recorded with the rewritten values, not the validated ones.

    Such a stage finished with the validated values and was recorded after the rewrite (see the
    module's docstring); forgotten, it reruns. An older entry that happens to match the rewrite is
    forgotten too: that costs a rerun, never a wrong result. Its run-cache record goes with it,
    found from `recorded` (the lock's stages as already read). Returns the stages forgotten."""
    loader = YAML(typ="rt", pure=True) if YAML is not None else None
    text = lock_file.read_text()
    lock = loader.load(text) if loader else yaml.safe_load(text)
    stages = lock.get("stages") or {}
    stale = [name for name, entry in stages.items() if name != "params"
             and recorded_as(entry, params_file, current)
             and not recorded_as(entry, params_file, validated)]
    if stale:
        for name in stale:  # hashed as read plainly, without ruamel's comments
            forget_run_cache(lock_file.parent, recorded[name])
            del stages[name]
        if loader:
            buffer = io.StringIO()
            loader.dump(lock, buffer)
            write_text(lock_file, buffer.getvalue())
        else:
            write_text(lock_file, yaml.safe_dump(lock, sort_keys=False))
    return stale


def check_unchanged(params_file: str, lock_file: Path) -> None:
    """Refuse if params.yaml differs from what the `params` stage validated in this run."""
    try:
        lock = read_yaml(lock_file) or {}
    except FileNotFoundError:
        return  # no DVC run in progress here (a stage run by hand)
    validated = lock.get("stages", {}).get("params", {}).get("params", {}).get(params_file)
    if validated is None:
        return
    try:
        current = read_yaml(Path(params_file))
    except (OSError, YAMLError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{params_file}: cannot be read ({reason}); "
                          "restore it and run `dvc exp run` again") from None
    if not isinstance(current, dict):
        held = "nothing" if current is None else f"a {type(current).__name__}"
        raise ConfigError(f"{params_file}: holds {held}, not a mapping of sections; restore it "
                          "and run `dvc exp run` again")
    changed = sorted(key for key in set(validated) | set(current)
                     if not same(validated.get(key), current.get(key)))
    if changed:
        forgotten = forget_misrecorded(lock_file, lock.get("stages", {}), params_file, validated,
                                       current)
        rerun = (f"; {lock_file} had recorded {', '.join(forgotten)} with the new values after "
                 "it ran with the validated ones, so it forgets them and DVC reruns them"
                 if forgotten else "")
        raise ConfigError(
            f"{params_file} changed after the `params` stage validated it ({', '.join(changed)}; "
            f"see {lock_file}): a second `dvc exp run` in this workspace rewrites it; run one at a "
            "time or queue them (`dvc exp run --queue ...`, then `dvc queue start`), and run "
            f"`dvc exp run` again{rerun}")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", default="data/params.ok", help="the stamp the other stages need")
    parser.add_argument("--unchanged", action="store_true",
                        help="only check that params.yaml is what this run's `params` validated")
    parser.add_argument("--lock", default="dvc.lock", help="DVC's lock file (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.unchanged:
        check_unchanged(args.params, Path(args.lock))
        return
    from equiseg.config import load_params  # the schema: OpenCV and pandas come with it

    params = load_params(args.params)
    check_reachable(params)
    write_text(args.out, STAMP)
    print(f"{args.params}: valid")


if __name__ == "__main__":
    main()
