"""Genie bundles: assembling them on the host and putting them on the phone."""
