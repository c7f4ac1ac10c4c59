"""Defection Warehouse: extract, land and load subscription data, then explain defections."""

__version__ = "0.1.0"
