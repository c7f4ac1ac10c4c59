"""Deterministic sample business: a seeded simulation of a subscription company.

``generate(SampleParams(...), out_dir, crm_url)`` fills the three sources through their
real interfaces (the CRM database, the billing store behind the local billing API, the
survey inbox) and writes the planted truth used to measure attribution quality.
Command line: ``python -m defection_warehouse.sample --help``.
"""

from .build import fingerprint, generate
from .simulate import GENERATOR_VERSION, SampleParams

__all__ = ["GENERATOR_VERSION", "SampleParams", "fingerprint", "generate"]
