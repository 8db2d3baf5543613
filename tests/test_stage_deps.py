"""dvc.yaml's deps are what DVC trusts to decide a stage is up to date: each stage must list every
project module its script imports, directly or through other modules (function-level imports
included), and every stage must run after the `params` stage has validated params.yaml.

One exception, by design: the parameter schema (`equiseg.config`) imports the modules that hold a
section's settings (`SECTION_MODULES`) to parse and check that section. A stage that does not read
the section (it is not among its `params:`) need not depend on them through the schema: the
`params` stage does, and checks the whole file before any stage runs, so an edit there (a new
perturbation family's level list) reruns the check but retrains no model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
SCRIPT = re.compile(r"\bpython\s+(src/\S+\.py)")
GUARD = "python src/check_params.py --unchanged"  # around each command; it shapes no output
# params section -> the modules the schema imports only to parse and check it
SECTION_MODULES = {"sweep": ("equiseg.analysis.sweep_settings", "equiseg.analysis")}


def commands(stage: dict) -> list[str]:
    cmd = stage["cmd"]
    return [cmd] if isinstance(cmd, str) else list(cmd)


def scripts(stage: dict) -> list[str]:
    """The stage's own scripts (not the guard around them)."""
    return [m for command in commands(stage) if command != GUARD for m in SCRIPT.findall(command)]


def module_file(name: str) -> Path | None:
    """src/equiseg/a/b.py or src/equiseg/a/b/__init__.py for module `equiseg.a.b`."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_of(path: Path) -> str:
    """The dotted package a file belongs to (`equiseg.nn` for src/equiseg/nn/models.py)."""
    return ".".join(path.relative_to(SRC).parts[:-1])


def lazy_home(name: str) -> str | None:
    """The module that `name` (`equiseg.config.load_params`) comes from when its package imports
    it on first use through a `_HOMES` table (name -> submodule) in its `__init__`."""
    package, _, attr = name.rpartition(".")
    init = module_file(package)
    if init is None or init.name != "__init__.py":
        return None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_HOMES":
            home = ast.literal_eval(node.value).get(attr)
            return f"{package}.{home}" if home else None
    return None


def imported_modules(path: Path) -> set[str]:
    """Every `equiseg` module `path` imports anywhere in its body, with the packages whose
    `__init__` Python runs on the way, names imported from a package that are modules, and
    the modules a package imports lazily for the names taken from it (`lazy_home`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                anchor = package_of(path).split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "equiseg":
                continue
            name = lazy_home(name) or name
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                if module_file(".".join(parts[:i])):
                    found.add(".".join(parts[:i]))
    return found


def imported_files(script: Path, unread_sections: tuple[str, ...] = ()) -> set[Path]:
    """The project files `script` imports, followed transitively; the schema's imports of the
    modules of `unread_sections` (see `SECTION_MODULES`) are not followed."""
    skipped = {m for section in unread_sections for m in SECTION_MODULES[section]}
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        schema = path.is_relative_to(SRC / "equiseg" / "config")
        for module in imported_modules(path):
            if schema and module in skipped:
                continue
            file = module_file(module)
            if file not in seen:
                seen.add(file)
                todo.append(file)
    return seen


def covered(file: Path, deps: list[str]) -> bool:
    relative = file.relative_to(ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


def test_the_import_walk_sees_function_level_and_relative_imports():
    # nn/models.py imports equiseg.io inside save_trained, and its layers relatively or not
    found = {file.relative_to(SRC).as_posix() for file in imported_files(SRC / "equiseg/nn/models.py")}
    assert {"equiseg/io.py", "equiseg/errors.py", "equiseg/__init__.py",
            "equiseg/nn/__init__.py", "equiseg/nn/layers.py"} <= found


def test_the_import_walk_follows_names_a_package_imports_lazily():
    # check_params imports the schema inside main, by name, from equiseg.config's `_HOMES`
    found = {file.relative_to(SRC).as_posix() for file in imported_files(SRC / "check_params.py")}
    assert {"equiseg/config/params.py", "equiseg/config/sections.py", "equiseg/presets.py",
            "equiseg/data/augment_settings.py"} <= found


def unread_sections(stage: dict) -> tuple[str, ...]:
    """The sections of `SECTION_MODULES` a stage does not read (none of its `params:` in them);
    the `params` stage reads the whole file."""
    keys = [str(next(iter(p)) if isinstance(p, dict) else p) for p in stage.get("params", [])]
    if "params.yaml" in keys:
        return ()
    read = {key.split(".")[0] for key in keys}
    return tuple(section for section in SECTION_MODULES if section not in read)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_imports_is_a_dependency(name):
    stage = STAGES[name]
    deps = stage.get("deps", [])
    assert scripts(stage), f"stage {name}: no `python src/<script>.py` in its cmd"
    missing = set()
    for script in scripts(stage):
        assert script in deps, f"stage {name}: its script {script} is not in its deps"
        missing |= {f.relative_to(ROOT).as_posix()
                    for f in imported_files(ROOT / script, unread_sections(stage))
                    if not covered(f, deps)}
    assert not missing, (f"stage {name} imports {sorted(missing)} but dvc.yaml does not list them "
                         "(or a folder above them) in its deps: DVC would not rerun it when they change")


def test_a_train_stage_does_not_depend_on_the_sweeps_settings():
    """Adding a perturbation family (its level list in sweep_settings) retrains no model."""
    train = STAGES["train"]
    assert unread_sections(train) == ("sweep",)
    assert not any(dep.startswith("src/equiseg/analysis") for dep in train["deps"])
    assert unread_sections(STAGES["params"]) == ()  # it checks the sweep section itself


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"params"}))
def test_every_stage_runs_after_params_are_validated_and_guards_them(name):
    stage = STAGES[name]
    assert "data/params.ok" in stage["deps"], f"stage {name} can run before params.yaml is validated"
    assert commands(stage)[0] == GUARD and commands(stage)[-1] == GUARD, (
        f"stage {name}: its command must start and end with `{GUARD}`")


def test_the_params_stage_validates_the_whole_params_file_and_keeps_its_stamp():
    stage = STAGES["params"]
    assert stage["params"] == [{"params.yaml": None}]  # whole file: any change reruns the check
    assert stage["outs"] == [{"data/params.ok": {"cache": False, "persist": True}}]


def test_charts_follow_the_experiment_instead_of_naming_runs():
    """Top-level plots name folders (DVC draws each file in them); per-run files are declared by
    their stage. A hard-coded run name would miss gunet_p4m or show a stale run."""
    config = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    text = yaml.safe_dump(config.get("plots", []))
    assert not re.search(r"\b(g?unet|gunet_p4m)-", text), "dvc.yaml's plots name a run"
    folders = {next(iter(entry)) if isinstance(entry, dict) else entry for entry in config["plots"]}
    outs = {next(iter(out)) if isinstance(out, dict) else out
            for stage in STAGES.values() for out in stage.get("outs", [])}
    undrawn = {out for out in outs if out.startswith("plots/") and "${" not in out} - folders
    assert not undrawn, f"plot folders {sorted(undrawn)} are outputs but no chart draws them"
