#!/usr/bin/env python3
"""Write the natural-language-to-Python problem set (src/lmforge/assets/datasets/code_problems/).

Small function-writing tasks for scoring a model's code by pass@1: each prompt names the
function and its signature and says what it must do, and the tests are ``assert``
statements that ``lmforge.evaluate.sandbox.run_python_tests`` runs after the model's
code. Many tasks are about Brightnest Home, the fictional smart-home retailer of the other
bundled datasets, and agree with its documents (45-day returns, $75 free-shipping minimum,
1 Rewards point per dollar, order numbers "BN-" and 7 digits); the rest are generic string,
list and dict work. They run from one-liners a 135M model can get right to date arithmetic
and parsing. All were written for lmforge.

    python scripts/make_code_problems.py                  # rewrite the committed file
    python scripts/make_code_problems.py --out /tmp/cp    # write it elsewhere

The problems are literal data below; the file is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

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


# Easy first, harder later. A test that expects ValueError uses try/except/else, since a
# model's function that returns instead of raising must fail it.
PROBLEMS = [
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


def records() -> list[dict[str, str]]:
    """Every problem with its id (cp-001, ...), in the order above.

    Raises:
        ValueError: a prompt does not name its entry point, or two share one.
    """
    entry_points = [p["entry_point"] for p in PROBLEMS]
    for p in PROBLEMS:
        if f"`{p['entry_point']}(" not in p["prompt"]:
            raise ValueError(f"the prompt of {p['entry_point']!r} does not name it as `name(`")
        if entry_points.count(p["entry_point"]) > 1:
            raise ValueError(f"entry point {p['entry_point']!r} is used twice")
    return [{"id": f"cp-{number:03d}", **p} for number, p in enumerate(PROBLEMS, start=1)]


README = """# code_problems (natural language to Python)

test 33 function-writing tasks for scoring generated code by pass@1: `{"id": "cp-001",
"prompt": str, "entry_point": str, "tests": str, "solution": str}`. The prompt names the
function and its signature ("Write a Python function `order_total(prices: list[float],
discount: float) -> float` that ...") and says exactly what it returns, rounding and
errors included. `tests` is Python source that calls `entry_point`: 3 to 6 `assert`
statements, and a `try`/`except` check where the task must raise ValueError. It runs after
the model's code in `lmforge.evaluate.sandbox.run_python_tests`, and `solution`, a
reference implementation, passes it.

More than half are Brightnest Home tasks: order totals, shipping, Rewards points, the
return window, warranty end dates and order numbers as `company/` states them, and SKUs,
battery levels and thermostat schedules. The rest are generic string, list and dict work.
They run from one-liners a 135M model can get right (`sum_list`, `is_even`) to date
arithmetic and parsing (`warranty_end`, `setpoint_at`, `parse_duration`). Written by
`scripts/make_code_problems.py`, which holds the problems as literal data; edit it, then
run `python scripts/make_code_problems.py`.
"""


def write(out: Path) -> Path:
    """Write ``test.jsonl`` and ``README.md`` under ``out``, each through a temporary file,
    so a failed run never leaves half a file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "test.jsonl"
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records()]
    for target, text in ((path, "".join(lines)), (out / "README.md", README)):
        partial = target.with_name(target.name + ".partial")
        partial.write_text(text, encoding="utf-8", newline="\n")
        os.replace(partial, target)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    path = write(args.out)
    print(f"wrote {len(PROBLEMS)} problems to {path}")


if __name__ == "__main__":
    main()
