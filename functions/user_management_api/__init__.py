"""User Management API (User Auth Service; process Manage User Access: users, invitations, imports)."""
