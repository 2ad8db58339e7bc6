"""changes: placeholder until its collector lands (being written now)."""
from hostdiag.core.context import Unavailable

NAME = "changes"
DEFAULT_ENABLED = True
READS: list[str] = []
UNITS: dict = {}
THRESHOLDS: dict = {}


def collect(job):
    raise Unavailable("not implemented yet")


def findings(section, th):
    return []
