"""schemathesis against the cluster server's OpenAPI document: no generated request makes
it fail (5xx), the receiving endpoint included. The app runs on the aggregates of
test_federation_cluster."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.test_federation_cluster import cluster, world  # noqa: F401 (fixtures)


@pytest.fixture
def cluster_schema(cluster):  # noqa: F811
    return schemathesis.openapi.from_asgi("/openapi.json", cluster[0].app)


schema = schemathesis.pytest.from_fixture("cluster_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.as_curl_command(), response.text)
