"""Capture history: a bounded local SQLite store of periodic captures and its read API.

Write side: `record.from_report(report.to_dict(), t, procs)` -> `Store.open(path).append(rec)`.
Read side (for the snapshot / analysis layer): `History.open_ro(path)` then `.series()`,
`.process_series()`, `.finding_spans()`, `.since_when()`, `.span()`, `.diff()`. See store.py.
"""
from hostdiag.history.store import History, Store, StoreBusy, StoreError, StoreRefused, default_path

__all__ = ["History", "Store", "StoreBusy", "StoreError", "StoreRefused", "default_path"]
