"""Tests of normspec itself."""
