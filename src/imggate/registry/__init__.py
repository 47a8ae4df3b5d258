"""Turning image references into verified registry facts."""
