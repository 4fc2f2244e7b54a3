"""Tiers: each one's request limit and feature flags, kept in the database and edited by operators."""
