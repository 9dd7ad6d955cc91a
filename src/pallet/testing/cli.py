"""Run the `pallet` CLI in this process as a test drives it: arguments and stdin in; exit
status, stdout and stderr out (what click.testing.CliRunner gave the tests before)."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass


@dataclass
class Result:
    exit_code: int
    output: str  # stdout
    stderr: str

    def __str__(self) -> str:  # for assertion messages
        return f"exit {self.exit_code}\n--- stdout\n{self.output}--- stderr\n{self.stderr}"


def run(args: list[str], input: str | None = None) -> Result:
    """`pallet ARGS` through `main`, with its exception handling and exit statuses."""
    from pallet.cli.pallet.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, out.getvalue(), err.getvalue())
