"""Tessera SDK: the typed HTTP client and the plugin author's kit."""

from tessera.hookspecs import hookimpl

__all__ = ["hookimpl"]
