"""The benchmark scripts' command line: ``parse_args(__doc__, name=(default, help), ...)``."""

from __future__ import annotations

import argparse

from shopfloor.cli import HelpFormatter


def parse_args(doc: str | None, **options: tuple[int | float, str]) -> argparse.Namespace:
    """One ``--name`` per option (``raw_days`` is ``--raw-days``), typed as its default;
    the description is the first paragraph of the script's docstring (``doc``)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    for name, (default, help_text) in options.items():
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default),
                        default=default, help=help_text)
    return ap.parse_args()
