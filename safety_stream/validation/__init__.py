"""Validation: reading submitted records, checking each event, and cross-checking references."""
