"""Piccolo app of the plugin: its tables and migrations (returned by ``tessera_tables``)."""

from tessera_sdk.plugin import tables_app

from tessera_loyalty.tables import TABLES

APP_CONFIG = tables_app("loyalty", TABLES, __file__)
