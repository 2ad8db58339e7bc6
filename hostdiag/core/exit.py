"""Exit statuses, documented in the README (httpie status.py)."""
from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0            # no warning or critical finding
    WARNING = 1       # worst finding is a warning
    CRITICAL = 2      # at least one critical finding
    ERROR = 3         # hostdiag itself failed, or status UNKNOWN: most collectors could not see
    USAGE = 2         # bad input, caught before sampling (same number as CRITICAL: typer's code)
    INTERRUPTED = 130

    @classmethod
    def for_severity(cls, severity: str) -> "ExitStatus":
        return {"critical": cls.CRITICAL, "warning": cls.WARNING, "unknown": cls.ERROR}.get(severity, cls.OK)
