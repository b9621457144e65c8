"""The property suite: Hypothesis strategies and the properties every backend must satisfy."""
