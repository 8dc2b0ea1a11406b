"""Posterior reports: sections computed from a fit (:mod:`.sections`), drawn (:mod:`.figures`),
assembled as a document (:mod:`.document`) and written as HTML or Markdown (:mod:`.writer`)."""

from .writer import build_report, write_report

__all__ = ["build_report", "write_report"]
