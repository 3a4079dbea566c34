"""Commands whose settings are one config object (``compress``, ``serve``): the file,
the flags and ``--set`` merged into it, and errors that name the flag beside the setting.

The library names settings (``methods[1]``, ``data``); a user of the command line typed
flags, so each problem line about a setting that has a flag gets the flag added.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from lmforge.config.load import ConfigError, load_settings
from lmforge.errors import LmforgeError

Settings = TypeVar("Settings", bound=BaseModel)


def load_with_flags(
    model: type[Settings],
    config_file: Path | None,
    flags: Mapping[str, Any],
    overrides: Sequence[str],
    names: Mapping[str, str],
) -> Settings:
    """``model`` from ``config_file`` (optional), then the flags given (those not None),
    then ``--set`` overrides; errors name each setting's flag (``names``: setting ->
    flag)."""
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        return load_settings(config_file, model, overrides, given=given)
    except ConfigError as error:
        raise with_flags(error, names) from None


def with_flags(error: LmforgeError, names: Mapping[str, str]) -> LmforgeError:
    """``error`` with `` (--flag)`` after the first setting named on each line."""
    # a setting, an item of a list (methods[1]) or a key of a mapping (adapters.support)
    pattern = re.compile(rf"\b({'|'.join(map(re.escape, names))})(\[\d+\]|\.[\w-]+)?:")

    def named(line: str) -> str:
        return pattern.sub(lambda m: f"{m.group(1)}{m.group(2) or ''} ({names[m.group(1)]}):",
                           line, count=1)  # fmt: skip

    copy = LmforgeError("\n".join(named(line) for line in str(error).splitlines()))
    copy.exit_code = error.exit_code
    return copy
