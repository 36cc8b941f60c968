"""Runs after every other REST test but the one that stops tokend (file
order): the vendor-spec check in conftest.call (tests/rest/vendor.py) saw
every kind of answer, so a suite that stopped reaching one cannot pass by
checking nothing."""

import os

import pytest

from conftest import VALIDATED
from vendor import specs_dir

KINDS = [
    "Astronomer GetApiToken 200",
    "Astronomer ListApiTokens 200",
    "Astronomer CreateApiToken 200",
    "Astronomer UpdateApiToken 200",
    "Astronomer UpdateApiTokenRoles 200",
    "Astronomer RotateApiToken 200",
    "no body",  # DeleteApiToken's 204
    "Astronomer Error",
    "Dynatrace ApiToken (closed, with tokend's extensions)",
    "Dynatrace ErrorEnvelope",
]


@pytest.mark.skipif(specs_dir() is None and os.environ.get("CI") != "true",
                    reason="the vendor specs (VENDOR_SPECS) are not on this machine; CI requires them")
def test_every_kind_of_answer_was_checked_against_its_vendor_spec():
    missing = [kind for kind in KINDS if VALIDATED[kind] == 0]
    assert not missing, f"never validated: {missing}; validated: {dict(VALIDATED)}"
