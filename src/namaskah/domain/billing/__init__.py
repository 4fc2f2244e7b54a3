"""Money in: Paystack top-ups, the Paystack webhook receiver and its jobs, and the dev-mode Paystack sandbox."""
