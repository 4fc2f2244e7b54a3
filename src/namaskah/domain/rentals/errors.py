"""What the rental routes answer when a rule says no."""

from __future__ import annotations

from namaskah.lib.errors import DomainError


class RentalNotFound(DomainError):
    status_code = 404
    code = "rental_not_found"
    title = "Rental not found"


class FeatureNotInTier(DomainError):
    status_code = 403
    code = "feature_not_in_tier"
    title = "Feature not in your tier"


class UnsupportedRentalDays(DomainError):
    status_code = 422
    code = "unsupported_rental_days"
    title = "Unsupported rental length"


class RentalNotActive(DomainError):
    status_code = 409
    code = "rental_not_active"
    title = "Rental is not active"
