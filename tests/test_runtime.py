"""Commands tune their process's memory (equiseg.runtime): glibc keeps freed buffers instead of
handing them back to the kernel, and the audit command also puts torch's big buffers on
transparent huge pages, which torch reads only at its first allocation (the library makes tensors
on import, so the command must ask before importing them). Each probe runs in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_project import SRC, stage_env

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
TUNE = "from equiseg.runtime import keep_freed_memory\nkeep_freed_memory()"
AUDIT_COMMAND = "from equiseg.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"

needs_thp = pytest.mark.skipif(
    not THP.exists() or "[never]" in THP.read_text(),
    reason="this kernel gives no transparent huge pages, so there is nothing to observe")


def run_probe(setup: str, probe: str, **env: str) -> int:
    """Run `setup` then `probe` (which prints a number) in a fresh process; that number."""
    code = f"import torch\n{setup}\n{probe}"
    inherited = {key: value for key, value in stage_env().items()
                 if key not in ("EQUISEG_MALLOC", "THP_MEM_ALLOC_ENABLE")}
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, env={**inherited, **env}, cwd=SRC.parent)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


HUGE_PAGES_KB = ("x = torch.empty(64 << 20, dtype=torch.uint8); x.fill_(1)\n"
                 "print([int(line.split()[1]) for line in open('/proc/self/smaps_rollup') "
                 "if line.startswith('AnonHugePages')][0])")
# minor page faults of forward passes 3 to 6 of a small convolutional net (64 MiB of activations
# a pass, 16384 pages of 4 KiB)
PAGES_PER_PASS = 16384
REFAULTS = ("import resource\n"
            "net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),\n"
            "                          torch.nn.Conv2d(64, 64, 3, padding=1)).eval()\n"
            "x = torch.randn(4, 3, 256, 256)\n"
            "with torch.no_grad():\n    net(x); net(x)\n"
            "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "    net(x); net(x); net(x); net(x)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")


def test_a_forward_pass_reuses_the_last_ones_buffers_instead_of_faulting_them_in_again():
    as_it_comes = run_probe(TUNE, REFAULTS, EQUISEG_MALLOC="default")
    assert as_it_comes > 3 * PAGES_PER_PASS  # faulted in again at every one of the four passes
    # Kept: no pass faults its activations in again. Usually 0; once, on a CI machine, one 64 MiB
    # buffer was faulted in a single time after the warm-up (exactly 16384 faults), so one
    # buffer's worth is allowed, a quarter of what the four passes fault as glibc comes.
    assert run_probe(TUNE, REFAULTS) <= PAGES_PER_PASS + 100


@needs_thp
def test_the_audit_command_gets_huge_pages_although_its_modules_make_tensors_on_import():
    assert run_probe(AUDIT_COMMAND, HUGE_PAGES_KB) > 0
    # and leaves no request behind for child processes or later code in the same process
    assert run_probe(AUDIT_COMMAND, "import os; print(int('THP_MEM_ALLOC_ENABLE' in os.environ))") == 0
    assert run_probe(AUDIT_COMMAND, HUGE_PAGES_KB, THP_MEM_ALLOC_ENABLE="0") == 0  # a user's say
    assert run_probe(AUDIT_COMMAND, HUGE_PAGES_KB, EQUISEG_MALLOC="default") == 0  # to compare


@needs_thp
def test_the_stages_keep_4_kib_pages_which_measured_faster_for_training():
    assert run_probe(TUNE, HUGE_PAGES_KB) == 0
