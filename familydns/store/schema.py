"""The database schema as numbered migrations, applied in order when a store opens.

Step N is applied in one transaction that also sets ``PRAGMA user_version = N``, so a
crash mid-migration leaves the previous version intact and the next open retries it.
Steps are only ever appended: a released step is never edited.

Column types are the plain ones PostgreSQL shares (INTEGER, REAL, TEXT); booleans are
0/1 and dates ISO text. ``households.version`` is bumped by triggers on every table the
policy snapshot reads, so the resolver learns of a CLI change with one indexed read.
"""

from __future__ import annotations

_POLICY_TABLES = ("devices", "domain_rules", "category_rules", "schedules", "overrides")


def _version_triggers() -> tuple[str, ...]:
    """AFTER INSERT/UPDATE/DELETE triggers bumping the owning household's version."""
    triggers = []
    for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        triggers.append(
            f"CREATE TRIGGER profiles_{event.lower()}_version AFTER {event} ON profiles "
            f"BEGIN UPDATE households SET version = version + 1 "
            f"WHERE id = {row}.household_id; END"
        )
        for table in _POLICY_TABLES:
            triggers.append(
                f"CREATE TRIGGER {table}_{event.lower()}_version AFTER {event} ON {table} "
                f"BEGIN UPDATE households SET version = version + 1 WHERE id = "
                f"(SELECT household_id FROM profiles WHERE id = {row}.profile_id); END"
            )
    return tuple(triggers)


_V1: tuple[str, ...] = (
    """CREATE TABLE households (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        household_id INTEGER NOT NULL REFERENCES households(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        birthdate TEXT,
        age INTEGER,
        age_as_of TEXT,
        safe_search INTEGER,
        youtube TEXT,
        allowlist_only INTEGER NOT NULL DEFAULT 0,
        bypass_protection INTEGER,
        block_answer TEXT NOT NULL DEFAULT 'nxdomain',
        CHECK ((birthdate IS NULL) <> (age IS NULL)),
        UNIQUE (household_id, name),
        UNIQUE (id, household_id)
    )""",
    """CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        profile_id INTEGER NOT NULL,
        household_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ip', 'cidr', 'mac', 'client_id')),
        value TEXT NOT NULL,
        name TEXT,
        FOREIGN KEY (profile_id, household_id)
            REFERENCES profiles(id, household_id) ON DELETE CASCADE,
        UNIQUE (household_id, kind, value)
    )""",
    "CREATE INDEX devices_profile ON devices(profile_id)",
    """CREATE TABLE domain_rules (
        profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('allow', 'deny')),
        PRIMARY KEY (profile_id, domain)
    )""",
    """CREATE TABLE category_rules (
        profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        category TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('block', 'unblock')),
        PRIMARY KEY (profile_id, category)
    )""",
    """CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        days TEXT NOT NULL,
        start_time TEXT NOT NULL,
        end_time TEXT NOT NULL,
        block_all INTEGER NOT NULL DEFAULT 0,
        block TEXT NOT NULL DEFAULT '',
        allow TEXT NOT NULL DEFAULT '',
        UNIQUE (profile_id, name)
    )""",
    """CREATE TABLE overrides (
        id INTEGER PRIMARY KEY,
        profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('pause', 'allow')),
        domain TEXT,
        until REAL,
        CHECK ((kind = 'pause') = (domain IS NULL))
    )""",
    "CREATE UNIQUE INDEX overrides_one ON overrides(profile_id, kind, COALESCE(domain, ''))",
    """CREATE TABLE blocked_log (
        id INTEGER PRIMARY KEY,
        household_id INTEGER NOT NULL REFERENCES households(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        device TEXT NOT NULL,
        profile TEXT NOT NULL,
        qname TEXT NOT NULL,
        qtype INTEGER NOT NULL,
        action TEXT NOT NULL,
        category TEXT,
        rule TEXT,
        source TEXT,
        reason TEXT
    )""",
    "CREATE INDEX blocked_log_household_ts ON blocked_log(household_id, ts)",
    "CREATE INDEX blocked_log_profile_ts ON blocked_log(household_id, profile, ts)",
    *_version_triggers(),
)

_V2: tuple[str, ...] = (
    # One log row per distinct lookup per flush window: ``hits`` is how many it stands
    # for. Rows written before are one lookup each, which the default says.
    "ALTER TABLE blocked_log ADD COLUMN hits INTEGER NOT NULL DEFAULT 1",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
"""Step i (0-based) brings the database to ``user_version = i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
