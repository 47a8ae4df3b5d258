"""imggate.policy."""
