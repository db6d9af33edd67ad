"""Verification: check results, the HTTP client, smoke (the deployed stack) and doctor (the machine)."""
