"""503 through the sidecar: the database gone (PostgreSQL pass), then tokend
itself gone. Runs last (file order): it stops the tokend under test."""

import os
import signal
import subprocess
import time

import pytest

from conftest import call, eventually, tokens_path
from vendor import error_of

PG_URL = os.environ.get("REST_PG_URL")
PG_DB = os.environ.get("REST_PG_DB")


def psql(sql):
    subprocess.run(["psql", PG_URL, "-qAtc", sql], check=True, capture_output=True, timeout=30)


def unavailable(response):
    assert response.status == 503, response
    assert error_of(response)["status"] == 503, response
    return True


@pytest.mark.skipif(os.environ.get("REST_DB") != "postgres",
                    reason="the PostgreSQL pass of .ci/rest breaks its database; SQLite has no server to stop")
def test_database_unreachable_is_503_and_recovers():
    assert PG_URL and PG_DB, "the PostgreSQL pass must name its database"
    assert call("GET", tokens_path() + "?limit=1").status == 200
    psql(f'alter database "{PG_DB}" allow_connections false')
    try:
        psql(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{PG_DB}'")
        started = time.monotonic()
        eventually("503 while the database refuses connections",
                   lambda: call("GET", tokens_path() + "?limit=1").status == 503)
        unavailable(call("GET", tokens_path() + "?limit=1"))
        assert time.monotonic() - started < 10
    finally:
        psql(f'alter database "{PG_DB}" allow_connections true')
    eventually("recovery once the database is back",
               lambda: call("GET", tokens_path() + "?limit=1").status == 200)


def test_tokend_gone_is_503_from_the_sidecar():
    pid = int(os.environ["REST_TOKEND_PID"])
    os.kill(pid, signal.SIGTERM)
    eventually("503 once tokend has stopped", lambda: call("GET", tokens_path() + "?limit=1").status == 503, timeout=30)
    unavailable(call("GET", tokens_path() + "?limit=1"))
