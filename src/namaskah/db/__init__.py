"""Database plumbing: model base, engines, sessions and the migration runner."""
