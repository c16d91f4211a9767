"""Environment ids as pytest parameters for the conformance tests: games that are the same
code as another with only other constants (the iterated-matrix presets beside ``ipd``) run
their conformance tests under ``-m slow``, every other id by default."""

import pytest

SAME_CODE_AS = {"ipd-lola": "ipd", "stag-hunt": "ipd", "chicken": "ipd",
                "matching-pennies": "ipd"}


def env_params(ids):
    return [pytest.param(i, marks=pytest.mark.slow) if i in SAME_CODE_AS else i for i in ids]
