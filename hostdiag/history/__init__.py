"""Capture history: a bounded local SQLite store of periodic captures and its read API.

Write side: `record.from_report(report.to_dict(), t, procs)` -> `Store.open(path).append(rec)`.
Read side (for the snapshot / analysis layer): `History.open_ro(path)` then `.series()`,
`.process_series()`, `.finding_spans()`, `.since_when()`, `.span()`, `.diff()`. See store.py.
"""
from hostdiag.history.store import History, Store, StoreBusy, StoreError, StoreRefused, default_path


def bundle_slice(ctx, since: float, until: float):
    """The bundle's hook (hostdiag.bundle.contents.history_slice): the store's slice for the window."""
    from hostdiag.history.enrich import bundle_slice as _slice

    return _slice(ctx, since, until)


__all__ = ["History", "Store", "StoreBusy", "StoreError", "StoreRefused", "bundle_slice", "default_path"]
