"""Putting agents on a lab: PKI, the hardened broker config, inventories, wheel bundles, Ansible flash."""
