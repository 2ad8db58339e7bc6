"""Exporters: a Report in formats other tools read (node_exporter's textfile collector)."""
