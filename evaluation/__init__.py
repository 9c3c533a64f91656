"""Offline evaluation: protocols, methods, metrics reports."""
