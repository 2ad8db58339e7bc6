"""Step 6: the blind spots and the five-second read (Condition / Action / Need)."""
from __future__ import annotations

from hostdiag.core import sanitize
from hostdiag.core.model import BlindSpot, Finding, Headline, Section


def blind_spots(sections: dict[str, Section], catalog=None) -> list[BlindSpot]:
    """One per section that is not ok, plus an invalid user catalog."""
    blind = [BlindSpot(s.name, s.status, s.reason or "") for s in sections.values() if s.status != "ok"]
    if catalog is not None and catalog.errors:
        blind.append(BlindSpot("signatures", "partial", sanitize.clean(
            f"{len(catalog.errors)} catalog file(s) invalid and skipped (hostdiag signatures lint): "
            + "; ".join(catalog.errors[:3]))))
    return blind


def headline(findings: list[Finding], blind: list[BlindSpot]) -> Headline:
    """Condition / Action / Need, one line each; `findings` ranked, most severe first."""
    need = _need(blind)
    serious = [f for f in findings if f.severity != "info"]
    if not serious:
        return Headline("ok", "No warning or critical condition found.",
                        "Nothing to stabilize on this host from what hostdiag can see.", need)
    top = serious[0]
    n_crit = sum(f.severity == "critical" for f in serious)
    more = len(serious) - 1
    condition = top.title + (f" (since {top.since})" if top.since else "")
    if more:
        condition += f"; +{more} more ({n_crit} critical)" if n_crit else f"; +{more} more"
    first = next((s for s in top.stabilize if not s.lower().startswith("do not")), "see the findings below")
    action = f"{first}. Verify: {top.verify}" if top.verify else first
    return Headline(top.severity, condition, action, need)


def _need(blind: list[BlindSpot]) -> str:
    if not blind:
        return "Nothing: every collector saw its resource."
    # "run as root" is the collectors' hint; "--proc-root" or "even as root" must not read as one.
    root = [b.collector for b in blind if "run as root" in b.reason]
    parts = []
    if root:
        parts.append("run as root to see " + ", ".join(dict.fromkeys(root)) + " fully")
    other = [b for b in blind if b.collector not in root]
    parts += [f"{b.collector}: {b.status}" for b in other]
    return "; ".join(parts) + " (see Blind spots)."
