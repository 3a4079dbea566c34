"""Installed packages' plug-ins: the objects their entry points name, group by group.

A registry (training tasks ``lmforge.tasks``, evaluation tasks ``lmforge.eval_tasks``)
reads its group once per process and registers what it finds; an entry point that does not
load is an error naming it and its package, never a silently missing task.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from importlib.metadata import entry_points
from typing import Any

from lmforge.errors import LmforgeError


def installed_plugins(group: str, skip: Container[str] = ()) -> Iterator[tuple[str, Any]]:
    """Each entry point of ``group`` whose name is not in ``skip``, loaded: ``(name,
    object)``. ``skip`` is asked at each entry point, so a registry passed as it also
    skips the names registered while iterating.

    Raises:
        LmforgeError: an entry point that does not load, naming it and its package.
    """
    for point in entry_points(group=group):
        if point.name in skip:
            continue
        try:
            loaded = point.load()
        except Exception as error:  # a plugin's import can raise anything
            package = point.dist.name if point.dist else "an installed package"
            raise LmforgeError(
                f"the '{group}' entry point {point.name} = {point.value} of {package} does "
                f"not load ({type(error).__name__}: {error}); fix or uninstall {package}"
            ) from error
        yield point.name, loaded
