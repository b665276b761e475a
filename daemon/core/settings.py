"""What config.yaml says, in the shapes the parts take: the mark rules of the importer, the
school's today and the options of a site build."""

from __future__ import annotations

import datetime as dt

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


def api_url(config: Config) -> str:
    """Where pages post acts: endpoint.public_url, else the site's LAN address, + /api/v1/."""
    base = config.endpoint.public_url or config.school.lan_url
    return base.rstrip("/") + "/api/v1/" if base else ""
