"""Partner API keys: scoped, shown once, stored as a hash with a lookup prefix."""
