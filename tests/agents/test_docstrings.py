"""Tool schemas take their parameters' descriptions from any common docstring style
(Google, NumPy, Sphinx), through docstring_parser, as pydantic-ai does with griffe."""

from __future__ import annotations

import pytest

from wiz_jupyter.agents.tools import tool


def google(city: str, days: int = 3) -> str:
    """Forecast the weather
    for a city.

    Longer text that is not the summary.

    Args:
        city: the city's name,
            in English
        days (int): how many days ahead
    """
    return city


def numpy(city: str, days: int = 3) -> str:
    """Forecast the weather for a city.

    Parameters
    ----------
    city : str
        the city's name,
        in English
    days : int, optional
        how many days ahead
    """
    return city


def sphinx(city: str, days: int = 3) -> str:
    """Forecast the weather for a city.

    :param city: the city's name,
        in English
    :type city: str
    :param days: how many days ahead
    :returns: the forecast
    """
    return city


@pytest.mark.parametrize("fn", [google, numpy, sphinx])
def test_every_docstring_style_describes_the_parameters(fn):
    function = tool(fn).schema["function"]
    assert function["description"] == "Forecast the weather for a city."
    props = function["parameters"]["properties"]
    assert props["city"]["description"] == "the city's name, in English"
    assert props["days"]["description"] == "how many days ahead"
    assert props["days"]["default"] == 3 and function["parameters"]["required"] == ["city"]


def test_no_docstring_and_a_plain_one_still_make_a_tool():
    def bare(x: int) -> int:
        return x

    def plain(x: int) -> int:
        """Double x. Nothing else is said."""
        return 2 * x

    assert "description" not in tool(bare).schema["function"]["parameters"]["properties"]["x"]
    assert tool(plain).schema["function"]["description"] == "Double x. Nothing else is said."
