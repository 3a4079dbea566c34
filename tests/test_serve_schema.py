"""schemathesis against the server's own OpenAPI schema: no input makes it answer 5xx.

Generated bodies run through the real engine (tiny model, generation capped at 8 tokens
so the cases stay fast); every route of the schema is exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.servers import lmforge_server, share_guard_exports


@pytest.fixture(scope="module")
def api_schema(
    tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory, session_home: Path
) -> Iterator[object]:
    home = tmp_path_factory.mktemp("schema-home")
    share_guard_exports(home, session_home, export_now=True)
    with lmforge_server(
        str(tiny_causal_lm), "--served-name", "tiny", "--max-tokens-limit", "8",
        "--max-model-len", "256", env={"LMFORGE_HOME": str(home)},
    ) as base:  # fmt: skip
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        schema.config.base_url = base
        yield schema


def test_no_input_makes_the_server_fail(api_schema: Any) -> None:
    # schemathesis's pytest plugin does not run under this pytest version, so each
    # operation's Hypothesis strategy is driven directly.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10  # every route of the schema, not a subset
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        call()
