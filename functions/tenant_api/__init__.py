"""Tenant API (Tenant Management; Tenant Aggregate: Tenant, User Seat)."""
