"""Invoices: one per paid top-up or subscription period, numbered without gaps per year, immutable, as PDF."""
