"""Backend adapters: the protocol, the registry of built-in adapters, and external loading."""
