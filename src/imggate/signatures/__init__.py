"""imggate.signatures."""
