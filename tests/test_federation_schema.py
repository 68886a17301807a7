"""schemathesis against the OpenAPI documents of the cluster server and of an enterprise
server with a ``federation:`` section: no generated request makes either fail (5xx), the
receiving endpoint included. The apps run on the data of test_federation_cluster and
test_federation_aggregates."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from shopfloor.server.app import create_app
from tests.test_federation_aggregates import plant  # noqa: F401 (fixture)
from tests.test_federation_cluster import cluster, world  # noqa: F401 (fixtures)

SETTINGS = settings(max_examples=20,  # per operation; 30 took 37 s on CI
                     deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture
def cluster_schema(cluster):  # noqa: F811
    return schemathesis.openapi.from_asgi("/openapi.json", cluster[0].app)


@pytest.fixture
def enterprise_schema(plant):  # noqa: F811
    tmp, cfg, _, _ = plant
    with TestClient(create_app(cfg("acme"), tmp)) as c:
        yield schemathesis.openapi.from_asgi("/openapi.json", c.app).include(
            path_regex="/federation")


cluster_api = schemathesis.pytest.from_fixture("cluster_schema")
enterprise_api = schemathesis.pytest.from_fixture("enterprise_schema")


@cluster_api.parametrize()
@SETTINGS
def test_the_cluster_has_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.as_curl_command(), response.text)


@enterprise_api.parametrize()
@SETTINGS
def test_the_enterprise_federation_routes_have_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.as_curl_command(), response.text)
