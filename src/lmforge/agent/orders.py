"""Brightnest Home's order database and the four tools a support agent may call on it.

The bundled orders (``assets/datasets/orders/orders.json``, written by
``scripts/make_datasets.py`` with the other bundled data) describe the company's
customers, orders, items and their statuses as of one day, ``as_of``; ``create_database``
loads them into SQLite (a file, so returns and escalations an agent opens persist, or
memory). ``OrderTools`` runs the tools over it:

- ``lookup_order(order_id)``: status, dates, items and total of an order;
- ``track_shipment(order_id)``: carrier, tracking number and delivery dates;
- ``start_return(order_id, reason)``: opens a return when the policy allows it (delivered,
  within 45 days of delivery, no final-sale item), with the label fee and the refund;
- ``escalate_to_human(summary, order_id?)``: opens a ticket for the support team.

A tool's result is a JSON object; a request the policy or the data refuses is a result
with an ``error`` that says why (the model tells the customer), never an exception.
Results are deterministic (ids count up), so the bundled tool dialogs can hold exactly
what the tools return. Standard library only: ``scripts/make_datasets.py`` imports it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

RETURN_DAYS = 45  # policies.md: returns within 45 days of delivery
RETURN_FEE = 6.95  # deducted unless the item is defective, damaged or wrong
FREE_RETURN_REASONS = ("defective", "damaged", "wrong_item")
RETURN_REASONS = (*FREE_RETURN_REASONS, "unwanted")
# The agent's system prompt, in serving and in the bundled tool dialogs alike
SUPPORT_PROMPT = (
    "You are Nessa, the customer-service assistant of Brightnest Home. Use the tools to look "
    "up orders, track shipments, start returns and hand a conversation to a person; never "
    "guess an order's facts. Answer briefly and politely."
)
ORDER_ID = {"type": "string", "pattern": "^BN-[0-9]{7}$",
            "description": "The order number, BN- and 7 digits, e.g. BN-4821937"}  # fmt: skip


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required,
                  "additionalProperties": False}  # fmt: skip
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


# The tools in OpenAI's chat shape (what a request's ``tools`` holds)
TOOLS: list[dict[str, Any]] = [
    _tool("lookup_order", "Look up an order: its status, dates, items and total.",
          {"order_id": ORDER_ID}, ["order_id"]),
    _tool("track_shipment", "Track an order's shipment: carrier, tracking number, dates.",
          {"order_id": ORDER_ID}, ["order_id"]),
    _tool("start_return", "Start a return for a delivered order (45-day window).",
          {"order_id": ORDER_ID,
           "reason": {"enum": list(RETURN_REASONS), "description": "Why it goes back"}},
          ["order_id", "reason"]),
    _tool("escalate_to_human", "Hand the conversation to a person on the support team.",
          {"summary": {"type": "string", "maxLength": 300,
                       "description": "The customer's problem in one or two sentences"},
           "order_id": ORDER_ID}, ["summary"]),
]  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, name TEXT NOT NULL,
    email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL
    REFERENCES customers(id), placed TEXT NOT NULL, status TEXT NOT NULL,
    shipping TEXT NOT NULL, carrier TEXT, tracking TEXT, shipped TEXT, estimated TEXT,
    delivered TEXT, total REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (order_id TEXT NOT NULL REFERENCES orders(id),
    product TEXT NOT NULL, quantity INTEGER NOT NULL, unit_price REAL NOT NULL,
    final_sale INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS returns (id TEXT PRIMARY KEY, order_id TEXT NOT NULL, reason TEXT
    NOT NULL, fee REAL NOT NULL, refund REAL NOT NULL, opened TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS escalations (id TEXT PRIMARY KEY, order_id TEXT, summary TEXT
    NOT NULL, opened TEXT NOT NULL);
"""
_ORDER_FIELDS = ("id", "customer_id", "placed", "status", "shipping", "carrier", "tracking",
                 "shipped", "estimated", "delivered", "total")  # fmt: skip


def create_database(data: dict[str, Any], path: Path | str = ":memory:") -> sqlite3.Connection:
    """A database holding ``data`` (``{"as_of", "customers", "orders"}``, each order with its
    ``items``), at ``path``: created and filled in one transaction, or opened as it is when
    it already holds orders (with the returns and escalations opened since)."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.executescript(_SCHEMA)
    if db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
        with db:
            db.execute("BEGIN")
            db.execute("INSERT INTO meta VALUES ('as_of', ?)", (data["as_of"],))
            db.executemany(
                "INSERT INTO customers VALUES (?, ?, ?)",
                [(c["id"], c["name"], c["email"]) for c in data["customers"]],
            )
            for order in data["orders"]:
                db.execute(
                    f"INSERT INTO orders VALUES ({', '.join('?' * len(_ORDER_FIELDS))})",
                    [order.get(field) for field in _ORDER_FIELDS],
                )
                db.executemany(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            order["id"],
                            i["product"],
                            i["quantity"],
                            i["unit_price"],
                            int(i.get("final_sale", False)),
                        )
                        for i in order["items"]
                    ],
                )
    return db  # fmt: skip


class OrderTools:
    """The four tools over one order database (``create_database``)."""

    names = tuple(tool["function"]["name"] for tool in TOOLS)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.today = date.fromisoformat(self._one("SELECT value FROM meta WHERE key = 'as_of'")[0])

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run tool ``name`` (one of ``names``) with validated ``arguments``."""
        if name not in self.names:
            raise ValueError(f"no tool named {name!r} (tools: {', '.join(self.names)})")
        result: dict[str, Any] = getattr(self, name)(**arguments)
        return result

    def _one(self, sql: str, *args: Any) -> Any:
        return self.db.execute(sql, args).fetchone()

    def _order(self, order_id: str) -> dict[str, Any] | None:
        row = self._one(f"SELECT {', '.join(_ORDER_FIELDS)} FROM orders WHERE id = ?", order_id)
        return None if row is None else dict(zip(_ORDER_FIELDS, row, strict=True))

    def lookup_order(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id)
        if order is None:
            return {"error": f"no order {order_id}; order numbers are BN- and 7 digits, "
                             "in the order confirmation email"}  # fmt: skip
        name = self._one("SELECT name FROM customers WHERE id = ?", order["customer_id"])[0]
        items = self.db.execute(
            "SELECT product, quantity, unit_price FROM items WHERE order_id = ?", (order_id,)
        ).fetchall()
        result = {"order_id": order_id, "customer": name, "status": order["status"],
                  "placed": order["placed"],
                  "items": [{"product": p, "quantity": q, "unit_price": u} for p, q, u in items],
                  "total": order["total"]}  # fmt: skip
        for key in ("shipped", "delivered"):
            if order[key]:
                result[key] = order[key]
        opened = self._one("SELECT id FROM returns WHERE order_id = ?", order_id)
        if opened:
            result["return"] = opened[0]
        return result

    def track_shipment(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id)
        if order is None:
            return self.lookup_order(order_id)  # the same "no order" error
        status = order["status"]
        if status == "cancelled":
            return {"order_id": order_id, "error": "the order was cancelled; nothing shipped"}
        if status == "processing":
            return {"order_id": order_id, "status": status, "placed": order["placed"],
                    "note": "not shipped yet; it ships within 1 business day"}  # fmt: skip
        result = {"order_id": order_id, "status": status, "carrier": order["carrier"],
                  "tracking_number": order["tracking"], "shipped": order["shipped"]}  # fmt: skip
        if order["delivered"]:
            result["delivered"] = order["delivered"]
        else:
            result["estimated_delivery"] = order["estimated"]
        return result

    def start_return(self, order_id: str, reason: str) -> dict[str, Any]:
        order = self._order(order_id)
        if order is None:
            return self.lookup_order(order_id)
        refused = self._return_refusal(order)
        if refused:
            return {"order_id": order_id, "eligible": False, "error": refused}
        fee = 0.0 if reason in FREE_RETURN_REASONS else RETURN_FEE
        refund = round(order["total"] - fee, 2)
        count = self._one("SELECT COUNT(*) FROM returns")[0]
        return_id = f"RMA-{100001 + count}"
        self.db.execute(
            "INSERT INTO returns VALUES (?, ?, ?, ?, ?, ?)",
            (return_id, order_id, reason, fee, refund, self.today.isoformat()),
        )
        self.db.execute("UPDATE orders SET status = 'return_started' WHERE id = ?", (order_id,))
        return {"order_id": order_id, "eligible": True, "return_id": return_id,
                "label": "UPS return label emailed", "label_fee": fee,
                "refund": refund}  # fmt: skip

    def _return_refusal(self, order: dict[str, Any]) -> str | None:
        """Why ``order`` cannot be returned now, or None."""
        if order["status"] in {"return_started", "returned"}:
            return "a return is already open for this order"
        if order["status"] != "delivered":
            return f"the order is {order['status']}; returns start once it is delivered"
        days = (self.today - date.fromisoformat(order["delivered"])).days
        if days > RETURN_DAYS:
            return (f"delivered {order['delivered']}, {days} days ago; returns close "
                    f"{RETURN_DAYS} days after delivery")  # fmt: skip
        final = self._one("SELECT product FROM items WHERE order_id = ? AND final_sale = 1",
                          order["id"])  # fmt: skip
        if final:
            return f"{final[0]} was a Final Sale item, which cannot be returned"
        return None

    def escalate_to_human(self, summary: str, order_id: str | None = None) -> dict[str, Any]:
        count = self._one("SELECT COUNT(*) FROM escalations")[0]
        ticket = f"ESC-{50001 + count}"
        self.db.execute(
            "INSERT INTO escalations VALUES (?, ?, ?, ?)",
            (ticket, order_id, summary, self.today.isoformat()),
        )
        return {"ticket": ticket, "queue": "support team",
                "response_within": "1 business day"}  # fmt: skip


def result_text(result: dict[str, Any]) -> str:
    """A tool result as the ``tool`` message's content (compact JSON)."""
    return json.dumps(result, ensure_ascii=False)
