"""The audit: the pipeline's measurements on any model and any images.

    import equiseg
    result = equiseg.audit(model, images)   # or: from equiseg.audit import audit
    assert result.passed(require_exact="p4"), result.gate_failures(require_exact="p4")

`equiseg.audit` is this package, made callable: calling it calls `audit` (`equiseg.audit.api`),
so the short spelling works while `equiseg.audit.run` and the other modules stay importable.
Type checkers do not know a module can be called; `from equiseg.audit import audit` is the
spelling they understand.

The modules: `options` (every setting), `images` (folders, files, tensors, arrays), `models`
and `model_files` (loading a user's model), `run` (the computation), `result` (what it found),
`gates` (the CI gate), `output` (the folder it writes) and `report` (its document).
Measurement itself lives in `equiseg.analysis`, which never imports this package.
"""

import sys
import types
from typing import Any

from equiseg.audit.api import audit
from equiseg.audit.result import AuditResult

__all__ = ["AuditResult", "audit"]


class _CallablePackage(types.ModuleType):
    """This package, callable: `equiseg.audit(...)` is `equiseg.audit.audit(...)`. Setting a
    module's `__class__` to a ModuleType subclass is the documented way to give it behaviour
    (Python reference, "Customizing module attribute access")."""

    def __call__(self, *args: Any, **kwargs: Any) -> AuditResult:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
