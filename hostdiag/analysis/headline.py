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


def headline(findings: list[Finding], blind: list[BlindSpot], sections: dict[str, Section] | None = None,
             interrupted: bool = False) -> Headline:
    """Condition / Action / Need, one line each; `findings` ranked, most severe first.

    Never a false all-clear: with most collectors unavailable and nothing found, the status is
    "unknown" (exit 3) with the reason; an interrupted window says so in the Condition."""
    need = _need(blind)
    serious = [f for f in findings if f.severity != "info"]
    partial = "PARTIAL (interrupted during the window): " if interrupted else ""
    down = [s for s in (sections or {}).values() if s.status == "unavailable"]
    if not serious and sections and len(down) * 2 > len(sections):
        why = down[0].reason or "no reason given"
        return Headline("unknown", f"{partial}Cannot judge this host: {len(down)} of {len(sections)} collectors "
                        f"unavailable (first: {down[0].name}: {why})",
                        "Fix what hostdiag can read (see Need), then run it again.", need)
    if not serious:
        # "no condition found" is only as good as what was seen: say how much was not
        part = [s.name for s in (sections or {}).values() if s.status != "ok"]
        seen = (f" in what could be read ({len(part)} of {len(sections)} collectors partial or unavailable: "
                f"{', '.join(part)})" if part else "")
        return Headline("ok", partial + f"No warning or critical condition found{seen}.",
                        "Nothing to stabilize on this host from what hostdiag can see.", need)
    top = serious[0]
    n_crit = sum(f.severity == "critical" for f in serious)
    more = len(serious) - 1
    condition = partial + top.title + (f" (since {top.since})" if top.since else "")
    if more:
        condition += f"; +{more} more ({n_crit} critical)" if n_crit else f"; +{more} more"
    first = next((s for s in top.stabilize if not s.lower().startswith("do not")), "see the findings below")
    action = f"{first}. Verify: {top.verify}" if top.verify else first
    return Headline(top.severity, condition, action, need, top.verify)


def _need(blind: list[BlindSpot]) -> str:
    if not blind:
        return "Nothing: every collector saw its resource."
    # "run as root" is the collectors' hint; "--proc-root" or "even as root" must not read as one.
    root = [b.collector for b in blind if "run as root" in b.reason]
    parts = []
    if root:
        parts.append("run as root to see " + ", ".join(dict.fromkeys(root)) + " fully")
    by_status: dict[str, list[str]] = {}
    for b in blind:
        if b.collector not in root:
            by_status.setdefault(b.status, []).append(b.collector)
    parts += [f"{', '.join(names)}: {status}" for status, names in by_status.items()]
    return "; ".join(parts) + " (see Blind spots)."
