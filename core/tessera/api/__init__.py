"""Kernel HTTP API (REST + JSON under /api/)."""
