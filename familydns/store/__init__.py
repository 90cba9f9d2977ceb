"""The SQLite store: profiles, devices and rules the CLI edits, and the blocked-lookup log.

``Store`` holds the parent's configuration and feeds the resolver's snapshot
(``load``/``version``); ``LogWriter`` counts blocked lookups off the query path;
``export_yaml``/``import_yaml`` move profiles to and from the config file's format.
"""

from familydns.store.export import export_yaml, import_yaml
from familydns.store.log import (
    LogEvent,
    LogKey,
    LogWriter,
    ProfileReport,
    log_key,
    query_log,
    report,
)
from familydns.store.store import UNSET, Store, StoreState
from familydns.store.values import DEFAULT_HOUSEHOLD, Device, StoreError

__all__ = [
    "DEFAULT_HOUSEHOLD",
    "UNSET",
    "Device",
    "LogEvent",
    "LogKey",
    "LogWriter",
    "ProfileReport",
    "Store",
    "StoreError",
    "StoreState",
    "export_yaml",
    "import_yaml",
    "log_key",
    "query_log",
    "report",
]
