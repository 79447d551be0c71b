"""Shared test support: what tests need and the shipped layer must not contain."""
