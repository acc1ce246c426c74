"""Access Control API (Access Control Service; Account Administration; Access Role)."""
