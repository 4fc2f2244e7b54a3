"""Subscriptions: tiers sold by the month from wallet credits, renewed by a sweep, with grace and downgrade."""
