"""Every query the store runs, in one place, so a PostgreSQL port touches one module.

Plain SQL shared by SQLite and PostgreSQL (``ON CONFLICT ... DO UPDATE``, window
functions), with ``?`` placeholders. Every query is scoped by a household id: nothing
here can read or change another household's rows.
"""

from __future__ import annotations

HOUSEHOLD_ADD = "INSERT INTO households (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
HOUSEHOLD_ID = "SELECT id FROM households WHERE name = ?"
HOUSEHOLD_IDS = "SELECT id FROM households ORDER BY id"
HOUSEHOLD_VERSION = "SELECT version FROM households WHERE name = ?"

PROFILE_COLUMNS = (
    "name, birthdate, age, age_as_of, safe_search, youtube, allowlist_only, bypass_protection, "
    "block_answer"
)
PROFILE_ID = "SELECT id FROM profiles WHERE household_id = ? AND name = ?"
PROFILE_KEY = (
    "SELECT p.id, p.household_id FROM profiles p JOIN households h ON h.id = p.household_id "
    "WHERE h.name = ? AND p.name = ?"
)
PROFILE_NAMES = (
    "SELECT p.name FROM profiles p JOIN households h ON h.id = p.household_id "
    "WHERE h.name = ? ORDER BY p.name"
)
PROFILE_BY_ID = f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = ?"
PROFILE_ROWS = (
    f"SELECT id, {PROFILE_COLUMNS} FROM profiles WHERE household_id = ? ORDER BY name"
)
PROFILE_INSERT = (
    f"INSERT INTO profiles (household_id, {PROFILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
PROFILE_UPDATE = (
    "UPDATE profiles SET name = ?, birthdate = ?, age = ?, age_as_of = ?, safe_search = ?, "
    "youtube = ?, allowlist_only = ?, bypass_protection = ?, block_answer = ? WHERE id = ?"
)
PROFILE_DELETE = "DELETE FROM profiles WHERE id = ?"
PROFILES_DELETE = "DELETE FROM profiles WHERE household_id = ?"

DEVICE_OWNER = (
    "SELECT p.name, d.name FROM devices d JOIN profiles p ON p.id = d.profile_id "
    "WHERE d.household_id = ? AND d.kind = ? AND d.value = ?"
)
DEVICE_INSERT = (
    "INSERT INTO devices (profile_id, household_id, kind, value, name) VALUES (?, ?, ?, ?, ?)"
)
DEVICE_DELETE = "DELETE FROM devices WHERE household_id = ? AND kind = ? AND value = ?"
DEVICES = (
    "SELECT d.profile_id, p.name, d.kind, d.value, d.name FROM devices d "
    "JOIN profiles p ON p.id = d.profile_id WHERE d.household_id = ? ORDER BY d.id"
)

DEVICES_IN = (
    "SELECT p.name, d.kind, d.value, d.name FROM devices d "
    "JOIN profiles p ON p.id = d.profile_id JOIN households h ON h.id = d.household_id "
    "WHERE h.name = ? ORDER BY d.id"
)

DOMAIN_RULE_SET = (
    "INSERT INTO domain_rules (profile_id, domain, action) VALUES (?, ?, ?) "
    "ON CONFLICT (profile_id, domain) DO UPDATE SET action = excluded.action"
)
DOMAIN_RULE_DELETE = "DELETE FROM domain_rules WHERE profile_id = ? AND domain = ?"
DOMAIN_RULES = (
    "SELECT r.profile_id, r.domain, r.action FROM domain_rules r "
    "JOIN profiles p ON p.id = r.profile_id WHERE p.household_id = ? ORDER BY r.domain"
)

CATEGORY_RULE_SET = (
    "INSERT INTO category_rules (profile_id, category, action) VALUES (?, ?, ?) "
    "ON CONFLICT (profile_id, category) DO UPDATE SET action = excluded.action"
)
CATEGORY_RULE_DELETE = "DELETE FROM category_rules WHERE profile_id = ? AND category = ?"
CATEGORY_RULES = (
    "SELECT r.profile_id, r.category, r.action FROM category_rules r "
    "JOIN profiles p ON p.id = r.profile_id WHERE p.household_id = ? ORDER BY r.category"
)

SCHEDULE_INSERT = (
    "INSERT INTO schedules (profile_id, name, days, start_time, end_time, block_all, block, "
    "allow) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SCHEDULE_EXISTS = "SELECT 1 FROM schedules WHERE profile_id = ? AND name = ?"
SCHEDULE_DELETE = "DELETE FROM schedules WHERE profile_id = ? AND name = ?"
SCHEDULES = (
    "SELECT s.profile_id, s.name, s.days, s.start_time, s.end_time, s.block_all, s.block, "
    "s.allow FROM schedules s JOIN profiles p ON p.id = s.profile_id "
    "WHERE p.household_id = ? ORDER BY s.id"
)

OVERRIDE_INSERT = "INSERT INTO overrides (profile_id, kind, domain, until) VALUES (?, ?, ?, ?)"
PAUSE_DELETE = "DELETE FROM overrides WHERE profile_id = ? AND kind = 'pause'"
ALLOW_DELETE = "DELETE FROM overrides WHERE profile_id = ? AND kind = 'allow' AND domain = ?"
OVERRIDES_EXPIRED_DELETE = (
    "DELETE FROM overrides WHERE profile_id = ? AND until IS NOT NULL AND until <= ?"
)
OVERRIDES_LIVE = (
    "SELECT p.name, o.kind, o.domain, o.until FROM overrides o "
    "JOIN profiles p ON p.id = o.profile_id "
    "WHERE p.household_id = ? AND (o.until IS NULL OR o.until > ?) ORDER BY o.id"
)

LOG_INSERT = (
    "INSERT INTO blocked_log (household_id, ts, device, profile, qname, qtype, action, "
    "category, rule, source, reason, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
LOG_DELETE_BEFORE = (
    "DELETE FROM blocked_log WHERE id IN (SELECT id FROM blocked_log "
    "WHERE household_id = ? AND ts < ? LIMIT ?)"
)
LOG_COUNT = "SELECT COUNT(*) FROM blocked_log WHERE household_id = ?"
"""Rows, not lookups: the ``max_rows`` cap bounds the file, whatever each row stands for."""
LOG_DELETE_OLDEST = (
    "DELETE FROM blocked_log WHERE id IN (SELECT id FROM blocked_log "
    "WHERE household_id = ? ORDER BY ts, id LIMIT ?)"
)
LOG_COLUMNS = (
    "ts, device, profile, qname, qtype, action, category, rule, source, reason, hits"
)


def log_query(profile: bool, since: bool, category: bool, action: bool) -> str:
    """The newest rows first, filtered by whichever of the optional filters are given."""
    where = ["household_id = ?"]
    where += ["profile = ?"] if profile else []
    where += ["ts >= ?"] if since else []
    where += ["category = ?"] if category else []
    where += ["action = ?"] if action else []
    return (f"SELECT {LOG_COLUMNS} FROM blocked_log WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, id DESC LIMIT ?")


_REPORT_WHERE = "household_id = ? AND action = ? AND ts >= ? AND ts < ?"
"""Reports count SUM(hits), never rows: a log row stands for ``hits`` identical lookups."""


def report_filter(profile: bool) -> str:
    return _REPORT_WHERE + (" AND profile = ?" if profile else "")


def report_totals(profile: bool) -> str:
    return (f"SELECT profile, SUM(hits) FROM blocked_log WHERE {report_filter(profile)} "
            "GROUP BY profile ORDER BY profile")


def report_categories(profile: bool) -> str:
    return (f"SELECT profile, COALESCE(category, ''), SUM(hits) FROM blocked_log "
            f"WHERE {report_filter(profile)} GROUP BY profile, COALESCE(category, '')")


def report_top_domains(profile: bool) -> str:
    """The ``top`` most blocked names of each profile, ties broken by name."""
    return (
        "SELECT profile, qname, n FROM (SELECT profile, qname, SUM(hits) AS n, "
        "ROW_NUMBER() OVER (PARTITION BY profile ORDER BY SUM(hits) DESC, qname) AS r "
        f"FROM blocked_log WHERE {report_filter(profile)} GROUP BY profile, qname) AS t "
        "WHERE r <= ? ORDER BY profile, n DESC, qname"
    )


def report_quarter_hours(profile: bool) -> str:
    """Counts per 15-minute bucket: time zones move by multiples of 15 minutes, so each
    bucket falls in exactly one local hour, whatever the zone and its DST rules."""
    return (
        "SELECT profile, CAST(ts / 900 AS INTEGER) AS q, SUM(hits) FROM blocked_log "
        f"WHERE {report_filter(profile)} GROUP BY profile, q"
    )
