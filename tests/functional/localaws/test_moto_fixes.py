"""Every localaws fix of moto: the same check shows the gap on a stock moto_server process and passes on
localaws.server (real processes, real boto3 over HTTP)."""

from __future__ import annotations

import boto3
from botocore.config import Config
import pytest

from localaws import lifecycle, patches
from tests.functional.localaws.checks import CHECKS
from tests.support.moto import moto_server



class _EndpointSession:
    """boto3 session whose clients all talk to one endpoint."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              region_name="us-east-1")

    def client(self, service: str):
        return self._session.client(service, endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def stock_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("stock-moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def patched_endpoint(tmp_path_factory):
    info = lifecycle.start(state_dir=tmp_path_factory.mktemp("localaws"))
    yield info.endpoint
    lifecycle.stop(info=info)
    assert lifecycle.group_pids(info.pid) == [], "localaws.server left processes behind"


def test_every_fix_has_a_check():
    assert sorted(CHECKS) == sorted(patches.FIXES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_stock_moto_shows_the_gap(name, stock_endpoint):
    ok, detail = CHECKS[name](_EndpointSession(stock_endpoint), stock_endpoint)
    assert not ok, f"stock moto {patches.PINNED_MOTO} already passes {name} ({detail}): drop the fix"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_localaws_fixes_it(name, patched_endpoint):
    ok, detail = CHECKS[name](_EndpointSession(patched_endpoint), patched_endpoint)
    assert ok, detail
