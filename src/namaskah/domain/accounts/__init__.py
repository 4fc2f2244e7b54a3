"""Accounts: users, passwords and login sessions (access and refresh tokens)."""
