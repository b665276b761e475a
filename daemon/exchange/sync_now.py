"""`otmetka sync --http` and `otmetka sync --inbox`: one pull or one inbox pass, now."""

from __future__ import annotations

from otmetka.daemon import runtime as project
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.exchange import http, inbox


def pull_now(config: Config, reporter: Reporter) -> http.PullResult:
    result = http.pull(config, bar=reporter.bar)
    reporter.summary(result.summary())
    return result


def inbox_now(config: Config, reporter: Reporter) -> list[inbox.InboxOutcome]:
    """Import every complete file in the inbox; fails (exit 1) if any was rejected."""
    project.open_project(config)
    outcomes = inbox.process_now(config, project.mark_rules(config))
    for outcome in outcomes:
        reporter.summary(
            f"{outcome.message} (moved to {outcome.moved_to})"
            if outcome.ok
            else f"{outcome.name}: rejected, moved to {outcome.moved_to}"
        )
    if not outcomes:
        reporter.summary(f"inbox: nothing to import in {config.paths.inbox_dir}")
    rejected = [outcome for outcome in outcomes if not outcome.ok]
    if rejected:
        raise OtmetkaError(
            "\n".join(outcome.message for outcome in rejected)
            + f"\n{len(rejected)} file(s) rejected; each has an .error.txt beside it in "
            f"{config.paths.inbox_dir / inbox.QUARANTINE}"
        )
    return outcomes


def sync(config: Config, reporter: Reporter, *, from_http: bool) -> None:
    if from_http:
        pull_now(config, reporter)
    else:
        inbox_now(config, reporter)
