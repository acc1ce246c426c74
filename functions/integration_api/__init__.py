"""Integration API (Integration Gateway): outbound webhooks, signed per Standard Webhooks 1.0."""
