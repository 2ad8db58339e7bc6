"""Exit statuses, documented in the README (httpie status.py)."""
from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0            # no warning or critical finding
    WARNING = 1       # worst finding is a warning
    CRITICAL = 2      # at least one critical finding
    ERROR = 3         # hostdiag itself failed (usage errors keep typer's code, 2)
    INTERRUPTED = 130

    @classmethod
    def for_severity(cls, severity: str) -> "ExitStatus":
        return {"critical": cls.CRITICAL, "warning": cls.WARNING}.get(severity, cls.OK)
