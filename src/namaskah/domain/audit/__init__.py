"""Audit log: a hash-chained record of every sensitive change, written in the transaction that made it."""
