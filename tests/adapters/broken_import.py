"""An adapter module whose import fails: it needs a library that is broken on this machine."""

raise ImportError("libmykernels.so: undefined symbol: fused_norm_v2 (planted by normspec's tests)")
