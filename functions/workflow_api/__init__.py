"""Workflow API: tenant-defined automation rules run on the step engine."""
