"""Errors the product reports to people.

::

    MonitorError            anything we can explain in one line
    ├── SettingsError       a configuration key is missing or malformed
    ├── DatabaseError       the database is unreachable or at the wrong schema
    └── UserError           a command was given bad input (a date, an id, a name)

Adapter failures have their own tree in :mod:`adapters.base`; the poller
records them on the source instead of raising.
"""


class MonitorError(Exception):
    """An error with a message fit to show as the one line a command prints."""


class SettingsError(MonitorError):
    """A configuration value is malformed; the message names the key."""


class DatabaseError(MonitorError):
    """The database cannot be used: unreachable, locked, or at another schema version."""


class UserError(MonitorError):
    """A command was given input it cannot act on."""
