"""What config.yaml says, in the shapes the parts take: the mark rules of the importer, the
school's today and the options of a site build."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit, urlunsplit

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.site_builder.build import BuildOptions


def mark_rules(config: Config) -> MarkRules:
    marks = config.marks
    return MarkRules(marks.minus_delta, marks.plus_delta, marks.split_double)


def today_in(config: Config) -> dt.date:
    return dt.datetime.now(config.school.zone()).date()


def build_options(
    config: Config, *, full: bool = False, today: dt.date | None = None
) -> BuildOptions:
    return BuildOptions(
        output_dir=config.site.output_dir,
        secret_file=config.site.secret_file,
        title=config.site.title,
        remember_days=config.site.remember_days,
        today=today or today_in(config),
        full=full,
        api_url=api_url(config),
        workers=config.site.build_workers,
    )


# Host names that reach only the machine they are typed on.
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def site_url(config: Config) -> str:
    """The site's address: school.lan_url. A loopback address (the default) names this
    machine's own server, so its port is the one the server listens on (endpoint.port,
    which OTMETKA_ENDPOINT_PORT sets too)."""
    base = config.school.lan_url
    parts = urlsplit(base)
    if parts.hostname not in _LOOPBACK:
        return base
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return urlunsplit(parts._replace(netloc=f"{host}:{config.endpoint.port}"))


def api_url(config: Config) -> str:
    """Where pages post acts: endpoint.public_url, else the site's address, + /api/v1/.

    A page served over http(s) from a loopback-addressed site posts to its own origin
    instead (static/page.js), so `otmetka serve --port` needs no new build."""
    base = config.endpoint.public_url or site_url(config)
    return base.rstrip("/") + "/api/v1/" if base else ""
