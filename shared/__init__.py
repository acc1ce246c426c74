"""The platform kernel: catalog, events, unit of work, event intake, HTTP, auth, config and clients.

Nothing here creates a network client at import time (cold start matters in Cloud Functions).
"""
