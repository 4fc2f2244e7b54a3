"""Security primitives for accounts: argon2id password hashing, the password policy, access and opaque tokens."""
