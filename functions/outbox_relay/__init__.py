"""Republishes outbox entries whose request died between the commit and the publish."""
