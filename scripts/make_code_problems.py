#!/usr/bin/env python3
"""Write the natural-language-to-Python problem set (src/lmforge/assets/datasets/code_problems/).

Small function-writing tasks whose answers are scored by running tests: each prompt names
the function and its signature and says what it must do, and the tests are ``assert``
statements that ``lmforge.evaluate.sandbox.run_python_tests`` runs after the model's code.
Two splits: ``test`` (cp-001, ...) is held out for scoring by pass@1; ``train`` (cpt-001,
...) is for reinforcement learning with a reward that runs the tests. Train was written
after test and separately, shares no function or task with it, and is weighted to
one-liners so that a small model earns some reward. Many tasks are about Brightnest Home,
the fictional smart-home retailer of the other bundled datasets, and agree with its
documents (45-day returns, $75 free-shipping minimum, 1 Rewards point per dollar, order
numbers "BN-" and 7 digits); the rest are generic string, list and dict work. They run
from one-liners a 135M model can get right to date arithmetic and parsing. All were
written for lmforge.

    python scripts/make_code_problems.py                  # rewrite the committed files
    python scripts/make_code_problems.py --out /tmp/cp    # write them elsewhere

The problems are literal data below; the files are byte-identical on every run. Before
writing, the script checks that the splits share no entry point and runs every reference
solution against its tests in the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from lmforge.evaluate.sandbox import run_many

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "lmforge" / "assets" / "datasets" / "code_problems"


def problem(entry_point: str, prompt: str, tests: str, solution: str) -> dict[str, str]:
    """One record; the prompt is reflowed to one line, the code dedented."""
    return {
        "entry_point": entry_point,
        "prompt": " ".join(prompt.split()),
        "tests": textwrap.dedent(tests).strip() + "\n",
        "solution": textwrap.dedent(solution).strip() + "\n",
    }


# The test split, held out for scoring. Easy first, harder later. A test that expects
# ValueError uses try/except/else, since a model's function that returns instead of
# raising must fail it.
TEST_PROBLEMS = [
    problem(
        "sum_list",
        """Write a Python function `sum_list(numbers: list[int]) -> int` that returns the sum
        of all the numbers in the list. An empty list sums to 0.""",
        """
        assert sum_list([1, 2, 3]) == 6
        assert sum_list([]) == 0
        assert sum_list([-4, 4, 10]) == 10
        assert sum_list([7]) == 7
        """,
        """
        def sum_list(numbers: list[int]) -> int:
            return sum(numbers)
        """,
    ),
    problem(
        "is_even",
        """Write a Python function `is_even(n: int) -> bool` that returns True when the
        integer n is even and False when it is odd.""",
        """
        assert is_even(4) is True
        assert is_even(7) is False
        assert is_even(0) is True
        assert is_even(-3) is False
        """,
        """
        def is_even(n: int) -> bool:
            return n % 2 == 0
        """,
    ),
    problem(
        "reverse_string",
        """Write a Python function `reverse_string(text: str) -> str` that returns the
        characters of text in reverse order.""",
        """
        assert reverse_string("lamp") == "pmal"
        assert reverse_string("") == ""
        assert reverse_string("Hub Mini") == "iniM buH"
        assert reverse_string("x") == "x"
        """,
        """
        def reverse_string(text: str) -> str:
            return text[::-1]
        """,
    ),
    problem(
        "count_vowels",
        """Write a Python function `count_vowels(text: str) -> int` that counts the vowels a,
        e, i, o and u in text, in upper or lower case. The letter y is not a vowel.""",
        """
        assert count_vowels("Brightnest Home") == 4
        assert count_vowels("") == 0
        assert count_vowels("AEIOU aeiou") == 10
        assert count_vowels("rhythm") == 0
        """,
        """
        def count_vowels(text: str) -> int:
            return sum(1 for char in text.lower() if char in "aeiou")
        """,
    ),
    problem(
        "average",
        """Write a Python function `average(numbers: list[float]) -> float` that returns the
        arithmetic mean of the numbers, or 0.0 when the list is empty.""",
        """
        assert average([2.0, 4.0]) == 3.0
        assert average([]) == 0.0
        assert average([1, 2, 3, 4]) == 2.5
        assert average([-1.5]) == -1.5
        """,
        """
        def average(numbers: list[float]) -> float:
            if not numbers:
                return 0.0
            return sum(numbers) / len(numbers)
        """,
    ),
    problem(
        "celsius_to_fahrenheit",
        """Write a Python function `celsius_to_fahrenheit(celsius: float) -> float` that
        converts a thermostat reading from degrees Celsius to degrees Fahrenheit
        (F = C * 9 / 5 + 32), rounded to 1 decimal place.""",
        """
        assert celsius_to_fahrenheit(0) == 32.0
        assert celsius_to_fahrenheit(100) == 212.0
        assert celsius_to_fahrenheit(21.5) == 70.7
        assert celsius_to_fahrenheit(-40) == -40.0
        """,
        """
        def celsius_to_fahrenheit(celsius: float) -> float:
            return round(celsius * 9 / 5 + 32, 1)
        """,
    ),
    problem(
        "energy_cost",
        """Write a Python function `energy_cost(watts: float, hours: float, price_per_kwh:
        float) -> float` that returns what it costs to run a device drawing `watts` for
        `hours` hours when electricity costs `price_per_kwh` dollars per kilowatt-hour,
        rounded to 2 decimal places. For example, 500 watts for 2 hours at 0.10 costs
        0.1.""",
        """
        assert energy_cost(1000, 1, 0.15) == 0.15
        assert energy_cost(60, 10, 0.2) == 0.12
        assert energy_cost(0, 5, 0.3) == 0.0
        assert energy_cost(2.5, 720, 0.18) == 0.32
        """,
        """
        def energy_cost(watts: float, hours: float, price_per_kwh: float) -> float:
            kilowatt_hours = watts * hours / 1000
            return round(kilowatt_hours * price_per_kwh, 2)
        """,
    ),
    problem(
        "order_total",
        """Write a Python function `order_total(prices: list[float], discount: float) ->
        float` that returns the total of a Brightnest Home order: the sum of the item prices,
        reduced by `discount`, a fraction between 0 and 1 (0.1 means 10% off), rounded to 2
        decimal places.""",
        """
        assert order_total([10.0, 20.0], 0.1) == 27.0
        assert order_total([], 0.25) == 0.0
        assert order_total([19.99, 24.99], 0.0) == 44.98
        assert order_total([5.0, 5.0], 1.0) == 0.0
        assert order_total([79.0, 149.0], 0.15) == 193.8
        """,
        """
        def order_total(prices: list[float], discount: float) -> float:
            return round(sum(prices) * (1 - discount), 2)
        """,
    ),
    problem(
        "shipping_cost",
        """Write a Python function `shipping_cost(subtotal: float, expedited: bool) ->
        float` for Brightnest Home orders. Standard shipping costs 5.99 dollars and is free
        when the subtotal is 75 dollars or more; Expedited shipping (expedited=True) costs
        12.99 dollars whatever the subtotal.""",
        """
        assert shipping_cost(74.99, False) == 5.99
        assert shipping_cost(75.0, False) == 0.0
        assert shipping_cost(200.0, True) == 12.99
        assert shipping_cost(10.0, True) == 12.99
        assert shipping_cost(0.0, False) == 5.99
        """,
        """
        def shipping_cost(subtotal: float, expedited: bool) -> float:
            if expedited:
                return 12.99
            return 0.0 if subtotal >= 75 else 5.99
        """,
    ),
    problem(
        "rewards_points",
        """Write a Python function `rewards_points(subtotal: float) -> int` that returns the
        Brightnest Rewards points an order earns: 1 point for every whole dollar of the
        subtotal. Cents earn nothing, so a subtotal of 19.99 earns 19 points.""",
        """
        assert rewards_points(149.0) == 149
        assert rewards_points(24.99) == 24
        assert rewards_points(0.5) == 0
        assert rewards_points(100) == 100
        """,
        """
        def rewards_points(subtotal: float) -> int:
            return int(subtotal // 1)
        """,
    ),
    problem(
        "points_value",
        """Write a Python function `points_value(points: int) -> float` that returns how many
        dollars a Brightnest Rewards balance is worth at checkout: every full block of 100
        points is worth 5 dollars, and points left over after the last full block are worth
        nothing.""",
        """
        assert points_value(250) == 10.0
        assert points_value(99) == 0.0
        assert points_value(1000) == 50.0
        assert points_value(100) == 5.0
        """,
        """
        def points_value(points: int) -> float:
            return float(points // 100 * 5)
        """,
    ),
    problem(
        "dedupe_keep_order",
        """Write a Python function `dedupe_keep_order(items: list[str]) -> list[str]` that
        returns the items without duplicates, keeping the first occurrence of each and the
        original order.""",
        """
        assert dedupe_keep_order(["lock", "cam", "lock", "bulb", "cam"]) == ["lock", "cam", "bulb"]
        assert dedupe_keep_order([]) == []
        assert dedupe_keep_order(["a", "a", "a"]) == ["a"]
        assert dedupe_keep_order(["b", "a"]) == ["b", "a"]
        """,
        """
        def dedupe_keep_order(items: list[str]) -> list[str]:
            seen = set()
            unique = []
            for item in items:
                if item not in seen:
                    seen.add(item)
                    unique.append(item)
            return unique
        """,
    ),
    problem(
        "low_battery_devices",
        """Write a Python function `low_battery_devices(levels: dict[str, int], threshold:
        int = 20) -> list[str]` that takes a mapping of device name to battery level in
        percent and returns the names of the devices whose level is below `threshold`,
        sorted alphabetically.""",
        """
        levels = {"Garage Cam": 5, "Hallway Sensor": 80, "Front Door Lock": 15}
        assert low_battery_devices(levels) == ["Front Door Lock", "Garage Cam"]
        assert low_battery_devices({"Leak Sensor": 20}) == []
        assert low_battery_devices({"x": 50, "y": 30}, threshold=40) == ["y"]
        assert low_battery_devices({}) == []
        """,
        """
        def low_battery_devices(levels: dict[str, int], threshold: int = 20) -> list[str]:
            return sorted(name for name, level in levels.items() if level < threshold)
        """,
    ),
    problem(
        "fullest_battery",
        """Write a Python function `fullest_battery(levels: dict[str, int]) -> str` that
        takes a mapping of device name to battery level in percent and returns the name of
        the device with the highest level. When several share the highest level, return the
        alphabetically first name. Raise ValueError when the mapping is empty.""",
        """
        assert fullest_battery({"cam": 40, "lock": 90, "sensor": 60}) == "lock"
        assert fullest_battery({"remote": 70, "doorbell": 70}) == "doorbell"
        assert fullest_battery({"only": 1}) == "only"
        try:
            fullest_battery({})
        except ValueError:
            pass
        else:
            raise AssertionError("fullest_battery({}) should raise ValueError")
        """,
        """
        def fullest_battery(levels: dict[str, int]) -> str:
            if not levels:
                raise ValueError("no devices")
            return min(levels, key=lambda name: (-levels[name], name))
        """,
    ),
    problem(
        "is_valid_order_number",
        """Write a Python function `is_valid_order_number(text: str) -> bool` that checks a
        Brightnest Home order number: the upper-case letters "BN", a hyphen, then exactly 7
        digits 0-9, for example "BN-4821937", with nothing before or after.""",
        """
        assert is_valid_order_number("BN-4821937") is True
        assert is_valid_order_number("BN-482193") is False
        assert is_valid_order_number("bn-4821937") is False
        assert is_valid_order_number("BN-48219370") is False
        assert is_valid_order_number("BN-48A1937") is False
        assert is_valid_order_number(" BN-4821937") is False
        """,
        """
        import re


        def is_valid_order_number(text: str) -> bool:
            return re.fullmatch(r"BN-[0-9]{7}", text) is not None
        """,
    ),
    problem(
        "is_palindrome",
        """Write a Python function `is_palindrome(text: str) -> bool` that returns True when
        text reads the same forwards and backwards, counting only letters and digits and
        ignoring case. A text with no letters or digits is a palindrome.""",
        """
        assert is_palindrome("Never odd or even") is True
        assert is_palindrome("Brightnest") is False
        assert is_palindrome("") is True
        assert is_palindrome("12 21!") is True
        assert is_palindrome("A man, a plan") is False
        """,
        """
        def is_palindrome(text: str) -> bool:
            kept = [char.lower() for char in text if char.isalnum()]
            return kept == kept[::-1]
        """,
    ),
    problem(
        "chunk_list",
        """Write a Python function `chunk_list(items: list[int], size: int) ->
        list[list[int]]` that splits items into consecutive chunks of `size` items; the last
        chunk may be shorter. Raise ValueError when size is less than 1.""",
        """
        assert chunk_list([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
        assert chunk_list([], 3) == []
        assert chunk_list([1, 2, 3], 3) == [[1, 2, 3]]
        try:
            chunk_list([1], 0)
        except ValueError:
            pass
        else:
            raise AssertionError("chunk_list([1], 0) should raise ValueError")
        """,
        """
        def chunk_list(items: list[int], size: int) -> list[list[int]]:
            if size < 1:
                raise ValueError("size must be at least 1")
            return [items[i : i + size] for i in range(0, len(items), size)]
        """,
    ),
    problem(
        "second_largest",
        """Write a Python function `second_largest(numbers: list[int]) -> int | None` that
        returns the second largest distinct value in the list, or None when the list has
        fewer than two distinct values.""",
        """
        assert second_largest([4, 1, 7, 7, 3]) == 4
        assert second_largest([5, 5]) is None
        assert second_largest([]) is None
        assert second_largest([-2, -9]) == -9
        """,
        """
        def second_largest(numbers: list[int]) -> int | None:
            distinct = sorted(set(numbers))
            return distinct[-2] if len(distinct) >= 2 else None
        """,
    ),
    problem(
        "word_frequencies",
        """Write a Python function `word_frequencies(text: str) -> dict[str, int]` that
        counts how often each word occurs in text. Compare words in lower case; a word is a
        run of the letters a to z, and every other character (spaces, digits, punctuation,
        hyphens) separates words.""",
        """
        assert word_frequencies("The hub, the HUB!") == {"the": 2, "hub": 2}
        assert word_frequencies("") == {}
        assert word_frequencies("Wi-Fi ok") == {"wi": 1, "fi": 1, "ok": 1}
        assert word_frequencies("a1b a") == {"a": 2, "b": 1}
        """,
        """
        import re
        from collections import Counter


        def word_frequencies(text: str) -> dict[str, int]:
            return dict(Counter(re.findall(r"[a-z]+", text.lower())))
        """,
    ),
    problem(
        "merge_inventory",
        """Write a Python function `merge_inventory(a: dict[str, int], b: dict[str, int]) ->
        dict[str, int]` that combines two warehouse stock counts keyed by SKU: the result
        holds, for every SKU in either mapping, the sum of its counts, and leaves out SKUs
        whose total is 0. Do not modify a or b.""",
        """
        assert merge_inventory({"CLI-0001": 3}, {"CLI-0001": 2, "SEC-0002": 1}) == {
            "CLI-0001": 5,
            "SEC-0002": 1,
        }
        assert merge_inventory({"AUD-0004": 1}, {"AUD-0004": -1}) == {}
        assert merge_inventory({}, {}) == {}
        first = {"LIG-0003": 4}
        assert merge_inventory(first, {"LIG-0003": 2}) == {"LIG-0003": 6}
        assert first == {"LIG-0003": 4}
        """,
        """
        def merge_inventory(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            totals = dict(a)
            for sku, count in b.items():
                totals[sku] = totals.get(sku, 0) + count
            return {sku: count for sku, count in totals.items() if count != 0}
        """,
    ),
    problem(
        "estimate_battery_hours",
        """Write a Python function `estimate_battery_hours(capacity_mah: int, draw_ma:
        float) -> float` that estimates how many hours a device runs on a full battery:
        0.85 * capacity_mah / draw_ma, rounded to 1 decimal place. Raise ValueError when
        draw_ma is 0 or negative.""",
        """
        assert estimate_battery_hours(1000, 85) == 10.0
        assert estimate_battery_hours(400, 20) == 17.0
        assert estimate_battery_hours(5000, 150) == 28.3
        try:
            estimate_battery_hours(1000, 0)
        except ValueError:
            pass
        else:
            raise AssertionError("a draw of 0 mA should raise ValueError")
        """,
        """
        def estimate_battery_hours(capacity_mah: int, draw_ma: float) -> float:
            if draw_ma <= 0:
                raise ValueError("draw_ma must be positive")
            return round(0.85 * capacity_mah / draw_ma, 1)
        """,
    ),
    problem(
        "format_sku",
        """Write a Python function `format_sku(line: str, number: int) -> str` that builds a
        Brightnest Home SKU: the first three letters of the product line in upper case, a
        hyphen, and the number padded with zeros to 4 digits, so format_sku("lighting", 12)
        returns "LIG-0012". Raise ValueError when line has fewer than 3 characters or
        number is not between 0 and 9999.""",
        """
        assert format_sku("climate", 7) == "CLI-0007"
        assert format_sku("Security", 1234) == "SEC-1234"
        assert format_sku("audio", 0) == "AUD-0000"
        for bad in [("ab", 1), ("lighting", 10000), ("security", -1)]:
            try:
                format_sku(*bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"format_sku{bad} should raise ValueError")
        """,
        """
        def format_sku(line: str, number: int) -> str:
            if len(line) < 3:
                raise ValueError("the product line needs at least 3 characters")
            if not 0 <= number <= 9999:
                raise ValueError("number must be between 0 and 9999")
            return f"{line[:3].upper()}-{number:04d}"
        """,
    ),
    problem(
        "parse_sku",
        """Write a Python function `parse_sku(sku: str) -> tuple[str, int]` that splits a
        Brightnest Home SKU such as "SEC-0042" (three upper-case letters A-Z, a hyphen, four
        digits 0-9) into its letters and its number: ("SEC", 42). Raise ValueError for any
        other text.""",
        """
        assert parse_sku("SEC-0042") == ("SEC", 42)
        assert parse_sku("CLI-1234") == ("CLI", 1234)
        assert parse_sku("AUD-0000") == ("AUD", 0)
        for bad in ["sec-0042", "SEC-42", "SECU-0042", "SEC0042", ""]:
            try:
                parse_sku(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"parse_sku({bad!r}) should raise ValueError")
        """,
        """
        import re


        def parse_sku(sku: str) -> tuple[str, int]:
            match = re.fullmatch(r"([A-Z]{3})-([0-9]{4})", sku)
            if match is None:
                raise ValueError(f"not a SKU: {sku!r}")
            return match.group(1), int(match.group(2))
        """,
    ),
    problem(
        "title_case_product",
        """Write a Python function `title_case_product(name: str) -> str` that formats a
        product name: every word starts with a capital letter and continues in lower case,
        except the small words "a", "and", "for", "of", "the" and "with", which stay all lower
        case unless they are the first word. Words are separated by single spaces.""",
        """
        assert title_case_product("hub mini with the glow plug") == "Hub Mini with the Glow Plug"
        assert title_case_product("the aura thermostat") == "The Aura Thermostat"
        assert title_case_product("KEYSTONE SMART LOCK") == "Keystone Smart Lock"
        assert title_case_product("a bulb for the porch") == "A Bulb for the Porch"
        assert title_case_product("") == ""
        """,
        """
        SMALL_WORDS = {"a", "and", "for", "of", "the", "with"}


        def title_case_product(name: str) -> str:
            words = []
            for index, word in enumerate(name.split(" ")):
                lower = word.lower()
                if index > 0 and lower in SMALL_WORDS:
                    words.append(lower)
                else:
                    words.append(lower[:1].upper() + lower[1:])
            return " ".join(words)
        """,
    ),
    problem(
        "flatten",
        """Write a Python function `flatten(nested: list) -> list` that returns the elements
        of a list whose elements may themselves be lists, nested to any depth, as one flat
        list in their original order. Only lists are flattened: strings, tuples and other
        values are kept as elements.""",
        """
        assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]
        assert flatten([]) == []
        assert flatten([[], [[]]]) == []
        assert flatten(["ab", (1, 2), [3]]) == ["ab", (1, 2), 3]
        """,
        """
        def flatten(nested: list) -> list:
            flat = []
            for item in nested:
                if isinstance(item, list):
                    flat.extend(flatten(item))
                else:
                    flat.append(item)
            return flat
        """,
    ),
    problem(
        "group_orders_by_status",
        """Write a Python function `group_orders_by_status(orders: list[dict[str, str]]) ->
        dict[str, list[str]]` that takes orders like {"id": "BN-4821937", "status":
        "shipped"} and returns a mapping from each status to the ids of the orders with that
        status, in the order the orders appear.""",
        """
        orders = [
            {"id": "BN-0000001", "status": "shipped"},
            {"id": "BN-0000002", "status": "processing"},
            {"id": "BN-0000003", "status": "shipped"},
        ]
        assert group_orders_by_status(orders) == {
            "shipped": ["BN-0000001", "BN-0000003"],
            "processing": ["BN-0000002"],
        }
        assert group_orders_by_status([]) == {}
        one = [{"id": "BN-1234567", "status": "delivered"}]
        assert group_orders_by_status(one) == {"delivered": ["BN-1234567"]}
        """,
        """
        def group_orders_by_status(orders: list[dict[str, str]]) -> dict[str, list[str]]:
            groups: dict[str, list[str]] = {}
            for order in orders:
                groups.setdefault(order["status"], []).append(order["id"])
            return groups
        """,
    ),
    problem(
        "mask_email",
        """Write a Python function `mask_email(email: str) -> str` that hides most of the
        part of an email address before the "@": keep its first and last character and
        replace each character between them with "*". When that part has 2 characters or
        fewer, replace all of them with "*". The "@" and the domain stay unchanged.""",
        """
        assert mask_email("jane.doe@example.com") == "j******e@example.com"
        assert mask_email("bob@mail.net") == "b*b@mail.net"
        assert mask_email("al@brightnesthome.com") == "**@brightnesthome.com"
        assert mask_email("x@y.org") == "*@y.org"
        """,
        """
        def mask_email(email: str) -> str:
            local, _, domain = email.rpartition("@")
            if len(local) <= 2:
                masked = "*" * len(local)
            else:
                masked = local[0] + "*" * (len(local) - 2) + local[-1]
            return f"{masked}@{domain}"
        """,
    ),
    problem(
        "run_length_encode",
        """Write a Python function `run_length_encode(text: str) -> str` that replaces each
        run of one repeated character with the character followed by the length of the run,
        so "aaab" becomes "a3b1".""",
        """
        assert run_length_encode("aaabcc") == "a3b1c2"
        assert run_length_encode("") == ""
        assert run_length_encode("zzzzzzzzzzzz") == "z12"
        assert run_length_encode("abab") == "a1b1a1b1"
        """,
        """
        from itertools import groupby


        def run_length_encode(text: str) -> str:
            return "".join(f"{char}{len(list(run))}" for char, run in groupby(text))
        """,
    ),
    problem(
        "bump_version",
        """Write a Python function `bump_version(version: str, part: str) -> str` that
        raises a firmware version "MAJOR.MINOR.PATCH" (three whole numbers). part "major"
        adds 1 to MAJOR and sets MINOR and PATCH to 0, "minor" adds 1 to MINOR and sets PATCH
        to 0, and "patch" adds 1 to PATCH. Raise ValueError for any other part.""",
        """
        assert bump_version("2.4.1", "minor") == "2.5.0"
        assert bump_version("2.4.1", "major") == "3.0.0"
        assert bump_version("0.9.9", "patch") == "0.9.10"
        try:
            bump_version("1.0.0", "build")
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown part should raise ValueError")
        """,
        """
        def bump_version(version: str, part: str) -> str:
            major, minor, patch = (int(number) for number in version.split("."))
            if part == "major":
                return f"{major + 1}.0.0"
            if part == "minor":
                return f"{major}.{minor + 1}.0"
            if part == "patch":
                return f"{major}.{minor}.{patch + 1}"
            raise ValueError(f"unknown part {part!r}")
        """,
    ),
    problem(
        "within_return_window",
        """Write a Python function `within_return_window(delivery_date: str, return_date:
        str) -> bool`. Dates are ISO strings "YYYY-MM-DD". Brightnest Home accepts returns
        within 45 days of delivery: return True when return_date is on or after
        delivery_date and at most 45 days after it, else False.""",
        """
        assert within_return_window("2024-03-01", "2024-04-15") is True
        assert within_return_window("2024-03-01", "2024-04-16") is False
        assert within_return_window("2024-03-01", "2024-03-01") is True
        assert within_return_window("2024-03-10", "2024-03-09") is False
        assert within_return_window("2023-12-20", "2024-01-05") is True
        """,
        """
        from datetime import date


        def within_return_window(delivery_date: str, return_date: str) -> bool:
            days = (date.fromisoformat(return_date) - date.fromisoformat(delivery_date)).days
            return 0 <= days <= 45
        """,
    ),
    problem(
        "warranty_end",
        """Write a Python function `warranty_end(delivery_date: str, months: int) -> str`
        that returns the last day of a warranty as an ISO date "YYYY-MM-DD": the same day of
        the month, `months` months after delivery_date (also "YYYY-MM-DD"). When that month
        is too short for the day, use the last day of that month, so "2023-08-31" plus 18
        months is "2025-02-28".""",
        """
        assert warranty_end("2024-01-15", 12) == "2025-01-15"
        assert warranty_end("2024-02-29", 24) == "2026-02-28"
        assert warranty_end("2023-11-30", 3) == "2024-02-29"
        assert warranty_end("2024-05-01", 36) == "2027-05-01"
        assert warranty_end("2024-10-31", 1) == "2024-11-30"
        """,
        """
        import calendar
        from datetime import date


        def warranty_end(delivery_date: str, months: int) -> str:
            start = date.fromisoformat(delivery_date)
            month_index = start.month - 1 + months
            year, month = start.year + month_index // 12, month_index % 12 + 1
            day = min(start.day, calendar.monthrange(year, month)[1])
            return date(year, month, day).isoformat()
        """,
    ),
    problem(
        "setpoint_at",
        """Write a Python function `setpoint_at(schedule: list[tuple[str, float]], time: str)
        -> float` for a thermostat. The schedule is a non-empty list of (start time,
        temperature) pairs sorted by start time, with times as zero-padded 24-hour "HH:MM"
        strings, and `time` is such a string. Return the temperature of the last entry that
        starts at or before `time`. Before the first entry of the day, the last entry of the
        schedule (set the evening before) is still in effect.""",
        """
        schedule = [("06:30", 21.0), ("09:00", 17.5), ("17:30", 21.5), ("22:00", 16.0)]
        assert setpoint_at(schedule, "07:15") == 21.0
        assert setpoint_at(schedule, "09:00") == 17.5
        assert setpoint_at(schedule, "17:29") == 17.5
        assert setpoint_at(schedule, "23:59") == 16.0
        assert setpoint_at(schedule, "03:00") == 16.0
        assert setpoint_at([("08:00", 19.0)], "07:00") == 19.0
        """,
        """
        def setpoint_at(schedule: list[tuple[str, float]], time: str) -> float:
            current = schedule[-1][1]
            for start, temperature in schedule:
                if start <= time:
                    current = temperature
            return current
        """,
    ),
    problem(
        "parse_duration",
        """Write a Python function `parse_duration(text: str) -> int` that converts a
        duration such as "1h30m", "45m", "90s" or "2h0m5s" to seconds. The text holds hours
        ("h"), minutes ("m") and seconds ("s"), each a whole number of digits 0-9 followed by
        its letter, each at most once, in that order, with at least one present and no
        spaces. Raise ValueError for any other text.""",
        """
        assert parse_duration("1h30m") == 5400
        assert parse_duration("90s") == 90
        assert parse_duration("2h0m5s") == 7205
        assert parse_duration("45m") == 2700
        for bad in ["", "30m1h", "1.5h", "h", "5x", "1h 30m"]:
            try:
                parse_duration(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"parse_duration({bad!r}) should raise ValueError")
        """,
        """
        import re


        def parse_duration(text: str) -> int:
            match = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", text)
            if not text or match is None:
                raise ValueError(f"not a duration: {text!r}")
            hours, minutes, seconds = (int(part or 0) for part in match.groups())
            return hours * 3600 + minutes * 60 + seconds
        """,
    ),
]


# The train split, for reinforcement learning with a reward that runs the tests. Written
# after the test split and separately from it, held out by function: no entry point and
# no task of the test split (nor a renamed variant of one, such as a `sum_numbers` beside
# `sum_list`), and none of the company facts the test tasks turn on (the 45-day return
# window, the $75 free-shipping minimum, Rewards points per dollar, order numbers, SKUs),
# so pass@1 on the test split measures what training transferred. Weighted to easy, since
# a reward the model never earns teaches it nothing: 30 one-liners, then 22 tasks with one
# loop or condition, then 10 harder ones.
TRAIN_PROBLEMS = [
    # --- one-liners ---
    problem(
        "largest",
        """Write a Python function `largest(numbers: list[int]) -> int` that returns the
        largest number in the list. The list always holds at least one number.""",
        """
        assert largest([3, 9, 2]) == 9
        assert largest([-5, -2, -8]) == -2
        assert largest([7]) == 7
        assert largest([4, 1, 4]) == 4
        """,
        """
        def largest(numbers: list[int]) -> int:
            return max(numbers)
        """,
    ),
    problem(
        "to_upper_case",
        """Write a Python function `to_upper_case(text: str) -> str` that returns text with
        every letter in upper case. Characters that are not letters stay as they are.""",
        """
        assert to_upper_case("hub mini") == "HUB MINI"
        assert to_upper_case("") == ""
        assert to_upper_case("Wi-Fi 5 GHz") == "WI-FI 5 GHZ"
        assert to_upper_case("LOCK") == "LOCK"
        """,
        """
        def to_upper_case(text: str) -> str:
            return text.upper()
        """,
    ),
    problem(
        "absolute_difference",
        """Write a Python function `absolute_difference(a: int, b: int) -> int` that
        returns how far apart a and b are: the difference between them, never negative.""",
        """
        assert absolute_difference(3, 10) == 7
        assert absolute_difference(10, 3) == 7
        assert absolute_difference(-4, 4) == 8
        assert absolute_difference(5, 5) == 0
        """,
        """
        def absolute_difference(a: int, b: int) -> int:
            return abs(a - b)
        """,
    ),
    problem(
        "squares",
        """Write a Python function `squares(numbers: list[int]) -> list[int]` that returns
        a new list holding the square of each number, in the same order.""",
        """
        assert squares([1, 2, 3]) == [1, 4, 9]
        assert squares([]) == []
        assert squares([-3, 0]) == [9, 0]
        assert squares([10]) == [100]
        """,
        """
        def squares(numbers: list[int]) -> list[int]:
            return [number * number for number in numbers]
        """,
    ),
    problem(
        "count_words",
        """Write a Python function `count_words(text: str) -> int` that returns how many
        words text holds. Words are separated by one or more spaces, tabs or newlines, and
        text may start or end with them.""",
        """
        assert count_words("smart home hub") == 3
        assert count_words("") == 0
        assert count_words("  two   words ") == 2
        assert count_words("one\\ttwo\\nthree") == 3
        """,
        """
        def count_words(text: str) -> int:
            return len(text.split())
        """,
    ),
    problem(
        "last_item",
        """Write a Python function `last_item(items: list[str]) -> str | None` that returns
        the last item of the list, or None when the list is empty.""",
        """
        assert last_item(["cam", "lock", "bulb"]) == "bulb"
        assert last_item(["hub"]) == "hub"
        assert last_item([]) is None
        """,
        """
        def last_item(items: list[str]) -> str | None:
            return items[-1] if items else None
        """,
    ),
    problem(
        "circle_area",
        """Write a Python function `circle_area(radius: float) -> float` that returns the
        area of a circle, pi times the radius squared (use math.pi), rounded to 2 decimal
        places.""",
        """
        assert circle_area(1) == 3.14
        assert circle_area(2) == 12.57
        assert circle_area(0) == 0.0
        assert circle_area(0.5) == 0.79
        """,
        """
        import math


        def circle_area(radius: float) -> float:
            return round(math.pi * radius**2, 2)
        """,
    ),
    problem(
        "inches_to_cm",
        """Write a Python function `inches_to_cm(inches: float) -> float` that converts a
        length in inches to centimeters (1 inch is 2.54 cm), rounded to 2 decimal
        places.""",
        """
        assert inches_to_cm(1) == 2.54
        assert inches_to_cm(10) == 25.4
        assert inches_to_cm(0) == 0.0
        assert inches_to_cm(3.5) == 8.89
        """,
        """
        def inches_to_cm(inches: float) -> float:
            return round(inches * 2.54, 2)
        """,
    ),
    problem(
        "join_with_commas",
        """Write a Python function `join_with_commas(items: list[str]) -> str` that joins
        the items into one string with a comma and a space between neighbours, so ["a",
        "b"] becomes "a, b". An empty list gives an empty string.""",
        """
        assert join_with_commas(["cam", "lock", "bulb"]) == "cam, lock, bulb"
        assert join_with_commas([]) == ""
        assert join_with_commas(["hub"]) == "hub"
        """,
        """
        def join_with_commas(items: list[str]) -> str:
            return ", ".join(items)
        """,
    ),
    problem(
        "count_occurrences",
        """Write a Python function `count_occurrences(items: list[int], target: int) ->
        int` that returns how many times target appears in items.""",
        """
        assert count_occurrences([1, 2, 1, 3, 1], 1) == 3
        assert count_occurrences([], 5) == 0
        assert count_occurrences([4, 4], 5) == 0
        assert count_occurrences([0, 0, 7], 0) == 2
        """,
        """
        def count_occurrences(items: list[int], target: int) -> int:
            return items.count(target)
        """,
    ),
    problem(
        "starts_with_capital",
        """Write a Python function `starts_with_capital(text: str) -> bool` that returns
        True when the first character of text is an upper-case letter A to Z, and False
        otherwise, also for an empty text.""",
        """
        assert starts_with_capital("Hub") is True
        assert starts_with_capital("hub") is False
        assert starts_with_capital("") is False
        assert starts_with_capital("1st floor") is False
        """,
        """
        def starts_with_capital(text: str) -> bool:
            return text[:1] != "" and "A" <= text[0] <= "Z"
        """,
    ),
    problem(
        "repeat_text",
        """Write a Python function `repeat_text(text: str, times: int) -> str` that returns
        text repeated `times` times with nothing in between. times is 0 or more, and 0
        gives an empty string.""",
        """
        assert repeat_text("ab", 3) == "ababab"
        assert repeat_text("beep", 1) == "beep"
        assert repeat_text("x", 0) == ""
        assert repeat_text("", 4) == ""
        """,
        """
        def repeat_text(text: str, times: int) -> str:
            return text * times
        """,
    ),
    problem(
        "count_negatives",
        """Write a Python function `count_negatives(numbers: list[int]) -> int` that returns
        how many numbers in the list are below zero. Zero is not negative.""",
        """
        assert count_negatives([-1, 2, -3, 0]) == 2
        assert count_negatives([]) == 0
        assert count_negatives([0, 0]) == 0
        assert count_negatives([-5]) == 1
        """,
        """
        def count_negatives(numbers: list[int]) -> int:
            return sum(1 for number in numbers if number < 0)
        """,
    ),
    problem(
        "last_chars",
        """Write a Python function `last_chars(text: str, n: int) -> str` that returns the
        last n characters of text, or all of text when it is shorter than n. n is 0 or
        more, and n = 0 gives an empty string.""",
        """
        assert last_chars("thermostat", 4) == "stat"
        assert last_chars("hub", 10) == "hub"
        assert last_chars("lamp", 0) == ""
        assert last_chars("", 3) == ""
        """,
        """
        def last_chars(text: str, n: int) -> str:
            return text[len(text) - n :] if n < len(text) else text
        """,
    ),
    problem(
        "sort_descending",
        """Write a Python function `sort_descending(numbers: list[int]) -> list[int]` that
        returns a new list with the numbers sorted from largest to smallest. Do not modify
        the list passed in.""",
        """
        assert sort_descending([3, 1, 2]) == [3, 2, 1]
        assert sort_descending([]) == []
        assert sort_descending([5, -1, 5]) == [5, 5, -1]
        original = [1, 2]
        assert sort_descending(original) == [2, 1]
        assert original == [1, 2]
        """,
        """
        def sort_descending(numbers: list[int]) -> list[int]:
            return sorted(numbers, reverse=True)
        """,
    ),
    problem(
        "contains_digit",
        """Write a Python function `contains_digit(text: str) -> bool` that returns True
        when text holds at least one digit 0-9, and False otherwise.""",
        """
        assert contains_digit("Glow Bulb A19") is True
        assert contains_digit("Tempo Speaker") is False
        assert contains_digit("") is False
        assert contains_digit("0") is True
        """,
        """
        def contains_digit(text: str) -> bool:
            return any(char in "0123456789" for char in text)
        """,
    ),
    problem(
        "percentage",
        """Write a Python function `percentage(part: float, whole: float) -> float` that
        returns what percent part is of whole (100 * part / whole), rounded to 1 decimal
        place. When whole is 0, return 0.0.""",
        """
        assert percentage(1, 4) == 25.0
        assert percentage(1, 3) == 33.3
        assert percentage(5, 0) == 0.0
        assert percentage(2, 2) == 100.0
        """,
        """
        def percentage(part: float, whole: float) -> float:
            if whole == 0:
                return 0.0
            return round(100 * part / whole, 1)
        """,
    ),
    problem(
        "clamp",
        """Write a Python function `clamp(value: int, low: int, high: int) -> int` that
        returns value when it lies between low and high (inclusive), low when value is
        below low, and high when value is above high. low is never greater than high.""",
        """
        assert clamp(5, 1, 10) == 5
        assert clamp(-3, 0, 10) == 0
        assert clamp(15, 0, 10) == 10
        assert clamp(10, 0, 10) == 10
        """,
        """
        def clamp(value: int, low: int, high: int) -> int:
            return max(low, min(value, high))
        """,
    ),
    problem(
        "acronym",
        """Write a Python function `acronym(phrase: str) -> str` that returns the first
        letter of every word of phrase, in upper case, joined together, so "portable network
        graphics" gives "PNG". Words are separated by spaces. An empty phrase gives an empty
        string.""",
        """
        assert acronym("portable network graphics") == "PNG"
        assert acronym("Brightnest home") == "BH"
        assert acronym("as soon as possible") == "ASAP"
        assert acronym("") == ""
        """,
        """
        def acronym(phrase: str) -> str:
            return "".join(word[0].upper() for word in phrase.split())
        """,
    ),
    problem(
        "value_range",
        """Write a Python function `value_range(numbers: list[int]) -> int` that returns the
        largest number minus the smallest number of the list, or 0 when the list is
        empty.""",
        """
        assert value_range([3, 9, 1]) == 8
        assert value_range([]) == 0
        assert value_range([5]) == 0
        assert value_range([-2, 4]) == 6
        """,
        """
        def value_range(numbers: list[int]) -> int:
            if not numbers:
                return 0
            return max(numbers) - min(numbers)
        """,
    ),
    problem(
        "to_binary",
        """Write a Python function `to_binary(n: int) -> str` that returns the binary digits
        of a whole number n that is 0 or more, without a "0b" prefix, so 5 gives "101" and 0
        gives "0".""",
        """
        assert to_binary(5) == "101"
        assert to_binary(0) == "0"
        assert to_binary(8) == "1000"
        assert to_binary(1) == "1"
        """,
        """
        def to_binary(n: int) -> str:
            return bin(n)[2:]
        """,
    ),
    problem(
        "store_credit",
        """Write a Python function `store_credit(refund: float) -> float` for Brightnest
        Home returns. A customer who takes store credit instead of a refund gets a 10% bonus:
        return the refund amount plus 10%, rounded to 2 decimal places.""",
        """
        assert store_credit(100.0) == 110.0
        assert store_credit(24.99) == 27.49
        assert store_credit(0.0) == 0.0
        assert store_credit(59) == 64.9
        """,
        """
        def store_credit(refund: float) -> float:
            return round(refund * 1.1, 2)
        """,
    ),
    problem(
        "is_gold_member",
        """Write a Python function `is_gold_member(points_this_year: int) -> bool` that
        returns True when a Brightnest Rewards member who earned `points_this_year` points
        in the calendar year reaches Gold status, which takes 1,000 points or more.""",
        """
        assert is_gold_member(1000) is True
        assert is_gold_member(999) is False
        assert is_gold_member(2500) is True
        assert is_gold_member(0) is False
        """,
        """
        def is_gold_member(points_this_year: int) -> bool:
            return points_this_year >= 1000
        """,
    ),
    problem(
        "careplus_cost",
        """Write a Python function `careplus_cost(devices: int) -> int` that returns what
        CarePlus costs, in dollars, for `devices` Brightnest devices: CarePlus is 29 dollars
        per device.""",
        """
        assert careplus_cost(1) == 29
        assert careplus_cost(3) == 87
        assert careplus_cost(0) == 0
        """,
        """
        def careplus_cost(devices: int) -> int:
            return 29 * devices
        """,
    ),
    problem(
        "thermostat_can_pair",
        """Write a Python function `thermostat_can_pair(sensor_count: int) -> bool` that
        returns True when one Aura Thermostat can pair with `sensor_count` Aura Room Sensors.
        A thermostat pairs with up to 6 sensors; sensor_count is 0 or more.""",
        """
        assert thermostat_can_pair(6) is True
        assert thermostat_can_pair(7) is False
        assert thermostat_can_pair(0) is True
        assert thermostat_can_pair(2) is True
        """,
        """
        def thermostat_can_pair(sensor_count: int) -> bool:
            return sensor_count <= 6
        """,
    ),
    problem(
        "auto_lock_delay_ok",
        """Write a Python function `auto_lock_delay_ok(seconds: int) -> bool` that returns
        True when `seconds` is a delay the Keystone Smart Lock's auto-lock accepts: from 30
        seconds to 5 minutes, both included.""",
        """
        assert auto_lock_delay_ok(30) is True
        assert auto_lock_delay_ok(300) is True
        assert auto_lock_delay_ok(29) is False
        assert auto_lock_delay_ok(301) is False
        assert auto_lock_delay_ok(120) is True
        """,
        """
        def auto_lock_delay_ok(seconds: int) -> bool:
            return 30 <= seconds <= 300
        """,
    ),
    problem(
        "gold_status_until",
        """Write a Python function `gold_status_until(year_reached: int) -> int`. Brightnest
        Rewards Gold status lasts for the rest of the calendar year in which it is reached
        and for the whole following year. Return the last calendar year in which a member
        who reached Gold in `year_reached` still has it.""",
        """
        assert gold_status_until(2024) == 2025
        assert gold_status_until(2030) == 2031
        assert gold_status_until(1999) == 2000
        """,
        """
        def gold_status_until(year_reached: int) -> int:
            return year_reached + 1
        """,
    ),
    problem(
        "protect_cost",
        """Write a Python function `protect_cost(devices: int, months: int) -> float` that
        returns what a Brightnest Protect subscription costs, in dollars, for `devices`
        cameras or doorbells over `months` months: 3.99 dollars per device per month, rounded
        to 2 decimal places.""",
        """
        assert protect_cost(1, 1) == 3.99
        assert protect_cost(2, 3) == 23.94
        assert protect_cost(0, 12) == 0.0
        assert protect_cost(1, 12) == 47.88
        """,
        """
        def protect_cost(devices: int, months: int) -> float:
            return round(3.99 * devices * months, 2)
        """,
    ),
    problem(
        "add_birthday_bonus",
        """Write a Python function `add_birthday_bonus(balance: int) -> int` that returns a
        Brightnest Rewards points balance after the member's birthday, when members get 200
        bonus points.""",
        """
        assert add_birthday_bonus(0) == 200
        assert add_birthday_bonus(350) == 550
        assert add_birthday_bonus(1000) == 1200
        """,
        """
        def add_birthday_bonus(balance: int) -> int:
            return balance + 200
        """,
    ),
    problem(
        "total_lumens",
        """Write a Python function `total_lumens(bulb_count: int) -> int` that returns how
        much light `bulb_count` Glow Bulb A19 Color bulbs give together, in lumens: each
        bulb gives 800 lumens.""",
        """
        assert total_lumens(1) == 800
        assert total_lumens(4) == 3200
        assert total_lumens(0) == 0
        """,
        """
        def total_lumens(bulb_count: int) -> int:
            return 800 * bulb_count
        """,
    ),
    # --- one loop or condition ---
    problem(
        "fizzbuzz",
        """Write a Python function `fizzbuzz(n: int) -> str` that returns "FizzBuzz" when n
        is divisible by both 3 and 5, "Fizz" when it is divisible by 3 only, "Buzz" when it
        is divisible by 5 only, and otherwise n written as a string, such as "7".""",
        """
        assert fizzbuzz(15) == "FizzBuzz"
        assert fizzbuzz(9) == "Fizz"
        assert fizzbuzz(10) == "Buzz"
        assert fizzbuzz(7) == "7"
        assert fizzbuzz(30) == "FizzBuzz"
        """,
        """
        def fizzbuzz(n: int) -> str:
            if n % 15 == 0:
                return "FizzBuzz"
            if n % 3 == 0:
                return "Fizz"
            if n % 5 == 0:
                return "Buzz"
            return str(n)
        """,
    ),
    problem(
        "factorial",
        """Write a Python function `factorial(n: int) -> int` that returns n! = 1 * 2 * ...
        * n, with 0! = 1. Raise ValueError when n is negative.""",
        """
        assert factorial(5) == 120
        assert factorial(0) == 1
        assert factorial(1) == 1
        assert factorial(10) == 3628800
        try:
            factorial(-1)
        except ValueError:
            pass
        else:
            raise AssertionError("factorial(-1) should raise ValueError")
        """,
        """
        def factorial(n: int) -> int:
            if n < 0:
                raise ValueError("n must not be negative")
            result = 1
            for factor in range(2, n + 1):
                result *= factor
            return result
        """,
    ),
    problem(
        "fibonacci",
        """Write a Python function `fibonacci(n: int) -> int` that returns the n-th
        Fibonacci number, where fibonacci(0) is 0, fibonacci(1) is 1, and every later one is
        the sum of the two before it. n is 0 or more.""",
        """
        assert fibonacci(0) == 0
        assert fibonacci(1) == 1
        assert fibonacci(2) == 1
        assert fibonacci(10) == 55
        assert fibonacci(30) == 832040
        """,
        """
        def fibonacci(n: int) -> int:
            current, following = 0, 1
            for _ in range(n):
                current, following = following, current + following
            return current
        """,
    ),
    problem(
        "is_prime",
        """Write a Python function `is_prime(n: int) -> bool` that returns True when n is a
        prime number: a whole number greater than 1 whose only divisors are 1 and itself.
        Numbers below 2, negative ones included, are not prime.""",
        """
        assert is_prime(2) is True
        assert is_prime(17) is True
        assert is_prime(1) is False
        assert is_prime(9) is False
        assert is_prime(-7) is False
        assert is_prime(97) is True
        """,
        """
        def is_prime(n: int) -> bool:
            if n < 2:
                return False
            divisor = 2
            while divisor * divisor <= n:
                if n % divisor == 0:
                    return False
                divisor += 1
            return True
        """,
    ),
    problem(
        "letter_grade",
        """Write a Python function `letter_grade(score: int) -> str` that turns a score from
        0 to 100 into a letter: "A" for 90 and above, "B" for 80 to 89, "C" for 70 to 79,
        "D" for 60 to 69 and "F" below 60.""",
        """
        assert letter_grade(95) == "A"
        assert letter_grade(90) == "A"
        assert letter_grade(89) == "B"
        assert letter_grade(70) == "C"
        assert letter_grade(65) == "D"
        assert letter_grade(59) == "F"
        """,
        """
        def letter_grade(score: int) -> str:
            if score >= 90:
                return "A"
            if score >= 80:
                return "B"
            if score >= 70:
                return "C"
            if score >= 60:
                return "D"
            return "F"
        """,
    ),
    problem(
        "index_of",
        """Write a Python function `index_of(items: list[str], target: str) -> int` that
        returns the position (counting from 0) of the first item equal to target, or -1
        when target is not in the list.""",
        """
        assert index_of(["cam", "lock", "cam"], "cam") == 0
        assert index_of(["cam", "lock"], "lock") == 1
        assert index_of(["cam"], "bulb") == -1
        assert index_of([], "hub") == -1
        """,
        """
        def index_of(items: list[str], target: str) -> int:
            for index, item in enumerate(items):
                if item == target:
                    return index
            return -1
        """,
    ),
    problem(
        "running_total",
        """Write a Python function `running_total(numbers: list[int]) -> list[int]` that
        returns a list of the same length whose i-th element is the sum of the numbers from
        the first up to and including the i-th, so [1, 2, 3] gives [1, 3, 6].""",
        """
        assert running_total([1, 2, 3]) == [1, 3, 6]
        assert running_total([]) == []
        assert running_total([5, -5, 2]) == [5, 0, 2]
        assert running_total([4]) == [4]
        """,
        """
        def running_total(numbers: list[int]) -> list[int]:
            totals = []
            total = 0
            for number in numbers:
                total += number
                totals.append(total)
            return totals
        """,
    ),
    problem(
        "longest_word",
        """Write a Python function `longest_word(text: str) -> str` that returns the longest
        word of text, words being separated by spaces. When several words are equally long,
        return the first of them; when text has no words, return an empty string.""",
        """
        assert longest_word("the smart lock") == "smart"
        assert longest_word("hub   thermostat") == "thermostat"
        assert longest_word("aa bb") == "aa"
        assert longest_word("") == ""
        """,
        """
        def longest_word(text: str) -> str:
            longest = ""
            for word in text.split():
                if len(word) > len(longest):
                    longest = word
            return longest
        """,
    ),
    problem(
        "is_sorted",
        """Write a Python function `is_sorted(numbers: list[int]) -> bool` that returns True
        when every number is greater than or equal to the one before it. An empty list and
        a list of one number are sorted.""",
        """
        assert is_sorted([1, 2, 2, 5]) is True
        assert is_sorted([3, 1]) is False
        assert is_sorted([1, 3, 2]) is False
        assert is_sorted([]) is True
        assert is_sorted([7]) is True
        """,
        """
        def is_sorted(numbers: list[int]) -> bool:
            return all(a <= b for a, b in zip(numbers, numbers[1:]))
        """,
    ),
    problem(
        "digit_sum",
        """Write a Python function `digit_sum(n: int) -> int` that returns the sum of the
        decimal digits of n. For a negative n, ignore the minus sign, so -45 gives 9.""",
        """
        assert digit_sum(123) == 6
        assert digit_sum(0) == 0
        assert digit_sum(-45) == 9
        assert digit_sum(9999) == 36
        """,
        """
        def digit_sum(n: int) -> int:
            return sum(int(digit) for digit in str(abs(n)))
        """,
    ),
    problem(
        "is_leap_year",
        """Write a Python function `is_leap_year(year: int) -> bool` that returns True when
        year is a leap year of the Gregorian calendar: divisible by 4, except years
        divisible by 100, which are leap years only when also divisible by 400.""",
        """
        assert is_leap_year(2024) is True
        assert is_leap_year(2023) is False
        assert is_leap_year(1900) is False
        assert is_leap_year(2000) is True
        """,
        """
        def is_leap_year(year: int) -> bool:
            return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        """,
    ),
    problem(
        "common_elements",
        """Write a Python function `common_elements(a: list[int], b: list[int]) ->
        list[int]` that returns the numbers found in both lists, each once, sorted from
        smallest to largest.""",
        """
        assert common_elements([3, 1, 2, 2], [2, 3, 4]) == [2, 3]
        assert common_elements([], [1]) == []
        assert common_elements([5, 5], [5]) == [5]
        assert common_elements([1], [2]) == []
        """,
        """
        def common_elements(a: list[int], b: list[int]) -> list[int]:
            return sorted(set(a) & set(b))
        """,
    ),
    problem(
        "collapse_whitespace",
        """Write a Python function `collapse_whitespace(text: str) -> str` that replaces
        every run of spaces, tabs and newlines in text with a single space and removes them
        from the start and the end.""",
        """
        assert collapse_whitespace("  hub   mini ") == "hub mini"
        assert collapse_whitespace("a\\t\\tb\\nc") == "a b c"
        assert collapse_whitespace("") == ""
        assert collapse_whitespace("lock") == "lock"
        """,
        """
        def collapse_whitespace(text: str) -> str:
            return " ".join(text.split())
        """,
    ),
    problem(
        "is_anagram",
        """Write a Python function `is_anagram(first: str, second: str) -> bool` that returns
        True when the two texts use exactly the same letters the same number of times,
        ignoring case and spaces, so "Dormitory" and "dirty room" are anagrams.""",
        """
        assert is_anagram("Listen", "Silent") is True
        assert is_anagram("Dormitory", "dirty room") is True
        assert is_anagram("abc", "abd") is False
        assert is_anagram("aab", "abb") is False
        assert is_anagram("", "") is True
        """,
        """
        def is_anagram(first: str, second: str) -> bool:
            def letters(text: str) -> list[str]:
                return sorted(text.lower().replace(" ", ""))

            return letters(first) == letters(second)
        """,
    ),
    problem(
        "refund_after_fee",
        """Write a Python function `refund_after_fee(price: float, reason: str) -> float`
        that returns the refund for a Brightnest Home return. When reason is "defective",
        "damaged" or "wrong item", the whole price is refunded; for any other reason a 6.95
        dollar return shipping fee is deducted, and the refund is never below 0. Round to 2
        decimal places.""",
        """
        assert refund_after_fee(99.0, "defective") == 99.0
        assert refund_after_fee(99.0, "changed my mind") == 92.05
        assert refund_after_fee(24.99, "wrong item") == 24.99
        assert refund_after_fee(19.99, "damaged") == 19.99
        assert refund_after_fee(5.0, "too small") == 0.0
        """,
        """
        def refund_after_fee(price: float, reason: str) -> float:
            if reason in ("defective", "damaged", "wrong item"):
                return round(price, 2)
            return round(max(price - 6.95, 0.0), 2)
        """,
    ),
    problem(
        "protect_monthly_cost",
        """Write a Python function `protect_monthly_cost(devices: int) -> float` that
        returns the cheapest monthly price, in dollars, of Brightnest Protect for `devices`
        cameras and doorbells: either Brightnest Protect at 3.99 dollars per device, or
        Protect Plus at 9.99 dollars for any number of devices. Round to 2 decimal places;
        0 devices cost 0.0.""",
        """
        assert protect_monthly_cost(1) == 3.99
        assert protect_monthly_cost(2) == 7.98
        assert protect_monthly_cost(3) == 9.99
        assert protect_monthly_cost(12) == 9.99
        assert protect_monthly_cost(0) == 0.0
        """,
        """
        def protect_monthly_cost(devices: int) -> float:
            return min(round(3.99 * devices, 2), 9.99)
        """,
    ),
    problem(
        "can_edit_order",
        """Write a Python function `can_edit_order(minutes_since_order: int, shipped: bool)
        -> bool`. A Brightnest Home order can be cancelled, or its address changed, within 1
        hour of placing it as long as it has not shipped: return True when at most 60
        minutes have passed and shipped is False.""",
        """
        assert can_edit_order(0, False) is True
        assert can_edit_order(60, False) is True
        assert can_edit_order(61, False) is False
        assert can_edit_order(5, True) is False
        """,
        """
        def can_edit_order(minutes_since_order: int, shipped: bool) -> bool:
            return minutes_since_order <= 60 and not shipped
        """,
    ),
    problem(
        "ships_same_day",
        """Write a Python function `ships_same_day(hour: int, business_day: bool) -> bool`.
        Brightnest Home orders placed before 2 p.m. Eastern Time on a business day ship the
        same day. `hour` is the hour, 0 to 23 in Eastern Time, at which the order was placed
        (13 for 1:45 p.m.). Return True when the order ships the same day.""",
        """
        assert ships_same_day(13, True) is True
        assert ships_same_day(14, True) is False
        assert ships_same_day(9, False) is False
        assert ships_same_day(0, True) is True
        """,
        """
        def ships_same_day(hour: int, business_day: bool) -> bool:
            return business_day and hour < 14
        """,
    ),
    problem(
        "warranty_months",
        """Write a Python function `warranty_months(product_line: str) -> int` that returns
        the length in months of the Brightnest warranty of a product line: "Climate &
        Sensors" 3 years, "Security" 2 years, "Lighting & Power" 1 year and "Hub & Audio" 18
        months. Raise ValueError for any other product line.""",
        """
        assert warranty_months("Climate & Sensors") == 36
        assert warranty_months("Security") == 24
        assert warranty_months("Lighting & Power") == 12
        assert warranty_months("Hub & Audio") == 18
        try:
            warranty_months("Audio")
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown product line should raise ValueError")
        """,
        """
        WARRANTY_MONTHS = {
            "Climate & Sensors": 36,
            "Security": 24,
            "Lighting & Power": 12,
            "Hub & Audio": 18,
        }


        def warranty_months(product_line: str) -> int:
            if product_line not in WARRANTY_MONTHS:
                raise ValueError(f"unknown product line {product_line!r}")
            return WARRANTY_MONTHS[product_line]
        """,
    ),
    problem(
        "glow_bulb_cost",
        """Write a Python function `glow_bulb_cost(count: int) -> float` that returns the
        cheapest price, in dollars, of `count` Glow Bulb A19 Color bulbs: they cost 19.99
        dollars each or 64.99 dollars for a 4-pack, so buy as many 4-packs as fit in count
        and single bulbs for the rest. Round to 2 decimal places.""",
        """
        assert glow_bulb_cost(4) == 64.99
        assert glow_bulb_cost(5) == 84.98
        assert glow_bulb_cost(3) == 59.97
        assert glow_bulb_cost(9) == 149.97
        assert glow_bulb_cost(0) == 0.0
        """,
        """
        def glow_bulb_cost(count: int) -> float:
            packs, singles = divmod(count, 4)
            return round(packs * 64.99 + singles * 19.99, 2)
        """,
    ),
    problem(
        "price_adjustment",
        """Write a Python function `price_adjustment(paid: float, new_price: float,
        days_since_purchase: int) -> float`. When the price of a Brightnest Home item drops
        within 14 days of purchase (days_since_purchase 14 or less), the difference is
        refunded: return paid minus new_price, rounded to 2 decimal places. Return 0.0 when
        the price did not drop or more than 14 days have passed.""",
        """
        assert price_adjustment(149.0, 129.0, 3) == 20.0
        assert price_adjustment(24.99, 19.99, 14) == 5.0
        assert price_adjustment(24.99, 19.99, 15) == 0.0
        assert price_adjustment(79.0, 89.0, 2) == 0.0
        """,
        """
        def price_adjustment(paid: float, new_price: float, days_since_purchase: int) -> float:
            if days_since_purchase > 14 or new_price >= paid:
                return 0.0
            return round(paid - new_price, 2)
        """,
    ),
    problem(
        "support_is_open",
        """Write a Python function `support_is_open(day: str, hour: int) -> bool` for the
        Brightnest Home phone line. day is an English weekday name such as "Monday" and hour
        a whole hour from 0 to 23 in Eastern Time. The line is open Monday to Friday from 8
        a.m. to 8 p.m. (hours 8 to 19), Saturday from 9 a.m. to 5 p.m. (hours 9 to 16), and
        closed on Sunday.""",
        """
        assert support_is_open("Monday", 8) is True
        assert support_is_open("Wednesday", 19) is True
        assert support_is_open("Friday", 20) is False
        assert support_is_open("Saturday", 8) is False
        assert support_is_open("Saturday", 16) is True
        assert support_is_open("Sunday", 12) is False
        """,
        """
        def support_is_open(day: str, hour: int) -> bool:
            if day == "Sunday":
                return False
            if day == "Saturday":
                return 9 <= hour < 17
            return 8 <= hour < 20
        """,
    ),
    # --- harder ---
    problem(
        "caesar_shift",
        """Write a Python function `caesar_shift(text: str, shift: int) -> str` that moves
        every letter of text `shift` places forward in the alphabet, wrapping from z back to
        a, and keeps its case; other characters stay unchanged. shift may be negative or
        larger than 26.""",
        """
        assert caesar_shift("abc", 1) == "bcd"
        assert caesar_shift("xyz", 3) == "abc"
        assert caesar_shift("Hello, World!", 5) == "Mjqqt, Btwqi!"
        assert caesar_shift("bcd", -1) == "abc"
        assert caesar_shift("a", 27) == "b"
        """,
        """
        def caesar_shift(text: str, shift: int) -> str:
            shifted = []
            for char in text:
                if "a" <= char <= "z" or "A" <= char <= "Z":
                    base = ord("a") if char.islower() else ord("A")
                    shifted.append(chr(base + (ord(char) - base + shift) % 26))
                else:
                    shifted.append(char)
            return "".join(shifted)
        """,
    ),
    problem(
        "rotate_right",
        """Write a Python function `rotate_right(items: list[int], k: int) -> list[int]`
        that returns a new list with the items moved k places to the right, the last items
        wrapping round to the front, so rotating [1, 2, 3, 4, 5] by 2 gives [4, 5, 1, 2, 3].
        k is 0 or more and may be larger than the length of the list.""",
        """
        assert rotate_right([1, 2, 3, 4, 5], 2) == [4, 5, 1, 2, 3]
        assert rotate_right([1, 2, 3], 0) == [1, 2, 3]
        assert rotate_right([1, 2, 3], 4) == [3, 1, 2]
        assert rotate_right([1, 2, 3], 3) == [1, 2, 3]
        assert rotate_right([], 3) == []
        """,
        """
        def rotate_right(items: list[int], k: int) -> list[int]:
            if not items:
                return []
            k %= len(items)
            return items[len(items) - k :] + items[: len(items) - k]
        """,
    ),
    problem(
        "balanced_brackets",
        """Write a Python function `balanced_brackets(text: str) -> bool` that returns True
        when the brackets (), [] and {} in text are balanced: every opening bracket is
        closed by a bracket of the same kind, in the right order. Other characters are
        ignored.""",
        """
        assert balanced_brackets("([]{})") is True
        assert balanced_brackets("f(a[1]) + {b}") is True
        assert balanced_brackets("([)]") is False
        assert balanced_brackets("((") is False
        assert balanced_brackets("}{") is False
        assert balanced_brackets("") is True
        """,
        """
        def balanced_brackets(text: str) -> bool:
            pairs = {")": "(", "]": "[", "}": "{"}
            stack = []
            for char in text:
                if char in "([{":
                    stack.append(char)
                elif char in pairs:
                    if not stack or stack.pop() != pairs[char]:
                        return False
            return not stack
        """,
    ),
    problem(
        "roman_to_int",
        """Write a Python function `roman_to_int(numeral: str) -> int` that converts a
        valid Roman numeral in upper case (I = 1, V = 5, X = 10, L = 50, C = 100, D = 500,
        M = 1000) to an integer. A symbol written before a larger one is subtracted, so "IV"
        is 4 and "XC" is 90.""",
        """
        assert roman_to_int("III") == 3
        assert roman_to_int("IV") == 4
        assert roman_to_int("IX") == 9
        assert roman_to_int("LVIII") == 58
        assert roman_to_int("MCMXCIV") == 1994
        """,
        """
        VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


        def roman_to_int(numeral: str) -> int:
            total = 0
            for index, symbol in enumerate(numeral):
                value = VALUES[symbol]
                if index + 1 < len(numeral) and VALUES[numeral[index + 1]] > value:
                    total -= value
                else:
                    total += value
            return total
        """,
    ),
    problem(
        "merge_sorted",
        """Write a Python function `merge_sorted(a: list[int], b: list[int]) -> list[int]`
        that takes two lists, each sorted from smallest to largest, and returns one list
        holding all their numbers, duplicates included, sorted from smallest to largest.""",
        """
        assert merge_sorted([1, 3, 5], [2, 4]) == [1, 2, 3, 4, 5]
        assert merge_sorted([], [1, 1]) == [1, 1]
        assert merge_sorted([2, 2], [2]) == [2, 2, 2]
        assert merge_sorted([], []) == []
        assert merge_sorted([-1, 10], [0]) == [-1, 0, 10]
        """,
        """
        def merge_sorted(a: list[int], b: list[int]) -> list[int]:
            merged = []
            i = j = 0
            while i < len(a) and j < len(b):
                if a[i] <= b[j]:
                    merged.append(a[i])
                    i += 1
                else:
                    merged.append(b[j])
                    j += 1
            return merged + a[i:] + b[j:]
        """,
    ),
    problem(
        "snake_to_camel",
        """Write a Python function `snake_to_camel(name: str) -> str` that turns a
        snake_case name, words joined by single underscores, into camelCase: the first word
        all in lower case, and every later word with its first character in upper case and
        the rest in lower case, with the underscores removed.""",
        """
        assert snake_to_camel("battery_level_low") == "batteryLevelLow"
        assert snake_to_camel("hub") == "hub"
        assert snake_to_camel("DEVICE_name") == "deviceName"
        assert snake_to_camel("wifi_signal_2g") == "wifiSignal2g"
        assert snake_to_camel("") == ""
        """,
        """
        def snake_to_camel(name: str) -> str:
            first, *rest = name.split("_")
            return first.lower() + "".join(word[:1].upper() + word[1:].lower() for word in rest)
        """,
    ),
    problem(
        "parse_settings",
        """Write a Python function `parse_settings(text: str) -> dict[str, str]` that reads
        settings written as "key=value" pairs separated by ";", such as "mode=eco; temp=21".
        Spaces around keys and values are removed, empty pairs are skipped, and a value may
        itself contain "=" (only the first "=" separates). Raise ValueError for a non-empty
        pair without "=" or with an empty key.""",
        """
        assert parse_settings("mode=eco; temp=21") == {"mode": "eco", "temp": "21"}
        assert parse_settings("") == {}
        assert parse_settings("a=1;;b=2;") == {"a": "1", "b": "2"}
        assert parse_settings("url = x=y") == {"url": "x=y"}
        for bad in ["mode", "=5", "a=1; b"]:
            try:
                parse_settings(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"parse_settings({bad!r}) should raise ValueError")
        """,
        """
        def parse_settings(text: str) -> dict[str, str]:
            settings = {}
            for pair in text.split(";"):
                if not pair.strip():
                    continue
                key, separator, value = pair.partition("=")
                if not separator or not key.strip():
                    raise ValueError(f"not a key=value pair: {pair!r}")
                settings[key.strip()] = value.strip()
            return settings
        """,
    ),
    problem(
        "pascal_row",
        """Write a Python function `pascal_row(n: int) -> list[int]` that returns row n of
        Pascal's triangle, counting from row 0, which is [1]; each number of a row is the
        sum of the two numbers above it, so row 2 is [1, 2, 1]. Raise ValueError when n is
        negative.""",
        """
        assert pascal_row(0) == [1]
        assert pascal_row(1) == [1, 1]
        assert pascal_row(4) == [1, 4, 6, 4, 1]
        assert pascal_row(5) == [1, 5, 10, 10, 5, 1]
        try:
            pascal_row(-1)
        except ValueError:
            pass
        else:
            raise AssertionError("pascal_row(-1) should raise ValueError")
        """,
        """
        def pascal_row(n: int) -> list[int]:
            if n < 0:
                raise ValueError("n must not be negative")
            row = [1]
            for _ in range(n):
                row = [1] + [a + b for a, b in zip(row, row[1:])] + [1]
            return row
        """,
    ),
    problem(
        "klarna_payments",
        """Write a Python function `klarna_payments(total: float) -> list[float]`.
        Brightnest Home orders over 100 dollars can be paid in 4 interest-free payments.
        Return the 4 payments in dollars: each is the total divided by 4 rounded down to the
        cent, and the cents left over are added to the last payment, so the payments add up
        to the total exactly. Raise ValueError when the total is 100 dollars or less.""",
        """
        assert klarna_payments(200.0) == [50.0, 50.0, 50.0, 50.0]
        assert klarna_payments(100.01) == [25.0, 25.0, 25.0, 25.01]
        assert klarna_payments(149.99) == [37.49, 37.49, 37.49, 37.52]
        assert klarna_payments(219.0) == [54.75, 54.75, 54.75, 54.75]
        try:
            klarna_payments(100.0)
        except ValueError:
            pass
        else:
            raise AssertionError("a total of 100 dollars should raise ValueError")
        """,
        """
        def klarna_payments(total: float) -> list[float]:
            if total <= 100:
                raise ValueError("only orders over 100 dollars can be paid in 4 payments")
            cents = round(total * 100)
            payment, left_over = divmod(cents, 4)
            return [payment / 100] * 3 + [(payment + left_over) / 100]
        """,
    ),
    problem(
        "add_keypad_code",
        """Write a Python function `add_keypad_code(codes: list[str], code: str) ->
        list[str]` that returns a new list of the keypad codes stored on a Keystone Smart
        Lock, with code added at the end; do not modify codes. The lock stores up to 50
        codes. Raise ValueError when code is not 4 to 8 digits 0-9, when it is already
        stored, or when 50 codes are already stored.""",
        """
        stored = ["1234"]
        assert add_keypad_code(stored, "98765") == ["1234", "98765"]
        assert stored == ["1234"]
        assert add_keypad_code([], "00000000") == ["00000000"]
        full = [f"{number:04d}" for number in range(50)]
        bad = [([], "123"), ([], "12a4"), ([], "123456789"), (stored, "1234"), (full, "9999")]
        for codes, code in bad:
            try:
                add_keypad_code(codes, code)
            except ValueError:
                pass
            else:
                raise AssertionError(f"adding {code!r} should raise ValueError")
        """,
        """
        import re


        def add_keypad_code(codes: list[str], code: str) -> list[str]:
            if re.fullmatch(r"[0-9]{4,8}", code) is None:
                raise ValueError(f"a code is 4 to 8 digits, got {code!r}")
            if code in codes:
                raise ValueError(f"code {code!r} is already stored")
            if len(codes) >= 50:
                raise ValueError("the lock already stores 50 codes")
            return [*codes, code]
        """,
    ),
]


SPLITS = {"test": ("cp", TEST_PROBLEMS), "train": ("cpt", TRAIN_PROBLEMS)}


def numbered(problems: list[dict[str, str]], prefix: str) -> list[dict[str, str]]:
    """The problems with their ids (``prefix``-001, ...), in the order given.

    Raises:
        ValueError: a prompt does not name its entry point, or two share one.
    """
    entry_points = [p["entry_point"] for p in problems]
    for p in problems:
        if f"`{p['entry_point']}(" not in p["prompt"]:
            raise ValueError(f"the prompt of {p['entry_point']!r} does not name it as `name(`")
        if entry_points.count(p["entry_point"]) > 1:
            raise ValueError(f"entry point {p['entry_point']!r} is used twice")
    return [{"id": f"{prefix}-{number:03d}", **p} for number, p in enumerate(problems, start=1)]


def splits() -> dict[str, list[dict[str, str]]]:
    """Every split's records, checked: the train split shares no function with the test
    split, and every reference solution passes its tests in the sandbox.

    Raises:
        ValueError: a prompt does not name its entry point, an entry point is used twice or
            in both splits, or a reference solution fails its tests.
    """
    records = {split: numbered(problems, prefix) for split, (prefix, problems) in SPLITS.items()}
    shared = {r["entry_point"] for r in records["train"]} & {
        r["entry_point"] for r in records["test"]
    }
    if shared:
        raise ValueError(
            f"train problems reuse the test entry points {sorted(shared)}; the test split is "
            "held out by function, so rename or replace these train problems"
        )
    everything = [r for split_records in records.values() for r in split_records]
    results = run_many([(r["solution"], r["tests"]) for r in everything], timeout_s=10)
    failures = [
        f"{r['id']} ({r['entry_point']}): {result.output.strip()}"
        for r, result in zip(everything, results, strict=True)
        if not result.passed
    ]
    if failures:
        raise ValueError(
            "these reference solutions fail their tests; fix the solution or the tests:\n"
            + "\n".join(failures)
        )
    return records


README = """# code_problems (natural language to Python)

Function-writing tasks scored by running unit tests, in two splits:

- `test`: 33 problems (`cp-001` to `cp-033`), held out for scoring generated code by pass@1
  (`lmforge eval --task code`).
- `train`: 62 problems (`cpt-001` to `cpt-062`), for reinforcement learning with a reward
  that runs the model's code against the tests (GRPO, say).

Each record is `{"id": "cp-001", "prompt": str, "entry_point": str, "tests": str,
"solution": str}`. The prompt names the function and its signature ("Write a Python
function `order_total(prices: list[float], discount: float) -> float` that ...") and says
exactly what it returns, rounding and errors included. `tests` is Python source that calls
`entry_point`: 3 to 6 `assert` statements, and a `try`/`except` check where the task must
raise ValueError. It runs after the model's code in
`lmforge.evaluate.sandbox.run_python_tests`, and `solution`, a reference implementation,
passes it.

More than half of the test problems are Brightnest Home tasks: order totals, shipping,
Rewards points, the return window, warranty end dates and order numbers as `company/`
states them, and SKUs, battery levels and thermostat schedules. The rest are generic
string, list and dict work. They run from one-liners a 135M model can get right
(`sum_list`, `is_even`) to date arithmetic and parsing (`warranty_end`, `setpoint_at`,
`parse_duration`).

The train problems were written after the test problems and separately from them, and the
test split is held out by function: no train problem has a test problem's entry point or
task, nor a renamed variant of one (no `sum_numbers` beside `sum_list`), and the Brightnest
Home train tasks use other facts of `company/` than the test tasks (store credit's 10%
bonus, the $6.95 return fee, Brightnest Protect and CarePlus prices, Gold status, warranty
lengths by product line, Glow Bulb packs, the order-change hour, the support hours), so
pass@1 on `test` measures what training transferred, not what it memorized. Train is
weighted to easy problems, since a reward the model never earns teaches it nothing: 30
one-liners (`largest`, `squares`, `store_credit`), 22 with one loop or condition
(`fizzbuzz`, `is_leap_year`, `protect_monthly_cost`) and 10 harder ones (`roman_to_int`,
`balanced_brackets`, `klarna_payments`); 19 of the 62 are Brightnest Home tasks.

Written by `scripts/make_code_problems.py`, which holds the problems as literal data and,
before writing, checks that the splits share no entry point and runs every reference
solution against its tests in the sandbox; edit it, then run
`python scripts/make_code_problems.py`.
"""


def write(out: Path) -> dict[str, Path]:
    """Write ``test.jsonl``, ``train.jsonl`` and ``README.md`` under ``out``, each through
    a temporary file, so a failed run never leaves half a file.

    Returns:
        The path of each split's file.
    """
    records = splits()
    out.mkdir(parents=True, exist_ok=True)
    paths = {split: out / f"{split}.jsonl" for split in records}
    texts = {
        paths[split]: "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rs)
        for split, rs in records.items()
    }
    texts[out / "README.md"] = README
    for target, text in texts.items():
        partial = target.with_name(target.name + ".partial")
        partial.write_text(text, encoding="utf-8", newline="\n")
        os.replace(partial, target)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    for split, path in write(args.out).items():
        print(f"wrote {len(SPLITS[split][1])} {split} problems to {path}")


if __name__ == "__main__":
    main()
