"""A Typer group whose first argument may be the default command's, so that a group can
take both ``lmforge eval REF ...`` and ``lmforge eval compare A B``."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class DefaultCommandGroup(TyperGroup):
    """Runs ``default_command`` when the first argument names no subcommand."""

    default_command = ""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def default_command_group(command: str) -> type[DefaultCommandGroup]:
    """A ``DefaultCommandGroup`` class that defaults to ``command``."""
    return type(f"Default_{command}_Group", (DefaultCommandGroup,), {"default_command": command})
