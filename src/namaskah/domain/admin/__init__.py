"""Operator routes: users and the audit log, for the operator role only."""
