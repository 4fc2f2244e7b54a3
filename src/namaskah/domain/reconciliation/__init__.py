"""Reconciliation: the daily comparison of Paystack's transactions with the ledger, reported to operators."""
