"""Verifications: one number bought for one SMS code, paid up front and refunded when no code arrives."""
