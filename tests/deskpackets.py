"""Handoff packets for the agent-desk tests, built from a shop's own data (any shop, no fixed ids).

``complainer(name, shop)`` picks the customer with the most complaint entries in their history
(the repeat complainer when one has two or more); ``packet(shop, customer, call_id, skill)``
builds the record the dispatcher stores, as the integrator builds it from a real call: the
customer, their orders, three summary lines, a transcript and the shop's policy clauses.
``complaint_agents(shop)`` are the agents a complaint may be offered to first, best first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shops import snapshot_data

from core.shop import Agent, Customer, ShopPort
from routing.agents import COMPLAINT_MIN_LEVEL
from routing.store import QueuedCall
from voice.bridge import Bridge


def complainer(name: str, shop: ShopPort) -> tuple[Customer, int]:
    """The customer with the most complaints in their history, and how many (0: nobody complained)."""
    counts = []
    for row in snapshot_data(name)["customers"]:
        customer = shop.customer(row["id"])
        assert customer is not None
        counts.append((sum(1 for h in customer.history if h.complaint), customer.id, customer))
    complaints, _, customer = max(counts, key=lambda c: (c[0], c[1]))
    return customer, complaints


def complaint_agents(shop: ShopPort) -> list[Agent]:
    """Agents who take complaints from the first offer on, highest complaint level first."""
    able = [a for a in shop.agents() if a.skills.get("complaint", 0) >= COMPLAINT_MIN_LEVEL]
    return sorted(able, key=lambda a: (-a.skills["complaint"], a.id))


def packet(shop: ShopPort, customer: Customer | None, call_id: str, skill: str = "complaint") -> dict[str, Any]:
    orders = list(shop.orders_for_customer(customer.id)) if customer else []
    complaints = [h for h in customer.history if h.complaint] if customer else []
    newest = orders[0] if orders else None
    first = newest.items[0].product_name if newest and newest.items else "商品"
    summary = [
        f"{customer.name if customer else '来电客户'}来电，情绪激动，要求人工处理",
        f"涉及订单 {newest.id}（{first}）" if newest else "未提到订单",
        f"此前投诉 {len(complaints)} 次，最近一次：{complaints[-1].summary}" if complaints else "此前没有投诉记录",
    ]
    kb = [{"id": h.policy_id, "title": h.title, "text": h.answer} for h in shop.search_policies("投诉 退款 赔偿", 3)]
    return {
        "call_id": call_id,
        "caller": customer.phone if customer else None,
        "channel": "api",
        "skill": skill,
        "priority": 1,
        "reason": "客户要求转人工" if not complaints else f"重复投诉（第 {len(complaints) + 1} 次）",
        "customer": None
        if customer is None
        else {
            "id": customer.id,
            "name": customer.name,
            "phone": customer.phone,
            "vip_level": customer.vip_level,
            "dialect": customer.dialect,
            "history": [
                {"at": h.at.isoformat(), "channel": h.channel, "summary": h.summary, "complaint": h.complaint}
                for h in customer.history
            ],
        },
        "orders": [
            {
                "id": o.id,
                "status": o.status.value,
                "placed_at": o.created_at.isoformat(),
                "total_yuan": o.paid_amount_fen / 100,
                "items": [{"name": i.product_name, "color": i.color, "size": i.size, "qty": i.qty} for i in o.items],
                "tracking": o.shipment.tracking_no if o.shipment else None,
            }
            for o in orders
        ],
        "intents": [{"name": "complaint", "confidence": 0.92, "slots": {}}],
        "emotion_trend": ["neutral", "angry"],
        "summary": summary,
        "transcript": [
            {"speaker": "bot", "text": "您好，请问有什么可以帮您？", "at": "00:00"},
            {"speaker": "caller", "text": "我又要投诉，上次的问题还没解决，给我转人工！", "at": "00:04"},
        ],
        "kb": kb,
        "audio_url": None,
    }


def entry(call_id: str, server: str, now: float, customer: Customer | None, skill: str = "complaint") -> QueuedCall:
    vip = customer is not None and customer.vip_level not in ("", "normal")
    return QueuedCall(
        call_id, skill, 1, now, server, customer.dialect if customer else None, vip, complaint=skill == "complaint"
    )


async def take_frames(bridge: Bridge, count: int) -> list[bytes]:
    """The next ``count`` frames the bridge sends to the caller (at most 5 s)."""

    async def take() -> list[bytes]:
        frames: list[bytes] = []
        async for frame in bridge.agent_audio():
            frames.append(frame)
            if len(frames) == count:
                break
        return frames

    return await asyncio.wait_for(take(), 5)
