"""The parents' command line (click).

Every command works while the resolver runs: it opens the database briefly, changes one
thing in one transaction, and the resolver picks the change up within about a second.
Mistakes end with one clear line and a non-zero exit (ClickException: 1, usage: 2),
never a traceback, and leave nothing half-written. ``--json`` prints data for scripts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self, TypeVar

import click

from familydns import __version__
from familydns.config import MAX_WORKERS, Config, default_data_dir, load_config
from familydns.errors import ConfigError, FamilyDNSError
from familydns.textout import bars, format_duration, parse_duration, table

T = TypeVar("T")

INIT_CONFIG = """\
# familydns configuration (written by `familydns init`).
# Every key is documented in config.example.yaml in the familydns sources;
# check this file with: familydns config check
server:
  listen: ["127.0.0.1:5300"]     # add your LAN address, e.g. "192.168.1.2:53"
upstreams:
  servers:
    - udp://9.9.9.9:53
    - udp://1.1.1.1:53
household:
  timezone: local                # schedules use this zone, e.g. Europe/Paris
log:
  retention_days: 30             # blocked lookups are kept this long
lists:
  starter: true                  # the small lists shipped with familydns
  sources: []                    # add big public lists here (see config.example.yaml)
"""


class Context:
    """What every command needs: where the data lives and which config file to read."""

    def __init__(self, data_dir: Path | None, config_path: Path | None) -> None:
        self.explicit_data_dir = data_dir
        self.config_path = config_path

    def config(self) -> Config:
        return load_config(self.resolve_config_path())

    def resolve_config_path(self) -> Path | None:
        if self.config_path is not None:
            return self.config_path
        candidate = self.data_dir(None) / "config.yaml"
        return candidate if candidate.is_file() else None

    def data_dir(self, config: Config | None) -> Path:
        if self.explicit_data_dir is not None:
            return self.explicit_data_dir
        if config is not None and config.data_dir:
            return Path(config.data_dir).expanduser()
        return default_data_dir()


def setup_logging(level: str, worker: int | None = None) -> None:
    """Log lines go to stderr; a worker of ``serve --workers`` says which it is."""
    who = "%(name)s" if worker is None else f"%(name)s[worker {worker}]"
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {who}: %(message)s",
        stream=sys.stderr,
    )


def run_async(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command body; familydns errors become one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except FamilyDNSError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def emit(obj: Any, as_json: bool, text: Callable[[], str]) -> None:
    click.echo(json.dumps(obj, indent=2, default=str) if as_json else text())


def duration_option(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def when(ts: float | None) -> str:
    if ts is None:
        return "until resumed"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="familydns")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="FAMILYDNS_DATA_DIR",
              help="Where the database, downloaded lists and state live "
                   "[default: /var/lib/familydns as root, else ~/.local/share/familydns].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="FAMILYDNS_CONFIG",
              help="YAML configuration file [default: DATA_DIR/config.yaml if present, "
                   "else the embedded defaults].")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, config_path: Path | None) -> None:
    """familydns: DNS filtering with a profile for each child.

    Start with `familydns init`, add a profile per child with `familydns profile add`,
    attach their devices with `familydns device add`, and run `familydns serve`.
    """
    ctx.obj = Context(data_dir, config_path)


def _load(obj: Context) -> Config:
    try:
        return obj.config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class Session:
    """A command's view of the data: config, the store, and (on demand) the policy."""

    def __init__(self, obj: Context) -> None:
        self.config = _load(obj)
        self.data_dir = obj.data_dir(self.config)
        self.household = self.config.household.name
        self.store: Any = None

    async def __aenter__(self) -> Self:
        from familydns.store import Store

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await Store.open(self.data_dir / "familydns.db", check=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()

    def app(self) -> Any:
        from familydns.app import App

        config = self.config
        return App(lambda: config, self.data_dir, use_store=False)

    async def snapshot(self) -> tuple[Any, Any]:
        """(app, snapshot): the policy as the resolver would build it right now."""
        app = self.app()
        matcher = await asyncio.to_thread(app.load_lists, self.config)
        state = await self.store.load(self.household)
        return app, app.compile(self.config, matcher, state)


def with_session(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Open a Session for the command body and close it afterwards."""

    @click.pass_obj
    @functools.wraps(fn)
    @run_async
    async def wrapper(obj: Context, *args: Any, **kwargs: Any) -> T:
        async with Session(obj) as session:
            return await fn(session, *args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------ init, serve


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing config.yaml.")
@click.pass_obj
def init(obj: Context, force: bool) -> None:
    """Write a commented config and an empty database into the data directory."""
    data_dir = obj.data_dir(None)
    config = data_dir / "config.yaml"
    if config.exists() and not force:
        raise click.ClickException(f"{config} already exists (use --force to overwrite)")
    data_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(INIT_CONFIG, encoding="utf-8")

    async def create_db() -> None:
        from familydns.store import Store

        store = await Store.open(data_dir / "familydns.db")
        await store.close()

    run_async(create_db)()
    click.echo(f"Wrote {config} and {data_dir / 'familydns.db'}.")
    click.echo("Next: familydns profile add NAME --birthdate YYYY-MM-DD, then "
               "familydns device add NAME --ip ADDRESS, then familydns serve.")


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML configuration file (same as the global --config).")
@click.option("--listen", multiple=True, metavar="ADDR:PORT",
              help="Answer DNS on this address (UDP and TCP); repeatable; overrides the file.")
@click.option("--upstream", multiple=True, metavar="URL",
              help="Upstream resolver, e.g. udp://9.9.9.9:53 or tls://1.1.1.1:853#"
                   "cloudflare-dns.com; repeatable; overrides the file.")
@click.option("--metrics", metavar="ADDR:PORT",
              help="Prometheus endpoint address, or 'off'.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS),
              help="Resolver processes sharing the listen addresses, e.g. one per core "
                   "[default: server.workers, 1]; worker i serves metrics on the metrics "
                   "port + i.")
@click.option("--worker-index", type=click.IntRange(0, MAX_WORKERS - 1), hidden=True)
@click.option("--worker-fd", type=int, hidden=True)
@click.pass_obj
def serve(obj: Context, config_path: Path | None, listen: tuple[str, ...],
          upstream: tuple[str, ...], metrics: str | None, workers: int | None,
          worker_index: int | None, worker_fd: int | None) -> None:
    """Run the resolver until SIGTERM (SIGHUP reloads config and lists)."""
    if config_path is not None:
        obj.config_path = config_path

    def load() -> Config:
        cfg = obj.config()
        return cfg.with_overrides(listen=listen, upstreams=upstream, metrics=metrics,
                                  workers=workers)

    try:
        config = load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    data_dir = obj.data_dir(config)
    if worker_index is None and config.server.workers > 1:
        from familydns.workers import supervise

        setup_logging(config.log.level)
        # Each worker is this command again, with the paths resolved here and the
        # count fixed (a restarted worker must share the port even if the file changed).
        command = [sys.executable, "-m", "familydns", "--data-dir", str(data_dir)]
        found = obj.resolve_config_path()
        if found is not None:
            command += ["--config", str(found)]
        command += ["serve", "--workers", str(config.server.workers)]
        for item in listen:
            command += ["--listen", item]
        for url in upstream:
            command += ["--upstream", url]
        if metrics is not None:
            command += ["--metrics", metrics]
        sys.exit(supervise(config, command))

    from familydns.app import App, run
    from familydns.workers import worker_link

    setup_logging(config.log.level, worker_index)
    on_started = worker_link(worker_fd) if worker_fd is not None else None
    sys.exit(run(lambda: App(load, data_dir, worker=worker_index or 0), on_started))


# ------------------------------------------------------------------------ profiles


@cli.group()
def profile() -> None:
    """Add, show, change and remove children's profiles."""


def _age_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--age", type=click.IntRange(0, 120), help="Age in years today.")(fn)
    return click.option("--birthdate", type=click.DateTime(["%Y-%m-%d"]),
                        help="Birth date YYYY-MM-DD: the age band follows birthdays.")(fn)


def _tristate(value: str | None) -> bool | None:
    return None if value in (None, "auto") else value == "on"


TRISTATE = click.Choice(["on", "off", "auto"])


@profile.command("add")
@click.argument("name")
@_age_options
@click.option("--safe-search", type=TRISTATE, default="auto", show_default=True,
              help="Force safe search; auto follows the age (on for every minor).")
@click.option("--youtube", type=click.Choice(["strict", "moderate", "off", "auto"]),
              default="auto", show_default=True, help="YouTube restricted mode.")
@click.option("--allowlist-only", is_flag=True,
              help="Only the kids allowlist and allowed domains (for under-6s).")
@click.option("--block-answer", default="nxdomain", show_default=True,
              help="nxdomain, nodata, zero, refused, or the IP of a block page.")
@json_option
@with_session
async def profile_add(s: Session, name: str, birthdate: dt.datetime | None, age: int | None,
                      safe_search: str, youtube: str, allowlist_only: bool, block_answer: str,
                      as_json: bool) -> None:
    """Add a child's profile, given a birth date or an age."""
    if (birthdate is None) == (age is None):
        raise click.UsageError("give exactly one of --birthdate or --age")
    cfg = await s.store.add_profile(
        name, birthdate.date() if birthdate else None, age, household=s.household,
        safe_search=_tristate(safe_search), youtube=None if youtube == "auto" else youtube,
        allowlist_only=allowlist_only, block_answer=block_answer)
    emit(asdict(cfg), as_json, lambda: f"Added profile {cfg.name}. Next: familydns device "
         f"add {cfg.name} --ip ADDRESS (or --mac, --cidr, --client-id).")


@profile.command("list")
@json_option
@with_session
async def profile_list(s: Session, as_json: bool) -> None:
    """List profiles with their age band and devices."""
    _app, snap = await s.snapshot()
    today = dt.date.today()
    devices = await s.store.list_devices(household=s.household)
    rows = []
    for name in sorted(snap.profiles):
        p = snap.profiles[name]
        count = sum(1 for d in devices if d.profile == name)
        rows.append({"name": name, "band": p.band_on(today).label, "devices": count,
                     "default": name == snap.default_profile})
    emit(rows, as_json, lambda: table(
        ["profile", "age band", "devices", ""],
        [[r["name"], r["band"], r["devices"], "default for unknown devices" if r["default"]
          else ""] for r in rows]))


@profile.command("show")
@click.argument("name")
@json_option
@with_session
async def profile_show(s: Session, name: str, as_json: bool) -> None:
    """Everything that applies to a child, including the age band's categories."""
    from familydns.profiles.model import effective_categories

    _app, snap = await s.snapshot()
    p = snap.profiles.get(name)
    if p is None:
        raise click.ClickException(f"no profile named {name!r}")
    today = dt.date.today()
    band = p.band_on(today)
    now = time.time()
    paused, until = snap.overrides.paused(name, now)
    data = {
        "name": name,
        "birthdate": p.birthdate,
        "age_band": band.label,
        "blocked_categories": effective_categories(p, today),
        "schedules": [{"name": sc.name, "window": sc.window, "block_all": sc.block_all,
                       "block": sorted(sc.block), "allow": sorted(sc.allow)}
                      for sc in p.schedules],
        "allow": sorted(p.allow), "deny": sorted(p.deny),
        "temporary_allows": {d: when(u) for d, u in
                             snap.overrides.allows_by_profile.get(name, {}).items() if u > now},
        "safe_search": band.safe_search if p.safe_search is None else p.safe_search,
        "youtube": (p.youtube or band.youtube).value,
        "bypass_protection": (band.bypass_protection if p.bypass_protection is None
                              else p.bypass_protection),
        "allowlist_only": p.allowlist_only,
        "block_answer": p.block_answer.value,
        "paused": when(until) if paused else None,
        "devices": [asdict(d) for d in await s.store.list_devices(household=s.household)
                    if d.profile == name] if name in await s.store.list_profiles(s.household)
        else [],
    }

    def text() -> str:
        lines = [f"Profile {name}: age band {band.label}"
                 + (f", born {p.birthdate}" if p.birthdate else "")]
        if paused:
            lines.append(f"PAUSED {when(until)}")
        cats = data["blocked_categories"]
        lines.append("Blocked categories:")
        lines += [f"  {c:<18} {origin}" for c, origin in sorted(cats.items())] or ["  none"]
        lines.append(f"Safe search: {'on' if data['safe_search'] else 'off'};  YouTube: "
                     f"{data['youtube']};  bypass protection: "
                     f"{'on' if data['bypass_protection'] else 'off'};  blocked names "
                     f"answer: {data['block_answer']}"
                     + (";  allowlist-only mode" if p.allowlist_only else ""))
        lines.append("Allowed domains: " + (", ".join(data["allow"]) or "none"))
        lines.append("Denied domains: " + (", ".join(data["deny"]) or "none"))
        for d, u in data["temporary_allows"].items():
            lines.append(f"Temporarily allowed: {d} until {u}")
        for sc in data["schedules"]:
            what = "everything blocked" if sc["block_all"] else "blocks " + ", ".join(
                sc["block"])
            allow = f" (except {', '.join(sc['allow'])})" if sc["allow"] else ""
            lines.append(f"Schedule {sc['name']}: {sc['window']}: {what}{allow}")
        lines.append("Devices: " + (", ".join(
            f"{d['kind']} {d['value']}" + (f" ({d['name']})" if d["name"] else "")
            for d in data["devices"]) or "none"))
        return "\n".join(lines)

    emit(data, as_json, text)


@profile.command("set")
@click.argument("name")
@_age_options
@click.option("--rename", help="A new name for the profile.")
@click.option("--safe-search", type=TRISTATE)
@click.option("--youtube", type=click.Choice(["strict", "moderate", "off", "auto"]))
@click.option("--allowlist-only/--no-allowlist-only", default=None)
@click.option("--bypass-protection", type=TRISTATE)
@click.option("--block-answer", help="nxdomain, nodata, zero, refused, or an IP.")
@with_session
async def profile_set(s: Session, name: str, birthdate: dt.datetime | None, age: int | None,
                      rename: str | None, safe_search: str | None, youtube: str | None,
                      allowlist_only: bool | None, bypass_protection: str | None,
                      block_answer: str | None) -> None:
    """Change a profile's settings; only the options given change."""
    changes: dict[str, Any] = {}
    if birthdate is not None:
        changes["birthdate"] = birthdate.date()
    if age is not None:
        changes["age"] = age
    if rename is not None:
        changes["new_name"] = rename
    if safe_search is not None:
        changes["safe_search"] = _tristate(safe_search)
    if youtube is not None:
        changes["youtube"] = None if youtube == "auto" else youtube
    if allowlist_only is not None:
        changes["allowlist_only"] = allowlist_only
    if bypass_protection is not None:
        changes["bypass_protection"] = _tristate(bypass_protection)
    if block_answer is not None:
        changes["block_answer"] = block_answer
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    cfg = await s.store.set_profile(name, household=s.household, **changes)
    click.echo(f"Updated profile {cfg.name}.")


@profile.command("remove")
@click.argument("name")
@with_session
async def profile_remove(s: Session, name: str) -> None:
    """Remove a profile with its devices, rules and schedules."""
    await s.store.remove_profile(name, s.household)
    click.echo(f"Removed profile {name}; its devices now get the default profile.")


@profile.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@with_session
async def profile_export(s: Session, output: Path | None) -> None:
    """Profiles as YAML: a backup, or the profiles: section of a config file."""
    from familydns.store import export_yaml

    text = await export_yaml(s.store, s.household)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}.")


@profile.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--replace", is_flag=True, help="Remove the profiles not in FILE.")
@with_session
async def profile_import(s: Session, file: Any, replace: bool) -> None:
    """Add the profiles of a YAML export (all or nothing)."""
    from familydns.store import import_yaml

    profiles = await import_yaml(s.store, file.read(), s.household, replace=replace)
    click.echo(f"Imported {len(profiles)} profiles.")


# ------------------------------------------------------------------------ devices


@cli.group()
def device() -> None:
    """Attach devices to profiles (by IP, network, MAC address or client id)."""


@device.command("add")
@click.argument("profile_name", metavar="PROFILE")
@click.option("--ip", "kind", flag_value="ip", help="VALUE is an IP address.")
@click.option("--cidr", "kind", flag_value="cidr", help="VALUE is a network, 10.0.1.0/24.")
@click.option("--mac", "kind", flag_value="mac", help="VALUE is a MAC address (needs the "
              "router to add it, dnsmasq --add-mac, or the same LAN).")
@click.option("--client-id", "kind", flag_value="client_id", help="VALUE is a client id.")
@click.argument("value")
@click.option("--name", help="A label, e.g. 'tablet'.")
@with_session
async def device_add(s: Session, profile_name: str, kind: str | None, value: str,
                     name: str | None) -> None:
    """Attach a device to PROFILE: familydns device add anna --ip 192.168.1.23"""
    if kind is None:
        raise click.UsageError("say what VALUE is: --ip, --cidr, --mac or --client-id")
    d = await s.store.add_device(profile_name, kind, value, name, household=s.household)
    click.echo(f"Device {d.kind} {d.value} now uses profile {d.profile}.")


@device.command("list")
@click.option("--profile", "profile_name", help="Only this profile's devices.")
@json_option
@with_session
async def device_list(s: Session, profile_name: str | None, as_json: bool) -> None:
    """List devices and their profiles."""
    devices = await s.store.list_devices(profile_name, household=s.household)
    emit([asdict(d) for d in devices], as_json, lambda: table(
        ["profile", "kind", "value", "name"],
        [[d.profile, d.kind, d.value, d.name or ""] for d in devices]))


@device.command("remove")
@click.argument("value")
@with_session
async def device_remove(s: Session, value: str) -> None:
    """Detach a device (it then gets the default profile)."""
    d = await s.store.remove_device(value, household=s.household)
    click.echo(f"Removed {d.kind} {d.value} from profile {d.profile}.")


# ------------------------------------------------------------------------ rules


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.argument("domain")
@click.option("--for", "duration", metavar="DURATION",
              help="Only for a while: 30m, 1h, 2d (a temporary allow).")
@with_session
async def allow(s: Session, profile_name: str, domain: str, duration: str | None) -> None:
    """Always allow DOMAIN and its subdomains for PROFILE (or for a while)."""
    seconds = duration_option(duration)
    until = None if seconds is None else time.time() + seconds
    name = await s.store.allow_domain(profile_name, domain, until, household=s.household)
    suffix = "" if seconds is None else f" for {format_duration(seconds)} (until {when(until)})"
    click.echo(f"Allowed {name} for {profile_name}{suffix}.")


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.argument("domain")
@with_session
async def deny(s: Session, profile_name: str, domain: str) -> None:
    """Always block DOMAIN and its subdomains for PROFILE."""
    name = await s.store.deny_domain(profile_name, domain, household=s.household)
    click.echo(f"Denied {name} for {profile_name}.")


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.argument("domain")
@with_session
async def forget(s: Session, profile_name: str, domain: str) -> None:
    """Remove PROFILE's allow or deny rule for DOMAIN."""
    name = await s.store.remove_domain_rule(profile_name, domain, household=s.household)
    click.echo(f"Removed the rule for {name} from {profile_name}.")


@cli.group()
def category() -> None:
    """Block or allow a category for a profile, on top of its age defaults."""


def _category_command(action: str, doc: str) -> None:
    @category.command(action, help=doc)
    @click.argument("profile_name", metavar="PROFILE")
    @click.argument("category_id", metavar="CATEGORY")
    @with_session
    async def command(s: Session, profile_name: str, category_id: str) -> None:
        if action == "reset":
            await s.store.reset_category(profile_name, category_id, household=s.household)
        else:
            await s.store.set_category(profile_name, category_id,
                                       "block" if action == "block" else "unblock",
                                       household=s.household)
        click.echo(f"{category_id}: {action} for {profile_name}.")


_category_command("block", "Block CATEGORY for PROFILE.")
_category_command("allow", "Lift CATEGORY for PROFILE, even if its age band blocks it.")
_category_command("reset", "Back to the age band's default for CATEGORY.")


@cli.command()
@json_option
def categories(as_json: bool) -> None:
    """List the categories with what they hold."""
    from familydns.blocklists.categories import CATEGORIES

    emit([asdict(c) for c in CATEGORIES], as_json, lambda: table(
        ["category", "kind", "what it holds"],
        [[c.id, "allow" if c.allow else "block", c.description] for c in CATEGORIES]))


# ------------------------------------------------------------------------ schedules


@cli.group()
def schedule() -> None:
    """Weekly windows: bedtime blocks everything, homework blocks some categories."""


@schedule.command("add")
@click.argument("profile_name", metavar="PROFILE")
@click.argument("name")
@click.option("--days", default="mon-sun", show_default=True,
              help="mon-fri, sat,sun, weekdays, weekends, daily.")
@click.option("--from", "start", required=True, metavar="HH:MM")
@click.option("--to", "end", required=True, metavar="HH:MM",
              help="May be earlier than --from: the window crosses midnight.")
@click.option("--block-all", is_flag=True, help="Block everything but --allow domains.")
@click.option("--block", "block", metavar="CATS", help="Categories to block, comma-separated.")
@click.option("--allow", "allow_", metavar="DOMAINS",
              help="Domains still reachable during --block-all, comma-separated.")
@with_session
async def schedule_add(s: Session, profile_name: str, name: str, days: str, start: str,
                       end: str, block_all: bool, block: str | None, allow_: str | None
                       ) -> None:
    """Add a schedule: familydns schedule add anna bedtime --from 21:00 --to 07:00
    --block-all"""
    if block_all == bool(block):
        raise click.UsageError("give exactly one of --block-all or --block CATS")
    cats = [c.strip() for c in (block or "").split(",") if c.strip()]
    domains = [d.strip() for d in (allow_ or "").split(",") if d.strip()]
    sc = await s.store.add_schedule(profile_name, name, days, start, end, block_all, cats,
                                    domains, household=s.household)
    click.echo(f"Schedule {sc.name} added to {profile_name}: {sc.days} {sc.start}-{sc.end}.")


@schedule.command("list")
@click.argument("profile_name", metavar="PROFILE", required=False)
@json_option
@with_session
async def schedule_list(s: Session, profile_name: str | None, as_json: bool) -> None:
    """List schedules (of one profile, or all)."""
    names = [profile_name] if profile_name else await s.store.list_profiles(s.household)
    rows = [{"profile": n, **asdict(sc)} for n in names
            for sc in await s.store.list_schedules(n, s.household)]
    emit(rows, as_json, lambda: table(
        ["profile", "schedule", "days", "from", "to", "blocks", "still allowed"],
        [[r["profile"], r["name"], r["days"], r["start"], r["end"],
          "everything" if r["block_all"] else ", ".join(r["block"]), ", ".join(r["allow"])]
         for r in rows]))


@schedule.command("remove")
@click.argument("profile_name", metavar="PROFILE")
@click.argument("name")
@with_session
async def schedule_remove(s: Session, profile_name: str, name: str) -> None:
    """Remove a schedule."""
    await s.store.remove_schedule(profile_name, name, household=s.household)
    click.echo(f"Removed schedule {name} from {profile_name}.")


# ------------------------------------------------------------------------ pause


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.option("--for", "duration", metavar="DURATION", help="30m, 1h, ... (default: until "
              "familydns resume).")
@with_session
async def pause(s: Session, profile_name: str, duration: str | None) -> None:
    """Block everything for PROFILE now (internet off)."""
    seconds = duration_option(duration)
    until = None if seconds is None else time.time() + seconds
    await s.store.pause(profile_name, until, household=s.household)
    click.echo(f"Paused {profile_name} {when(until) if until else 'until familydns resume'}.")


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@with_session
async def resume(s: Session, profile_name: str) -> None:
    """End PROFILE's pause."""
    was = await s.store.resume(profile_name, household=s.household)
    click.echo(f"Resumed {profile_name}." if was else f"{profile_name} was not paused.")


# ------------------------------------------------------------------------ explain


@cli.command()
@click.argument("domain")
@click.option("--profile", "profile_name", help="Explain for this profile.")
@click.option("--device", "device_addr", metavar="ADDR", help="Explain for the device with "
              "this IP or MAC address (as the resolver would identify it).")
@click.option("--type", "qtype", default="A", show_default=True, help="Query type.")
@click.option("--at", "at_time", metavar="HH:MM", help="As if asked today at this time.")
@json_option
@with_session
async def explain(s: Session, domain: str, profile_name: str | None, device_addr: str | None,
                  qtype: str, at_time: str | None, as_json: bool) -> None:
    """Why is DOMAIN blocked (or allowed)? The rule, list and line, schedule, age default."""
    import dataclasses

    from familydns.profiles.decide import decide
    from familydns.profiles.devices import normalise_mac
    from familydns.profiles.domains import normalise_domain
    from familydns.resolver.identity import ClientIdentity
    from familydns.resolver.wire import TYPE_NAMES

    if (profile_name is None) == (device_addr is None):
        raise click.UsageError("give exactly one of --profile or --device")
    try:
        name = normalise_domain(domain)
    except ValueError as exc:
        raise click.ClickException(f"bad domain {domain!r}: {exc}") from None
    codes = {v: k for k, v in TYPE_NAMES.items()}
    if qtype.upper() not in codes:
        raise click.BadParameter(f"unknown type {qtype!r}", param_hint="--type")
    app, snap = await s.snapshot()
    if profile_name is not None:
        if profile_name not in snap.profiles:
            raise click.ClickException(f"no profile named {profile_name!r}")
        snap = dataclasses.replace(snap, devices=snap.devices.empty(),
                                   default_profile=profile_name)
        client = ClientIdentity("0.0.0.0")
    else:
        assert device_addr is not None
        try:
            client = ClientIdentity("0.0.0.0", mac=normalise_mac(device_addr))
        except ValueError:
            client = ClientIdentity(device_addr)
    now = time.time()
    if at_time is not None:
        try:
            hh, mm = (int(x) for x in at_time.split(":"))
            now = dt.datetime.combine(dt.date.today(), dt.time(hh, mm)).timestamp()
        except ValueError:
            raise click.BadParameter(f"expected HH:MM, got {at_time!r}",
                                     param_hint="--at") from None
    decision = decide(snap, client, name, codes[qtype.upper()], now)
    line_text = _list_line(app, decision.source, decision.line)
    data = {
        "domain": name, "decision": decision.action.value, "profile": decision.profile,
        "reason": decision.reason, "category": decision.category, "rule": decision.rule,
        "list": decision.source, "line": decision.line, "line_text": line_text,
        "schedule": decision.schedule, "why_category": decision.origin,
        "answer": decision.block_answer.value if decision.action.value == "block" else None,
        "rewrite": decision.rewrite.cname if decision.rewrite else None,
    }

    def text() -> str:
        lines = [f"{name}: {decision.action.value.upper()} for profile {decision.profile}",
                 f"  why:      {decision.reason}"]
        for label, key in (("category", "category"), ("because", "why_category"),
                           ("rule", "rule"), ("list", "list"), ("schedule", "schedule"),
                           ("answer", "answer"), ("rewrite", "rewrite")):
            if data[key]:
                value = data[key]
                if key == "list" and decision.line:
                    value = f"{value}, line {decision.line}"
                    if line_text:
                        value += f": {line_text}"
                lines.append(f"  {label + ':':<9} {value}")
        return "\n".join(lines)

    emit(data, as_json, text)


def _list_line(app: Any, source: str | None, line: int | None) -> str | None:
    """The text of the list line a decision cites, read from the list's file."""
    from familydns.app import all_sources

    if source is None or not line:
        return None
    for src in all_sources(app.config):
        if src.name != source:
            continue
        path = app.loader.copy_path(src.name) if src.url else Path(src.path or "")
        if not path.is_absolute():
            path = app.data_dir / path
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for n, text in enumerate(handle, 1):
                    if n == line:
                        return str(text.strip())[:200]
        except OSError:
            return None
    return None


# ------------------------------------------------------------------------ logs, reports


@cli.command()
@click.option("--profile", "profile_name", help="Only this profile.")
@click.option("--since", default="24h", show_default=True, metavar="DURATION",
              help="How far back: 30m, 2h, 7d.")
@click.option("--category", "category_id", help="Only this category.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new blocked lookups.")
@json_option
@with_session
async def logs(s: Session, profile_name: str | None, since: str, category_id: str | None,
               limit: int, follow: bool, as_json: bool) -> None:
    """Blocked lookups, newest last; "×12" after a name is 12 identical lookups
    within a few seconds of the time shown."""
    from familydns.store import query_log

    start = time.time() - (duration_option(since) or 0)

    def show(events: Any) -> None:
        for e in events:
            if as_json:
                click.echo(json.dumps(asdict(e), default=str))
            else:
                name = f"{e.qname} ×{e.hits}" if e.hits > 1 else e.qname
                click.echo(f"{when(e.ts)}  {e.profile:<10} {e.device:<17} {name:<40} "
                           f"{e.category or '-':<14} {e.source or ''}")

    events = await query_log(s.store, s.household, profile=profile_name, since=start,
                             category=category_id, limit=limit)
    show(reversed(events))
    last = max((e.ts for e in events), default=start)
    while follow:
        await asyncio.sleep(1.0)
        newer = await query_log(s.store, s.household, profile=profile_name, since=last,
                                category=category_id, limit=limit)
        fresh = [e for e in reversed(newer) if e.ts > last]
        show(fresh)
        last = max((e.ts for e in fresh), default=last)


@cli.command()
@click.option("--profile", "profile_name", help="Only this profile.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650))
@json_option
@with_session
async def report(s: Session, profile_name: str | None, days: int, as_json: bool) -> None:
    """Per child: blocked lookups by category, top blocked domains, lookups by hour."""
    from familydns.profiles.schedules import parse_timezone
    from familydns.store import report as build_report

    tz = parse_timezone(s.config.household.timezone)
    reports = await build_report(s.store, s.household, since=time.time() - days * 86_400,
                                 profile=profile_name, tz=tz)

    def text() -> str:
        if not reports:
            return f"No blocked lookups in the last {days} days."
        out = []
        for r in reports:
            out.append(f"== {r.profile}: {r.total} blocked lookups in the last {days} days ==")
            out.append("\nBy category:\n" + bars(list(r.by_category)))
            out.append("\nTop blocked domains:\n" + table(
                ["domain", "lookups"], [list(pair) for pair in r.top_domains]))
            out.append("\nBy hour of day:\n" + bars(
                [(f"{h:02d}:00", n) for h, n in enumerate(r.by_hour)], width=30))
            out.append("")
        return "\n".join(out)

    emit([asdict(r) for r in reports], as_json, text)


# ------------------------------------------------------------------------ lists, config


@cli.group("lists")
def lists_group() -> None:
    """The blocklists: what is loaded, and downloading new copies."""


def _status_rows(statuses: Any) -> list[dict[str, Any]]:
    return [{"name": st.name, "category": st.category, "entries": st.entries,
             "bad_lines": st.bad_lines, "updated": when(st.last_updated) if st.last_updated
             else "-", "error": st.last_error or "", "origin": st.origin} for st in statuses]


def _status_table(rows: list[dict[str, Any]]) -> str:
    return table(["list", "category", "entries", "bad lines", "updated", "error"],
                 [[r["name"], r["category"], r["entries"], r["bad_lines"], r["updated"],
                   r["error"]] for r in rows])


@lists_group.command("status")
@json_option
@click.pass_obj
def lists_status(obj: Context, as_json: bool) -> None:
    """Each list: category, entries, bad lines, last update, errors."""
    s = Session(obj)
    app = s.app()
    app.load_lists(s.config)
    rows = _status_rows(app.list_statuses)
    emit(rows, as_json, lambda: _status_table(rows))


@lists_group.command("update")
@json_option
@click.pass_obj
@run_async
async def lists_update(obj: Context, as_json: bool) -> None:
    """Download every URL list now (the running resolver reloads them on SIGHUP)."""
    from familydns.app import all_sources

    s = Session(obj)
    app = s.app()
    statuses = await app.loader.refresh(all_sources(s.config), force=True)
    rows = _status_rows(statuses)
    emit(rows, as_json, lambda: _status_table(rows) if rows else "No URL lists configured.")
    if any(r["error"] for r in rows):
        raise click.ClickException("some lists could not be updated; their last good copy "
                                   "stays in use")


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def config_check(obj: Context, file: Path | None) -> None:
    """Validate FILE (or the active config) and report every problem with its key."""
    from familydns.blocklists.matcher import Matcher
    from familydns.profiles.snapshot import build_snapshot

    if file is not None:
        obj.config_path = file
        if not file.exists():
            raise click.ClickException(f"{file}: no such file")
    cfg = _load(obj)
    where = obj.resolve_config_path() or "embedded defaults"
    try:
        build_snapshot(cfg, Matcher.empty(), reference_date=dt.date.today())
    except ConfigError as exc:
        raise click.ClickException(f"{where}: {exc}") from None
    ups = ", ".join(u.url for u in cfg.upstreams.servers)
    click.echo(f"{where}: ok ({len(cfg.profiles)} profiles, {len(cfg.lists.sources)} extra "
               f"lists, upstreams {ups})")


def main() -> None:
    cli(prog_name="familydns")
