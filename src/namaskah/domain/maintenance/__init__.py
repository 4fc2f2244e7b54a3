"""Operational jobs: the ping that proves the request -> outbox -> broker -> worker path end to end."""
