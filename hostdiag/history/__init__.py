"""Capture history: a bounded local SQLite store of periodic captures and its read API.

Write side: `record.from_report(report.to_dict(), t, procs)` -> `Store.open(path).append(rec)`.
Read side (for the snapshot / analysis layer): `History.open_ro(path)` then `.series()`,
`.process_series()`, `.finding_spans()`, `.since_when()`, `.span()`, `.diff()`. See store.py.
"""
from hostdiag.history.paths import default_path

_STORE_NAMES = ("History", "Store", "StoreBusy", "StoreError", "StoreRefused")


def __getattr__(name):
    """The store classes load sqlite3: only when asked for (PEP 562)."""
    if name in _STORE_NAMES:
        from hostdiag.history import store

        return getattr(store, name)
    raise AttributeError(name)


def bundle_slice(ctx, since: float, until: float):
    """The bundle's hook (hostdiag.bundle.contents.history_slice): the store's slice for the window."""
    from hostdiag.history.enrich import bundle_slice as _slice

    return _slice(ctx, since, until)


__all__ = ["History", "Store", "StoreBusy", "StoreError", "StoreRefused", "bundle_slice", "default_path"]
