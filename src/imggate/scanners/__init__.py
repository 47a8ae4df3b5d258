"""imggate.scanners."""
