"""execbench: measure the provider-skip optimization of an order executor."""

__version__ = "0.1.0"
