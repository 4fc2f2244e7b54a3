"""Wallets and the double-entry ledger behind every credit balance."""
