"""Customer Data API: organizations, contacts, search, duplicates, merges, bulk imports, GDPR."""
