"""Figures and the self-contained Markdown/HTML report, for the report stage and `equiseg audit`."""

from equiseg.report.document import Document

__all__ = ["Document"]
