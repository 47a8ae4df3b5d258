"""imggate.formats."""
