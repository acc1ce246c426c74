"""Audit API (Audit Trail Service): an append-only, tamper-evident audit trail per tenant, with alerts."""
