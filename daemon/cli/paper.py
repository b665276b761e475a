"""`otmetka print`, `otmetka report` and `otmetka lists`: extracts and slips, analytics
PDFs, class lists as spreadsheets."""

from __future__ import annotations

from pathlib import Path

import click

from otmetka.daemon.cli.base import (
    Context,
    all_option,
    class_option,
    file_argument,
    flag,
    out_option,
    pass_context,
)


@click.group("print")
def print_group() -> None:
    """Print paper extracts and credential slips as PDF."""


@print_group.command("extracts")
@class_option()
@all_option("Every class: a PDF each and an index.")
@click.option("--period", default=None, help="Grading period, by id or name (default: current).")
@flag("--paper-only", help="Only students whose family gets the journal on paper.")
@out_option(
    "PDF file for one class, or a folder (default: printing.extracts_dir/<date>/).", folder_ok=True
)
@pass_context
def print_extracts(
    obj: Context,
    class_name: str | None,
    everyone: bool | None,
    period: str | None,
    paper_only: bool | None,
    out: Path | None,
) -> None:
    """One extract per student with a tear-off acknowledgement slip; records who got what."""
    from otmetka.daemon.paper import printing

    result = printing.print_extracts(
        obj.open(),
        class_name=class_name,
        everyone=bool(everyone),
        period=period,
        paper_only=bool(paper_only),
        out=out,
        reporter=obj.reporter,
    )
    obj.reporter.summary(result.summary())


@print_group.command("slips")
@class_option()
@all_option()
@flag("--qr-password", help="Put the password into the QR code too.")
@flag("--login-only", help="Reprint login-only slips for everyone; changes no password.")
@pass_context
def print_slips(
    obj: Context,
    class_name: str | None,
    everyone: bool | None,
    qr_password: bool | None,
    login_only: bool | None,
) -> None:
    """Credential slips for those not given one yet (new or never-printed logins get new
    passwords: passwords are not kept); eight a sheet, owner-only PDF under var/."""
    from otmetka.daemon.paper import printing

    result = printing.print_slips(
        obj.open(),
        class_name=class_name,
        everyone=bool(everyone),
        qr_password=bool(qr_password),
        login_only=bool(login_only),
        reporter=obj.reporter,
    )
    obj.reporter.summary(result.summary())


@click.group()
def report() -> None:
    """Analytics PDFs for the class teachers and the deputy head, with charts."""


@report.command("class")
@click.argument("class_name", metavar="CLASS")
@out_option("PDF file or folder (default: var/reports/<date>/<class>.pdf).", folder_ok=True)
@pass_context
def report_class(obj: Context, class_name: str, out: Path | None) -> None:
    """One class's analytics (e.g. `otmetka report class 7Б`): averages, marks, students at
    risk, attendance; linked from the class teacher's page after the next build."""
    from otmetka.daemon.paper import reports

    obj.reporter.summary(reports.report_class(obj.open(), class_name=class_name, out=out).summary())


@report.command("school")
@out_option(
    "PDF file or folder for the school report (default: var/reports/<date>/school.pdf).",
    folder_ok=True,
)
@pass_context
def report_school(obj: Context, out: Path | None) -> None:
    """Every class side by side, then each class's report; also one PDF per class."""
    from otmetka.daemon.paper import reports

    result = reports.report_school(obj.open(), out=out, bar=obj.reporter.bar)
    obj.reporter.summary(result.summary())


@click.group("lists")
def lists_group() -> None:
    """Class lists as a spreadsheet: export, correct in Excel or LibreOffice, import."""


@lists_group.command("export")
@class_option("The class, e.g. 7Б.")
@out_option("XLSX file to write (default: var/lists/<class>-<date>.xlsx).")
@pass_context
def lists_export(obj: Context, class_name: str | None, out: Path | None) -> None:
    """Write the class's students, guardians, contacts, delivery and groups as XLSX with
    drop-down lists (owner-only: it holds personal data)."""
    from otmetka.daemon.lists import export

    obj.reporter.summary(export.export_list(obj.open(), class_name=class_name, out=out).summary())


@lists_group.command("import")
@file_argument()
@pass_context
def lists_import(obj: Context, file: Path) -> None:
    """Check every cell of an edited list; if all are right, apply the corrections here and
    queue them for upstream (nothing is applied when any cell is wrong)."""
    from otmetka.daemon.lists import recording

    obj.reporter.summary(recording.import_list(obj.open(), file).summary())
