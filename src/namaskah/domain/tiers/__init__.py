"""Tiers: each one's request limit, feature flags and plan price, kept in the database and edited by operators."""
