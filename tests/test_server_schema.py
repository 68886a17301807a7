"""schemathesis against the OpenAPI document: no generated request makes the server
fail (5xx). The app runs with its lifespan on the hand-made store of test_server_api."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.test_server_api import client  # noqa: F401 (fixture)


@pytest.fixture
def api_schema(client):  # noqa: F811
    # the live stream is endless without max_events; tests/test_server_api.py covers it
    return schemathesis.openapi.from_asgi("/openapi.json", client.app).exclude(
        path="/api/v1/stream")


schema = schemathesis.pytest.from_fixture("api_schema")


# 25 examples per operation: 40 took 55 s of CI's 40 minutes, 2.5x this machine's time
@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.as_curl_command(), response.text)
