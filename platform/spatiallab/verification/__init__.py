"""Verification of generated pairs by annotators (issue 5). So far: the agreement statistics kernel."""
