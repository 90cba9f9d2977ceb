"""The parents' CLI: every command, its output, and wrong input giving one clear line."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from familydns.cli import cli
from familydns.textout import bars, format_duration, parse_duration, table

Invoke = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def run(data_dir: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(cli, ["--data-dir", str(data_dir), *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


@pytest.fixture
def family(run: Invoke) -> Invoke:
    run("init")
    run("profile", "add", "anna", "--birthdate", "2016-04-02")
    run("profile", "add", "ben", "--age", "14")
    run("device", "add", "anna", "--ip", "192.168.1.23", "--name", "tablet")
    run("device", "add", "ben", "--mac", "AA-BB-CC-DD-EE-01")
    return run


def counts(data_dir: Path) -> tuple[int, ...]:
    with sqlite3.connect(data_dir / "familydns.db") as db:
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "profiles", "devices", "domain_rules", "schedules", "overrides"))


def test_init_writes_a_valid_config_and_says_what_next(run: Invoke, data_dir: Path) -> None:
    out = run("init").output
    assert (data_dir / "config.yaml").is_file() and (data_dir / "familydns.db").is_file()
    assert "Next: familydns profile add" in out
    assert "ok" in run("config", "check").output
    again = run("init", ok=False)
    assert again.exit_code == 1 and "already exists" in again.output


def test_profile_list_and_show_include_age_defaults(family: Invoke) -> None:
    listed = json.loads(family("profile", "list", "--json").output)
    assert {(p["name"], p["devices"]) for p in listed} >= {("anna", 1), ("ben", 1)}
    shown = json.loads(family("profile", "show", "anna", "--json").output)
    assert shown["blocked_categories"]["gambling"].startswith("age default")
    assert shown["safe_search"] is True and shown["youtube"] in ("strict", "moderate")
    assert shown["devices"] == [{"profile": "anna", "kind": "ip", "value": "192.168.1.23",
                                 "name": "tablet"}]
    text = family("profile", "show", "anna").output
    assert "Blocked categories:" in text and "Devices: ip 192.168.1.23 (tablet)" in text


def test_profile_set_rename_and_remove(family: Invoke) -> None:
    family("profile", "set", "ben", "--youtube", "strict", "--block-answer", "zero")
    shown = json.loads(family("profile", "show", "ben", "--json").output)
    assert shown["youtube"] == "strict" and shown["block_answer"] == "zero"
    family("profile", "set", "ben", "--rename", "benjamin")
    family("profile", "remove", "benjamin")
    names = [p["name"] for p in json.loads(family("profile", "list", "--json").output)]
    assert "benjamin" not in names and "ben" not in names


def test_rules_categories_schedules_pause(family: Invoke, data_dir: Path) -> None:
    family("allow", "anna", "khanacademy.org")
    assert "for 30m" in family("allow", "anna", "roblox.com", "--for", "30m").output
    family("deny", "anna", "TikTok.com")
    family("category", "block", "anna", "ai")
    family("category", "allow", "anna", "gaming")
    family("schedule", "add", "anna", "bedtime", "--from", "21:00", "--to", "07:00",
           "--block-all", "--allow", "school.example.org")
    family("schedule", "add", "anna", "homework", "--days", "mon-fri", "--from", "16:00",
           "--to", "18:00", "--block", "gaming,social")
    shown = json.loads(family("profile", "show", "anna", "--json").output)
    assert shown["deny"] == ["tiktok.com"] and shown["allow"] == ["khanacademy.org"]
    assert "roblox.com" in shown["temporary_allows"]
    assert shown["blocked_categories"]["ai"] == "added by parent"
    assert "gaming" not in shown["blocked_categories"]
    schedules = json.loads(family("schedule", "list", "anna", "--json").output)
    assert [s["name"] for s in schedules] == ["bedtime", "homework"]
    family("schedule", "remove", "anna", "homework")
    family("forget", "anna", "tiktok.com")
    family("pause", "ben", "--for", "1h")
    assert json.loads(family("profile", "show", "ben", "--json").output)["paused"]
    assert "Resumed ben" in family("resume", "ben").output
    assert "was not paused" in family("resume", "ben").output
    assert counts(data_dir) == (2, 2, 1, 1, 1)


def test_categories_lists_every_id(run: Invoke) -> None:
    rows = json.loads(run("categories", "--json").output)
    ids = {r["id"] for r in rows}
    assert {"adult", "gambling", "dns_bypass", "kids_allowlist", "sex_education"} <= ids


def test_explain_names_the_list_line_and_the_age_default(family: Invoke) -> None:
    out = json.loads(family("explain", "www.bet365.com", "--profile", "anna", "--at", "12:00",
                            "--json").output)
    assert out["decision"] == "block" and out["category"] == "gambling"
    assert out["rule"] == "bet365.com" and out["list"] == "starter-gambling"
    assert out["line_text"] == "bet365.com"
    assert out["why_category"].startswith("age default")
    text = family("explain", "www.bet365.com", "--device", "192.168.1.23", "--at",
                  "12:00").output
    assert re.search(r"list:\s+starter-gambling, line \d+: bet365.com", text)


def test_explain_by_mac_and_schedule(family: Invoke) -> None:
    family("schedule", "add", "anna", "bedtime", "--from", "21:00", "--to", "07:00",
           "--block-all")
    night = json.loads(family("explain", "example.org", "--profile", "anna", "--at", "22:30",
                              "--json").output)
    assert night["decision"] == "block" and night["schedule"] == "bedtime"
    google = json.loads(family("explain", "www.google.com", "--device", "aa:bb:cc:dd:ee:01",
                               "--json").output)
    assert google["profile"] == "ben" and google["rewrite"] == "forcesafesearch.google.com"


def test_lists_status_shows_every_starter_list(run: Invoke) -> None:
    rows = json.loads(run("lists", "status", "--json").output)
    assert len(rows) == 26 and all(r["entries"] > 0 and not r["error"] for r in rows)
    assert "No URL lists" in run("lists", "update").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("profile", "add", "anna", "--age", "9"), "already exists"),
        (("profile", "add", "carl"), "exactly one of --birthdate or --age"),
        (("profile", "add", "carl", "--birthdate", "2016-02-30"), "Invalid value"),
        (("profile", "show", "nobody"), "no profile named 'nobody'"),
        (("device", "add", "nobody", "--ip", "10.0.0.1"), "nobody"),
        (("device", "add", "ben", "--ip", "192.168.1.23"), "already belongs to profile"),
        (("device", "add", "ben", "--mac", "zz:zz"), "MAC"),
        (("device", "add", "ben", "--cidr", "10.0.0.1/8"), "10.0.0.1/8"),
        (("device", "add", "ben", "10.0.0.1"), "--ip, --cidr, --mac or --client-id"),
        (("allow", "anna", "not a domain"), "not a domain"),
        (("allow", "anna", "x.org", "--for", "soon"), "bad duration 'soon'"),
        (("deny", "nobody", "x.org"), "nobody"),
        (("category", "block", "anna", "candy"), "candy"),
        (("schedule", "add", "anna", "x", "--from", "25:00", "--to", "07:00", "--block-all"),
         "25:00"),
        (("schedule", "add", "anna", "x", "--from", "21:00", "--to", "07:00"),
         "exactly one of --block-all or --block"),
        (("schedule", "add", "anna", "x", "--days", "mnday", "--from", "21:00", "--to",
          "07:00", "--block-all"), "mnday"),
        (("pause", "anna", "--for", "-1h"), "bad duration"),
        (("explain", "x.org"), "exactly one of --profile or --device"),
        (("explain", "x.org", "--profile", "nobody"), "no profile named"),
        (("profile", "set", "anna"), "nothing to change"),
    ],
)
def test_wrong_input_gets_one_clear_line_and_writes_nothing(
        family: Invoke, data_dir: Path, args: tuple[str, ...], message: str) -> None:
    before = counts(data_dir)
    result = family(*args, ok=False)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
    assert counts(data_dir) == before


def test_bad_config_file_is_reported_with_its_key(run: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("profiles: [{name: a, age: 9, block: [candy]}]\n")
    result = run("config", "check", str(bad), ok=False)
    assert result.exit_code == 1 and "profiles[0].block[0]" in result.output
    assert "no such file" in run("config", "check", str(tmp_path / "x.yaml"), ok=False).output


def test_export_import_round_trip(family: Invoke, tmp_path: Path, data_dir: Path) -> None:
    family("deny", "anna", "tiktok.com")
    family("schedule", "add", "anna", "bedtime", "--from", "21:00", "--to", "07:00",
           "--block-all", "--allow", "school.example.org")
    out = tmp_path / "profiles.yaml"
    family("profile", "export", "-o", str(out))
    before = family("profile", "show", "anna", "--json").output
    family("profile", "remove", "anna")
    family("profile", "remove", "ben")
    assert "Imported 2 profiles" in family("profile", "import", str(out)).output
    assert family("profile", "show", "anna", "--json").output == before
    again = family("profile", "import", str(out), ok=False)
    assert again.exit_code == 1 and "already exists" in again.output


def test_logs_and_report_read_the_blocked_lookup_log(family: Invoke, data_dir: Path) -> None:
    now = time.time()
    rows = [(now - 60 * i, "home", "192.168.1.23", "anna", f"{name}", 1, "block", cat,
             name, "starter-" + cat, "blocked") for i, (name, cat) in enumerate(
        [("bet365.com", "gambling")] * 3 + [("pornhub.com", "adult")])]
    with sqlite3.connect(data_dir / "familydns.db") as db:
        hid = db.execute("SELECT id FROM households WHERE name='home'").fetchone()[0]
        db.executemany(
            "INSERT INTO blocked_log (household_id, ts, device, profile, qname, qtype, action,"
            " category, rule, source, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(hid, *r[:1], *r[2:]) for r in rows])
    logs = family("logs", "--since", "2h").output.splitlines()
    assert len(logs) == 4 and "bet365.com" in logs[-1]
    only = family("logs", "--category", "adult", "--json").output.splitlines()
    assert [json.loads(line)["qname"] for line in only] == ["pornhub.com"]
    report = json.loads(family("report", "--days", "1", "--json").output)
    assert report[0]["profile"] == "anna" and report[0]["total"] == 4
    assert report[0]["by_category"][0] == ["gambling", 3]
    text = family("report").output
    assert "By category:" in text and "Top blocked domains:" in text and "By hour" in text


def test_logs_show_a_rows_count_and_reports_sum_them(family: Invoke, data_dir: Path) -> None:
    """A row stands for ``hits`` identical lookups: ``logs`` shows ×N, reports add N."""
    now = time.time()
    with sqlite3.connect(data_dir / "familydns.db") as db:
        hid = db.execute("SELECT id FROM households WHERE name='home'").fetchone()[0]
        db.executemany(
            "INSERT INTO blocked_log (household_id, ts, device, profile, qname, qtype, action,"
            " category, hits) VALUES (?, ?, '192.168.1.23', 'anna', ?, 1, 'block', ?, ?)",
            [(hid, now - 120, "bet365.com", "gambling", 1),
             (hid, now - 60, "app-measurement.com", "trackers", 12)])
    logs = family("logs").output.splitlines()
    assert "app-measurement.com ×12" in logs[-1] and "×" not in logs[0]
    rows = [json.loads(line) for line in family("logs", "--json").output.splitlines()]
    assert [(r["qname"], r["hits"]) for r in rows] == [("bet365.com", 1),
                                                       ("app-measurement.com", 12)]
    report = json.loads(family("report", "--days", "1", "--json").output)
    assert report[0]["total"] == 13
    assert report[0]["top_domains"] == [["app-measurement.com", 12], ["bet365.com", 1]]
    assert "13 blocked lookups" in family("report").output


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h30m", 5400),
                                               ("2d", 172800), ("1w", 604800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5", "1x", "-1h", "0m", "1h 2"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_tables_and_bars() -> None:
    assert table(["a", "n"], [["x", 1], ["yy", 10]]).splitlines() == [
        "a    n", "--  --", "x    1", "yy  10"]
    assert bars([("a", 2), ("b", 1)], width=4).splitlines() == ["a  #### 2", "b  ## 1"]
