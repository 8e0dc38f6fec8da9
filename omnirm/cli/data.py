"""``omnirm data``: validate, inspect, convert and split preference data."""

from __future__ import annotations

import typer

from omnirm import console
from omnirm.cli.common import InputArg, OnErrorOpt, OutputOpt
from omnirm.on_error import OnError

app = typer.Typer(
    help="Validate, inspect, convert and split preference data.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command()
def validate(
    source: InputArg = "-",
    on_error: OnErrorOpt = OnError.SKIP,
    output: OutputOpt = None,
) -> int:
    """Check records: schema, unique ids, labels consistent with the responses.

    Prints a summary on stderr and exits 1 when anything is wrong. With [bold]--on-error
    record[/bold] each bad record is written to stdout (or -o) with an 'error' key.
    """
    from omnirm.data.validate import validate_records
    from omnirm.jsonl import JsonlWriter
    from omnirm.on_error import ErrorPolicy

    with JsonlWriter(output) as writer:
        policy = ErrorPolicy(on_error, writer)
        report = validate_records(source, policy)
    console.info(report.summary())
    return 0 if report.ok else 1
