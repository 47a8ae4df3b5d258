"""imggate: a supply-chain security gate for container images."""

__version__ = "0.1.0"
