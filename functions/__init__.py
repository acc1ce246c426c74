"""One package per API: each is deployed as its own Cloud Functions (HTTP and events)."""
