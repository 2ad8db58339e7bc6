"""The shipped signature catalog: data files only (installed as hostdiag.signatures)."""
