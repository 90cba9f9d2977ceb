"""Typed, strict configuration, validated once at load.

The YAML file maps onto frozen dataclasses. Unknown keys are errors (a typo must never
silently switch a protection off), every problem is reported at once with the path of
the key it concerns (``upstreams[1]: unknown scheme 'htp'``), and the values the hot path
needs are parsed here so nothing is re-parsed per query.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from familydns.errors import ConfigError

DEFAULT_LISTEN = ("127.0.0.1:5300",)
DEFAULT_UPSTREAMS = ("udp://9.9.9.9:53", "udp://1.1.1.1:53")
DEFAULT_METRICS = "127.0.0.1:9153"
DEFAULT_ALLOW_FROM = (
    "127.0.0.0/8", "::1/128",                                 # loopback
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",          # RFC 1918
    "100.64.0.0/10",                                          # CGNAT (RFC 6598)
    "169.254.0.0/16", "fe80::/10",                            # link-local
    "fc00::/7",                                               # ULA
)
DEFAULT_LOCAL_DOMAINS = ("lan", "local", "home.arpa", "internal", "localdomain")
MAX_WORKERS = 256
UPSTREAM_SCHEMES = {"udp": 53, "tcp": 53, "tls": 853}


def _key(name: str) -> Any:
    """Field metadata naming the YAML key when it differs from the Python name."""
    return {"key": name}


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """Split ``host:port``, ``[v6]:port`` or a bare host; checks the port range."""
    value = value.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", value)
    if m:
        host, port_s = m.group(1), m.group(2)
    elif value.count(":") > 1:
        host, port_s = value, None
    elif ":" in value:
        host, port_s = value.rsplit(":", 1)
    else:
        host, port_s = value, None
    if not host:
        raise ValueError(f"missing host in {value!r}")
    if port_s is None:
        if default_port is None:
            raise ValueError(f"missing port in {value!r} (expected ADDR:PORT)")
        return host, default_port
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port_s)


def parse_listen(value: str) -> tuple[str, int]:
    """A listening address must be an IP literal and a port."""
    host, port = parse_hostport(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen address {host!r} is not an IP address") from None
    return host, port


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream resolver: ``udp://host:port``, ``tcp://...`` or ``tls://host:853#name``."""

    url: str
    ca_file: str | None = None
    scheme: str = field(default="", init=True, metadata={"derived": True})
    host: str = field(default="", metadata={"derived": True})
    port: int = field(default=0, metadata={"derived": True})
    server_name: str | None = field(default=None, metadata={"derived": True})

    @classmethod
    def from_url(cls, url: str, ca_file: str | None = None) -> UpstreamConfig:
        m = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9+.-]*)://([^#/]+)(?:#(.+))?", url.strip())
        if not m:
            raise ValueError(f"cannot parse upstream {url!r} (expected udp://HOST:PORT)")
        scheme, hostport, name = m.group(1).lower(), m.group(2), m.group(3)
        if scheme not in UPSTREAM_SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r} (use udp, tcp or tls)")
        host, port = parse_hostport(hostport, UPSTREAM_SCHEMES[scheme])
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"upstream host {host!r} must be an IP address "
                "(a resolver cannot look up its own upstream)"
            ) from None
        if scheme == "tls" and not name:
            raise ValueError(f"tls upstream {url!r} needs '#servername' to verify its cert")
        return cls(url=url, ca_file=ca_file, scheme=scheme, host=host, port=port,
                   server_name=name)


@dataclass(frozen=True, slots=True)
class UpstreamsConfig:
    servers: tuple[UpstreamConfig, ...] = ()
    timeout: float = 2.0
    """Seconds to wait for one try before failing over to the next upstream."""
    edns_udp_size: int = 1232
    queries_per_port: int = 32
    """UDP queries sent from one random source port before a new one is opened. A forger
    must guess the port, the 16-bit ID and the random letter case of the name (0x20), so
    a port shared by 32 queries keeps about 45 bits against blind spoofing for a typical
    name; 1 gives every query its own port (RFC 5452) at about 40 us of kernel time
    each, as much as the rest of a cache miss."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[str, ...] = DEFAULT_LISTEN
    tcp_idle_timeout: float = 30.0
    tcp_max_connections: int = 256
    tcp_max_pipeline: int = 100
    max_inflight: int = 2048
    shutdown_grace: float = 5.0
    max_udp_size: int = 1232
    allow_from: tuple[str, ...] = DEFAULT_ALLOW_FROM
    """Networks that may query; anyone else gets REFUSED and causes no upstream query."""
    rate_limit: float = 300.0
    """Queries per second per client address (token bucket); 0 switches it off. A router
    that forwards for the whole house is one client: raise this, or set 0, for it."""
    rate_limit_burst: float = 1000.0
    max_inflight_per_client: int = 256
    """Upstream lookups one client may have waiting at once."""
    user: str | None = None
    """Drop root to this user after binding the listening ports."""
    workers: int = 1
    """Resolver processes. Above 1, each is a full resolver (own cache, own policy
    snapshot) bound to every listen address with SO_REUSEPORT, so the kernel spreads
    clients over the cores; worker i serves metrics on the metrics port + i."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    max_entries: int = 20_000
    """LRU bound. About 600 bytes an entry (measured for a one-address answer), so 20,000
    take ~12 MB: enough for a home on a Raspberry Pi; an instance serving many homes
    wants more."""
    min_ttl: int = 0
    max_ttl: int = 86_400
    negative_max_ttl: int = 3_600
    serve_stale: bool = True
    stale_answer_ttl: int = 30
    stale_max_age: int = 86_400
    stale_after: float = 1.8
    """Seconds to wait for upstreams before answering from an expired entry (RFC 8767)."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str | None = DEFAULT_METRICS
    """ADDR:PORT of the Prometheus endpoint; null switches it off."""


@dataclass(frozen=True, slots=True)
class ListSourceConfig:
    """One blocklist source; every source belongs to exactly one category."""

    name: str
    category: str
    url: str | None = None
    path: str | None = None
    format: str = "auto"
    scope: str = "subtree"
    refresh: float = 86_400.0
    max_bytes: int = 50_000_000


@dataclass(frozen=True, slots=True)
class ListsConfig:
    starter: bool = True
    """Load the small lists shipped with familydns, so it protects out of the box."""
    sources: tuple[ListSourceConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """A device is known by exactly one of ip, cidr, mac or client_id."""

    ip: str | None = None
    cidr: str | None = None
    mac: str | None = None
    client_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    name: str
    start: str = field(metadata=_key("from"))
    end: str = field(metadata=_key("to"))
    days: str = "mon-sun"
    block_all: bool = False
    block: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    """Domains still reachable while block_all is on (school, maps, messaging parents)."""


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    name: str
    birthdate: dt.date | None = None
    age: int | None = None
    age_as_of: dt.date | None = None
    """The day ``age`` was true; the child grows older from there. Unset: the age stays
    as written (the CLI's store records the day for you)."""
    devices: tuple[DeviceConfig, ...] = ()
    block: tuple[str, ...] = ()
    unblock: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    safe_search: bool | None = None
    youtube: str | None = None
    allowlist_only: bool = False
    bypass_protection: bool | None = None
    rebinding_protection: bool | None = None
    """Block public names answering with private addresses; None: on for minors."""
    block_answer: str = "nxdomain"
    schedules: tuple[ScheduleConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class HouseholdConfig:
    name: str = "home"
    timezone: str = "local"
    default_profile: str | None = None
    """Profile for unknown devices; when unset, a safe built-in baseline applies."""
    local_domains: tuple[str, ...] = DEFAULT_LOCAL_DOMAINS
    """Names under these may answer with private addresses (exempt from rebinding
    protection): the router's own names, printers, the NAS."""


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    log_allowed: bool = False
    """Record allowed lookups too (off by default: children's privacy)."""
    retention_days: int = 30


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    upstreams: UpstreamsConfig = UpstreamsConfig()
    cache: CacheConfig = CacheConfig()
    metrics: MetricsConfig = MetricsConfig()
    lists: ListsConfig = ListsConfig()
    household: HouseholdConfig = HouseholdConfig()
    profiles: tuple[ProfileConfig, ...] = ()
    log: LogConfig = LogConfig()
    data_dir: str | None = None

    def with_overrides(
        self,
        listen: tuple[str, ...] = (),
        upstreams: tuple[str, ...] = (),
        metrics: str | None = None,
        data_dir: str | None = None,
        workers: int | None = None,
    ) -> Config:
        """Apply command-line overrides, validating them like file values."""
        problems: list[str] = []
        cfg = self
        if workers is not None:
            cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server,
                                                                      workers=workers))
        if listen:
            for i, item in enumerate(listen):
                try:
                    parse_listen(item)
                except ValueError as exc:
                    problems.append(f"--listen[{i}]: {exc}")
            cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, listen=listen))
        if upstreams:
            servers = []
            for i, url in enumerate(upstreams):
                try:
                    servers.append(UpstreamConfig.from_url(url))
                except ValueError as exc:
                    problems.append(f"--upstream[{i}]: {exc}")
            cfg = dataclasses.replace(
                cfg, upstreams=dataclasses.replace(cfg.upstreams, servers=tuple(servers))
            )
        if metrics is not None:
            if metrics.lower() in ("", "off", "none"):
                cfg = dataclasses.replace(cfg, metrics=MetricsConfig(listen=None))
            else:
                try:
                    parse_listen(metrics)
                except ValueError as exc:
                    problems.append(f"--metrics: {exc}")
                cfg = dataclasses.replace(cfg, metrics=MetricsConfig(listen=metrics))
        if data_dir is not None:
            cfg = dataclasses.replace(cfg, data_dir=data_dir)
        if workers is not None or listen or metrics is not None:
            problems += [f"{key}: {message}" for key, message in worker_problems(cfg)]
        if problems:
            raise ConfigError(problems, "command line")
        return cfg


def worker_problems(cfg: Config) -> list[tuple[str, str]]:
    """(key, problem) for settings that several worker processes cannot share.

    Workers bind the same addresses with SO_REUSEPORT, so each must name one fixed port:
    port 0 would give every worker a different one. Worker i serves metrics on the
    metrics port + i, so that range must exist too."""
    workers = cfg.server.workers
    if not 1 <= workers <= MAX_WORKERS:
        return [("server.workers", f"must be between 1 and {MAX_WORKERS}, got {workers}")]
    if workers == 1:
        return []
    shared = f"with server.workers: {workers}"
    found: list[tuple[str, str]] = []
    for i, item in enumerate(cfg.server.listen):
        with contextlib.suppress(ValueError):
            if parse_listen(item)[1] == 0:
                message = f"port 0 cannot be shared {shared}; give a fixed port"
                found.append((f"server.listen[{i}]", message))
    if cfg.metrics.listen:
        with contextlib.suppress(ValueError):
            port = parse_listen(cfg.metrics.listen)[1]
            if port == 0:
                message = f"port 0 cannot be used {shared} (worker i uses the port + i)"
                found.append(("metrics.listen", message))
            elif port + workers - 1 > 65535:
                message = f"worker i uses port {port} + i, beyond 65535 {shared}"
                found.append(("metrics.listen", message))
    return found


# ---------------------------------------------------------------- generic strict loader


class _Loader:
    """Builds dataclasses from plain YAML data, collecting every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def build(self, cls: type, data: Any, path: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {type(data).__name__}")
            return None
        hints = typing.get_type_hints(cls)
        fields = {
            f.metadata.get("key", f.name): f
            for f in dataclasses.fields(cls)
            if not f.metadata.get("derived")
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            sub = f"{path}.{key}" if path else str(key)
            f = fields.get(str(key))
            if f is None:
                known = ", ".join(sorted(fields))
                self.fail(sub, f"unknown key (known keys: {known})")
                continue
            kwargs[f.name] = self.value(hints[f.name], value, sub)
        missing = [
            k for k, f in fields.items()
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        for k in missing:
            self.fail(f"{path}.{k}" if path else k, "required key is missing")
        if missing or any(v is _BAD for v in kwargs.values()):
            return _BAD
        return cls(**kwargs)

    def value(self, tp: Any, value: Any, path: str) -> Any:
        origin = typing.get_origin(tp)
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.value(args[0], value, path)
        if origin is tuple:
            (item_tp, _ellipsis) = typing.get_args(tp)
            if value is None:
                return ()
            if isinstance(value, (str, dict)) or not isinstance(value, list):
                if item_tp is str and isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                else:
                    self.fail(path, f"expected a list, got {type(value).__name__}")
                    return _BAD
            return tuple(self.value(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(path, f"expected true or false, got {value!r}")
                return _BAD
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"expected an integer, got {value!r}")
                return _BAD
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(path, f"expected a number, got {value!r}")
                return _BAD
            return float(value)
        if tp is str:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                self.fail(path, f"expected a string, got {type(value).__name__}")
                return _BAD
            return str(value)
        if tp is dt.date:
            if isinstance(value, dt.date):
                return value
            try:
                return dt.date.fromisoformat(str(value))
            except ValueError:
                self.fail(path, f"expected a date YYYY-MM-DD, got {value!r}")
                return _BAD
        raise TypeError(f"unsupported config type {tp!r}")


_BAD: Any = object()


def _normalise_upstreams(data: Any) -> Any:
    """``upstreams`` may be a list of URLs or a mapping with ``servers`` and settings."""
    if isinstance(data, list):
        return {"servers": data}
    return data


def _validate(cfg: Config, loader: _Loader, raw: dict[str, Any]) -> Config:
    """Checks that need more than one value's type; returns cfg with derived fields."""
    fail = loader.fail
    for i, item in enumerate(cfg.server.listen):
        try:
            parse_listen(item)
        except ValueError as exc:
            fail(f"server.listen[{i}]", str(exc))
    if cfg.server.max_udp_size < 512 or cfg.server.max_udp_size > 4096:
        fail("server.max_udp_size", "must be between 512 and 4096 (1232 is recommended)")
    for i, net in enumerate(cfg.server.allow_from):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            fail(f"server.allow_from[{i}]", f"not a network: {net!r}")
    if cfg.server.rate_limit < 0 or cfg.server.rate_limit_burst < 1:
        fail("server.rate_limit", "must be >= 0 (0 = off), with rate_limit_burst >= 1")
    for name in ("tcp_max_connections", "tcp_max_pipeline", "max_inflight",
                 "max_inflight_per_client"):
        if getattr(cfg.server, name) < 1:
            fail(f"server.{name}", "must be at least 1")
    for key, message in worker_problems(cfg):
        fail(key, message)
    if cfg.upstreams.timeout <= 0:
        fail("upstreams.timeout", "must be positive")
    if cfg.cache.min_ttl < 0 or cfg.cache.max_ttl < cfg.cache.min_ttl:
        fail("cache.max_ttl", "must be >= cache.min_ttl >= 0")
    if cfg.cache.max_entries < 0:
        fail("cache.max_entries", "must not be negative")
    if cfg.metrics.listen:
        try:
            parse_listen(cfg.metrics.listen)
        except ValueError as exc:
            fail("metrics.listen", str(exc))
    servers: list[UpstreamConfig] = []
    raw_up = _normalise_upstreams(raw.get("upstreams")) or {}
    raw_servers = raw_up.get("servers") if isinstance(raw_up, dict) else None
    for i, up in enumerate(cfg.upstreams.servers):
        try:
            servers.append(UpstreamConfig.from_url(up.url, up.ca_file))
        except ValueError as exc:
            fail(f"upstreams[{i}]", str(exc))
    if raw_servers is None:
        servers = [UpstreamConfig.from_url(u) for u in DEFAULT_UPSTREAMS]
    elif not servers and not loader.problems:
        fail("upstreams", "at least one upstream is needed")
    seen: set[str] = set()
    for i, src in enumerate(cfg.lists.sources):
        where = f"lists.sources[{i}]"
        if src.name in seen:
            fail(f"{where}.name", f"duplicate source name {src.name!r}")
        seen.add(src.name)
        if (src.url is None) == (src.path is None):
            fail(where, "needs exactly one of url or path")
        if src.url is not None and not re.match(r"https?://", src.url):
            fail(f"{where}.url", f"only http:// and https:// are supported, got {src.url!r}")
        if src.scope not in ("subtree", "exact"):
            fail(f"{where}.scope", f"must be subtree or exact, got {src.scope!r}")
        fmts = ("auto", "hosts", "domains", "wildcard", "adblock", "regex", "dnsmasq", "rpz")
        if src.format not in fmts:
            fail(f"{where}.format", f"unknown format {src.format!r} (one of {', '.join(fmts)})")
    names: set[str] = set()
    for i, prof in enumerate(cfg.profiles):
        if prof.name in names:
            fail(f"profiles[{i}].name", f"duplicate profile name {prof.name!r}")
        names.add(prof.name)
    if cfg.household.default_profile and cfg.household.default_profile not in names:
        fail("household.default_profile", f"no profile named {cfg.household.default_profile!r}")
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        fail("log.level", f"must be debug, info, warning or error, got {cfg.log.level!r}")
    if cfg.log.retention_days < 1:
        fail("log.retention_days", "must be at least 1")
    return dataclasses.replace(
        cfg, upstreams=dataclasses.replace(cfg.upstreams, servers=tuple(servers))
    )


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: dates stay strings until the typed loader
    parses them, so a bad date is an error naming its key rather than a crash."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str) -> Any:
    """Parse YAML text the way familydns reads config (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=_YamlLoader)


def load_config_data(raw: Any, source: str = "config", extra: Any = None) -> Config:
    """Build a Config from already-parsed YAML data; raises ConfigError listing all problems.

    ``extra`` is an optional hook ``(Config, fail) -> None`` for checks that need other
    modules (categories, age bands), so this module stays at the bottom of the layers.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of sections", source)
    raw = dict(raw)
    if "upstreams" in raw:
        raw["upstreams"] = _normalise_upstreams(raw["upstreams"])
        servers = raw["upstreams"].get("servers") if isinstance(raw["upstreams"], dict) else None
        if isinstance(servers, list):
            raw["upstreams"] = dict(raw["upstreams"])
            raw["upstreams"]["servers"] = [
                {"url": s} if isinstance(s, str) else s for s in servers
            ]
    loader = _Loader()
    cfg = loader.build(Config, raw, "")
    if cfg is _BAD or cfg is None or loader.problems:
        raise ConfigError(loader.problems, source)
    cfg = _validate(cfg, loader, raw)
    if extra is not None:
        extra(cfg, loader.fail)
    if loader.problems:
        raise ConfigError(loader.problems, source)
    return cfg


def load_config(path: str | os.PathLike[str] | None, extra: Any = None) -> Config:
    """Read a YAML file (or the embedded defaults when path is None)."""
    if path is None:
        return load_config_data({}, "defaults", extra)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", str(p)) from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", str(p)) from None
    return load_config_data(raw, str(p), extra)


def default_data_dir() -> Path:
    """Platform convention: /var/lib/familydns as root, XDG data home otherwise."""
    env = os.environ.get("FAMILYDNS_DATA_DIR")
    if env:
        return Path(env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/familydns")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "familydns"
