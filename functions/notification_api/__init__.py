"""Notification API: the platform's events as email and in-app notifications (Tenant Admin Portal)."""
