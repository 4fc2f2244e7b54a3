"""Partner webhooks: endpoints, the events recorded for them, and their signed, retried, SSRF-guarded deliveries."""
