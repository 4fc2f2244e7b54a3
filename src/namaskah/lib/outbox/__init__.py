"""Transactional outbox: jobs are requested inside the caller's transaction and sent to the broker after commit."""
