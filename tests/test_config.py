"""Configuration: strict, typed, and every error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from familydns.config import Config, load_config, load_config_data, parse_yaml
from familydns.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_data(parse_yaml(text), "t.yaml")
    return info.value.problems


def test_embedded_defaults_listen_on_an_unprivileged_localhost_port() -> None:
    cfg = load_config(None)
    assert cfg.server.listen == ("127.0.0.1:5300",)
    assert [u.url for u in cfg.upstreams.servers] == ["udp://9.9.9.9:53", "udp://1.1.1.1:53"]
    assert cfg.metrics.listen == "127.0.0.1:9153"
    assert cfg.lists.starter and cfg.log.retention_days == 30 and not cfg.log.log_allowed


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    cfg = load_config(ROOT / "config.example.yaml")
    assert cfg.profiles[0].name == "anna"
    text = (ROOT / "config.example.yaml").read_text()
    for section in ("server", "upstreams", "cache", "metrics", "household", "log", "lists"):
        value = getattr(Config(), section)
        for name in value.__dataclass_fields__:
            if name != "servers":
                assert f"{name}:" in text, f"{section}.{name} is not documented"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("upstreams: ['udp://127.0.0.1:53', 'htp://1.2.3.4']",
         "upstreams[1]: unknown scheme 'htp' (use udp, tcp or tls)"),
        ("upstreams: ['tls://1.1.1.1']", "upstreams[0]: tls upstream 'tls://1.1.1.1' needs"),
        ("upstreams: ['udp://dns.google']", "upstreams[0]: upstream host 'dns.google' must be"),
        ("server: {listen: ['127.0.0.1:99999']}", "server.listen[0]: bad port"),
        ("server: {listen: ['localhost:53']}", "server.listen[0]: listen address 'localhost'"),
        ("server: {lisen: []}", "server.lisen: unknown key"),
        ("cache: {max_entries: lots}", "cache.max_entries: expected an integer, got 'lots'"),
        ("cache: {serve_stale: 1}", "cache.serve_stale: expected true or false"),
        ("profiles: [{name: a, birthdate: 2015-13-01}]", "profiles[0].birthdate: expected a date"),
        ("profiles: [{age: 3}]", "profiles[0].name: required key is missing"),
        ("profiles: [{name: a}, {name: a}]", "profiles[1].name: duplicate profile name 'a'"),
        ("household: {default_profile: kid}", "household.default_profile: no profile named"),
        ("lists: {sources: [{name: x, category: adult}]}",
         "lists.sources[0]: needs exactly one of url or path"),
        ("lists: {sources: [{name: x, category: adult, url: 'ftp://a/b'}]}",
         "lists.sources[0].url: only http:// and https://"),
        ("log: {level: chatty}", "log.level: must be debug, info, warning or error"),
        ("[1, 2]", "the top level must be a mapping"),
    ],
)
def test_errors_name_the_key_and_the_problem(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


def test_all_problems_are_reported_at_once() -> None:
    found = problems("server: {listen: ['x:1']}\nupstreams: ['htp://1.2.3.4']\n")
    assert len(found) == 2


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  listen: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+, column \d+: invalid YAML"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_overrides_are_validated() -> None:
    cfg = load_config(None).with_overrides(listen=("127.0.0.1:5301",),
                                           upstreams=("udp://127.0.0.1:5399",), metrics="off")
    assert cfg.server.listen == ("127.0.0.1:5301",)
    assert cfg.upstreams.servers[0].port == 5399 and cfg.metrics.listen is None
    with pytest.raises(ConfigError, match=r"--upstream\[0\]: unknown scheme"):
        load_config(None).with_overrides(upstreams=("htp://1.2.3.4",))


def test_upstream_urls_are_parsed_once() -> None:
    cfg = load_config_data({"upstreams": ["tls://[2620:fe::fe]:853#dns.quad9.net",
                                          "udp://192.0.2.1"]})
    tls, udp = cfg.upstreams.servers
    assert (tls.scheme, tls.host, tls.port, tls.server_name) == (
        "tls", "2620:fe::fe", 853, "dns.quad9.net")
    assert (udp.host, udp.port) == ("192.0.2.1", 53)


def test_the_workers_key_and_what_it_rules_out() -> None:
    def cfg(server: dict[str, object], metrics: str | None = None) -> Config:
        return load_config_data({"server": server, "metrics": {"listen": metrics}})

    assert load_config_data({}).server.workers == 1
    assert cfg({"workers": 4, "listen": ["127.0.0.1:53"]}, "127.0.0.1:9153").server.workers == 4
    for server, metrics, expected in [
        ({"workers": 0}, None, "server.workers: must be between 1 and 256"),
        ({"workers": 2, "listen": ["127.0.0.1:53", "[::1]:0"]}, None,
         "server.listen[1]: port 0 cannot be shared with server.workers: 2"),
        ({"workers": 2}, "127.0.0.1:0", "metrics.listen: port 0 cannot be used"),
        ({"workers": 3}, "127.0.0.1:65534", "metrics.listen: worker i uses port 65534 + i"),
    ]:
        with pytest.raises(ConfigError) as info:
            cfg(server, metrics)
        assert any(expected in p for p in info.value.problems), info.value.problems
    base = load_config_data({"server": {"listen": ["127.0.0.1:0"]}})
    with pytest.raises(ConfigError, match=r"server.listen\[0\]: port 0 cannot be shared"):
        base.with_overrides(workers=2)
    assert base.with_overrides(workers=2, listen=("127.0.0.1:5300",)).server.workers == 2
