"""Loyalty points for Tessera CRM clients (an example third-party plugin)."""

__version__ = "0.1.0"
