"""Namaskah SMS: short-lived phone numbers for verifications and rentals."""

__version__ = "0.1.0"
