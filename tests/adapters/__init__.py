"""Adapters that misbehave as real kernels do: crash the process, hang, or fail to import.
The gate must survive each of them and report it as a finding (tests/test_isolation.py)."""
