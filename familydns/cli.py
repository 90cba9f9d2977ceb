"""The parents' command line (click).

User mistakes end with one clear line and a non-zero exit (click's UsageError exits 2,
ClickException 1); nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from familydns import __version__
from familydns.config import Config, default_data_dir, load_config
from familydns.errors import ConfigError


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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    """familydns: DNS filtering with a profile for each child."""
    ctx.obj = Context(data_dir, config_path)


def _load(ctx: Context) -> Config:
    try:
        return ctx.config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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
@click.pass_obj
def serve(obj: Context, config_path: Path | None, listen: tuple[str, ...],
          upstream: tuple[str, ...], metrics: str | None) -> None:
    """Run the resolver until SIGTERM (SIGHUP reloads config and lists)."""
    from familydns.app import App, run

    if config_path is not None:
        obj.config_path = config_path

    def load() -> Config:
        cfg = obj.config()
        return cfg.with_overrides(listen=listen, upstreams=upstream, metrics=metrics)

    try:
        config = load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(config.log.level)
    data_dir = obj.data_dir(config)
    sys.exit(run(lambda: App(load, data_dir)))


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def config_check(obj: Context, file: Path | None) -> None:
    """Validate FILE (or the active config) and report every problem with its key."""
    if file is not None:
        obj.config_path = file
    if file is not None and not file.exists():
        raise click.ClickException(f"{file}: no such file")
    cfg = _load(obj)
    where = obj.resolve_config_path() or "embedded defaults"
    ups = ", ".join(u.url for u in cfg.upstreams.servers)
    click.echo(f"{where}: ok ({len(cfg.profiles)} profiles, upstreams {ups})")


def main() -> None:
    cli(prog_name="familydns")
