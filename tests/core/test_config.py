"""Options are checked where they are made, so every entry point (CLI, Python) refuses the
same values with the same words."""

import math

import pytest

from linreg_ops.config import GateConfig, parse_dtype
from linreg_ops.errors import InputError


@pytest.mark.parametrize("value", [-1e-9, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["max_r2_drop", "max_abs_diff"])
def test_a_gate_limit_is_a_finite_number_or_none(field, value):
    with pytest.raises(InputError, match="must be a finite number ≥ 0 or 'none'"):
        GateConfig(**{field: value})


def test_zero_and_none_are_limits():
    assert GateConfig(max_r2_drop=0.0, max_abs_diff=None).max_r2_drop == 0.0


@pytest.mark.parametrize(
    "name", ["int08", "uint016", "int\u0668", "int\uff18", "int8 ", " int8", "int+8"]
)
def test_only_the_canonical_spelling_of_a_dtype_is_accepted(name):
    """Issue 13: ``int٨`` (an Arabic-Indic 8) and ``int08`` were accepted and stored."""
    with pytest.raises(InputError, match="unsupported dtype"):
        parse_dtype(name)


@pytest.mark.parametrize("bits", range(2, 17))
def test_every_canonical_width_is_accepted(bits):
    assert parse_dtype(f"int{bits}").bits == bits
    assert parse_dtype(f"uint{bits}").name == f"uint{bits}"
