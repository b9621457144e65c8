"""normspec: property-based verification and differential testing of normalization layers."""

__version__ = "0.1.0"
