"""imggate.admission."""
