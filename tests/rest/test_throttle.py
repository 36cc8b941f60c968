"""429 from the failed-authentication throttle, through a sidecar. The main
pair runs with the throttle off (every REST test comes from 127.0.0.1 and
many fail authentication on purpose), so .ci/rest starts a second tokend on
the same database with --auth-failure-threshold 3, behind the same sidecar
config one port up (REST_THROTTLED_URL); only this file calls it."""

import os

import pytest

from conftest import SECRET, call, tokens_path
from test_rest import error

THROTTLED = os.environ.get("REST_THROTTLED_URL")
THRESHOLD = 3


@pytest.mark.skipif(not THROTTLED, reason="needs the throttled pair that .ci/rest starts")
def test_an_address_past_its_failed_authentications_is_429_even_with_a_good_secret():
    path = tokens_path() + "?limit=1"
    assert call("GET", path, base=THROTTLED).status == 200, "the pair serves"
    statuses = []
    for _ in range(THRESHOLD + 2):
        response = call("GET", path, secret="not-a-token", base=THROTTLED)
        statuses.append(response.status)
        if response.status == 429:
            break
        error(response, 401, 16)
    assert statuses[-1] == 429 and len(statuses) <= THRESHOLD + 1, statuses
    assert statuses[0] == 401, statuses
    # Refused before any lookup: the owner's valid secret too, from the
    # same address, until the window ends.
    body = error(call("GET", path, base=THROTTLED), 429, 8)
    assert "failed authentications" in body["message"], body
    assert SECRET not in body["message"]
