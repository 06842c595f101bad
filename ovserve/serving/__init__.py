"""Servables loaded from an OVMS-style config.json, and the registry that holds them."""
