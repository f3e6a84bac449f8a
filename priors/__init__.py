"""Bundled claim and scenario specs (data); `forecast init` copies them into a workspace."""
