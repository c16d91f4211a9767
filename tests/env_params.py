"""Environment ids as pytest parameters for the conformance tests (contract, adapters).

By default one id per game family runs them; the variants of a family (other constants, or
rule variants that their own rule tests pin: ``test_rules_coins.py``,
``test_rules_bimatrix.py``, ``test_rules_matrix_games.py``) run them under ``-m slow``,
which keeps the default suite's length in check as games are added.
"""

import pytest

VARIANT_OF = {"ipd-lola": "ipd", "stag-hunt": "ipd", "chicken": "ipd",
              "matching-pennies": "ipd", "ipd-vs-tft": "ipd", "coins-torus": "coins",
              "coin-game-lola": "coins", "coin-game-2coin": "coins",
              "bimatrix-constrained": "bimatrix"}


def env_params(ids):
    return [pytest.param(i, marks=pytest.mark.slow) if i in VARIANT_OF else i for i in ids]
