"""Events a number provider pushes to us (TextVerified webhooks): verified, stored once, applied by a job."""
