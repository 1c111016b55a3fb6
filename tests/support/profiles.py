"""Hypothesis profiles for the property tests, chosen with HYPOTHESIS_PROFILE
(or pytest's --hypothesis-profile); conftest imports this module, so the
profile is loaded before any test module is collected.

Each property test names its own number of examples, `examples(n)`: the
profile scales it by its max_examples over Hypothesis's default of 100.

- dev (default): n examples, as written in the tests;
- ci: the same numbers, no example database, the reproduction blob of a
  failure printed;
- quick: a tenth, for iterating on a change;
- thorough: ten times as many (minutes per test: add --timeout=0, the
  default per-test timeout of pyproject.toml is 300 s).

CONSTDB_PROP_EXAMPLES=N sets every test's number of examples to N instead.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# the examples are whole multi-node runs: some are slow, and large by design
SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile("dev", max_examples=100, **SETTINGS)
settings.register_profile("ci", max_examples=100, database=None, print_blob=True, **SETTINGS)
settings.register_profile("quick", max_examples=10, **SETTINGS)
settings.register_profile("thorough", max_examples=1000, **SETTINGS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

EXAMPLES = int(os.environ.get("CONSTDB_PROP_EXAMPLES", "0"))


def examples(n: int) -> int:
    """The number of examples for a test written for n (see the docstring)."""
    return EXAMPLES or max(1, n * settings.default.max_examples // 100)
