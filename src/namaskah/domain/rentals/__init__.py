"""Rentals: a number kept for whole days, paid up front, extendable, renewable and released with a pro rata refund."""
