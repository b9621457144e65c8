"""Planted bugs: mutant backends, each caught by the property named in its docstring."""
