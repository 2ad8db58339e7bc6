"""hostdiag: read-only host diagnostics for Linux incident stabilization."""

__version__ = "0.1.0"
