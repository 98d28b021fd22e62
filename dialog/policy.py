"""When a human takes over, which desk, how urgent, and what the agent is handed.

Transfer rules, first match wins:

1. ``complaint`` intent → complaint desk.
2. Anything outside policy: compensation demands (赔偿, 精神损失…) or threats to go to a regulator or the
   press (12315, 消协, 媒体…) → complaint desk.
3. ``human_agent`` intent (转人工) → the desk of the topic.
4. An angry caller, or an escalating emotion trend (``dialog.emotion.escalating``) → the desk of the
   topic; the complaint desk when the caller has complained before.
5. Two failed understandings in a row → the desk of the topic so far (general when none).
6. An accepted offer (a stalled parcel → logistics) → the offered desk.
7. Two wrong answers to the order verification question (``dialog.access``) → the desk of the
   topic, with nothing of the order said.

The desk of the topic is the desk of the first topic raised in this turn, else in the call.

VIP desk: gold and platinum customers go to the vip desk when the transfer is not a complaint and
the issue is complex — the call raised two or more topics, the caller is upset (rules 2, 4), or the
bot failed to understand them (rule 5). A single-topic request goes to that topic's specialist,
who knows it best; being VIP raises the priority instead.

Priority 1 (most urgent) .. 5: complaint, outside policy, angry 2; escalating, explicit request,
accepted offer 3; failed understanding or verification 4. One step more urgent for a caller with past complaints
in their history, and one more for gold/platinum customers.

Outside agent hours (``ShopInfo.agent_hours`` against the shop's local time) the same request is
booked as a callback instead of a transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from core.shop import Contact, Customer
from core.types import EmotionLabel, Handoff, Skill, TransferRequest, Understanding
from dialog.emotion import escalating, trend
from dialog.replies import DESKS, join_list, render
from dialog.state import CallState, Context

VIP_LEVELS = ("gold", "platinum")
VIP_WORDS = {"platinum": "铂金会员", "gold": "金卡会员", "normal": "普通会员"}
OUTSIDE_POLICY = (
    "赔偿",
    "赔钱",
    "补偿",
    "精神损失",
    "损失费",
    "12315",
    "消协",
    "消费者协会",
    "工商",
    "媒体",
    "曝光",
    "起诉",
    "律师",
    "法院",
    "报警",
)

COMPLAINT, OUTSIDE, EXPLICIT, ANGRY, ESCALATING, FAILED, OFFER, VERIFY_FAILED = (
    "complaint",
    "outside_policy",
    "explicit",
    "angry",
    "escalating",
    "failed",
    "offer",
    "verify_failed",
)
_BASE_PRIORITY = {COMPLAINT: 2, OUTSIDE: 2, ANGRY: 2, ESCALATING: 3, EXPLICIT: 3, OFFER: 3, FAILED: 4, VERIFY_FAILED: 4}
_REASONS = {
    COMPLAINT: "客户投诉",
    OUTSIDE: "超出政策范围的诉求（赔偿/投诉到监管）",
    EXPLICIT: "客户要求转人工",
    ANGRY: "客户情绪激动",
    ESCALATING: "客户情绪持续升级",
    FAILED: "连续两次没有听懂客户",
    OFFER: "客户同意转专员跟进",
    VERIFY_FAILED: "订单身份核验未通过（未透露订单信息）",
}
INTENT_WORDS = {
    "logistics.track": "查物流",
    "logistics.ship_time": "问发货时间",
    "logistics.carrier": "问快递公司",
    "logistics.expedite": "要加急",
    "inventory.stock": "问库存",
    "product.info": "问商品",
    "promotion.inquiry": "问活动",
    "promotion.not_applied": "问优惠为什么没减",
    "promotion.bundle": "问套装优惠",
    "order.modify": "改订单",
    "order.cancel": "取消订单",
    "order.status": "查订单",
    "aftersale.return": "退货",
    "aftersale.refund_status": "查退款",
    "aftersale.exchange": "换货",
    "aftersale.damage": "商品破损",
    "invoice": "开发票",
    "complaint": "投诉",
    "human_agent": "要求转人工",
    "service.hours": "问客服时间",
    "logistics.appointment": "约送货时间",
    "logistics.refuse": "拒收",
    "logistics.courier": "联系配送员",
    "shipping.fee": "问运费",
    "aftersale.repair": "报修",
    "service.install": "约安装",
}
TREND_WORDS = {"rising": "上升", "steady": "平稳", "falling": "缓和"}
LABEL_WORDS = {EmotionLabel.NEUTRAL: "平静", EmotionLabel.ANXIOUS: "着急", EmotionLabel.ANGRY: "生气"}


@dataclass(frozen=True, slots=True)
class Decision:
    """A transfer the dialog decided on: why (one of the rule codes), to which desk, how urgent."""

    code: str
    skill: Skill
    priority: int
    reason: str


def past_complaints(customer: Customer | None) -> int:
    return sum(1 for c in customer.history if c.complaint) if customer else 0


def outside_policy(u: Understanding) -> bool:
    text = f"{u.text} {u.normalized}"
    return any(word in text for word in OUTSIDE_POLICY)


TRIGGER_CONFIDENCE = 0.3  # a complaint or a request for a human read with less is a guess, not a trigger


def rule(state: CallState, u: Understanding) -> str | None:
    """The transfer rule this turn triggers (rules 1-4), or None. ``state`` includes this turn."""
    names = {i.name for i in u.intents if i.confidence >= TRIGGER_CONFIDENCE}
    if "complaint" in names:
        return COMPLAINT
    if outside_policy(u):
        return OUTSIDE
    if "human_agent" in names:
        return EXPLICIT
    if u.emotion.label is EmotionLabel.ANGRY:
        return ANGRY
    if escalating(state.emotions):
        return ESCALATING
    return None


def decide(code: str, state: CallState, turn_topics: tuple[Skill, ...], offered: Skill | None = None) -> Decision:
    """The desk and priority for a transfer triggered by rule ``code``."""
    customer = state.customer
    complained = past_complaints(customer) > 0
    vip = customer is not None and customer.vip_level in VIP_LEVELS
    topics = tuple(t for t in (*turn_topics, *state.topics) if t is not Skill.COMPLAINT)
    topic = offered or (topics[0] if topics else Skill.GENERAL)
    if code in (COMPLAINT, OUTSIDE) or (code in (ANGRY, ESCALATING) and complained):
        skill = Skill.COMPLAINT
    elif vip and (code in (ANGRY, ESCALATING, FAILED) or len(set(topics)) >= 2):
        skill = Skill.VIP
    else:
        skill = topic
    priority = _BASE_PRIORITY[code] - complained - vip
    return Decision(code, skill, max(1, min(5, priority)), _REASONS[code])


def in_agent_hours(ctx: Context) -> bool:
    start, end = (_clock(t) for t in ctx.info.agent_hours)
    now = ctx.local_now.time()
    return start <= now < end if start < end else (now >= start or now < end)


def _clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(23, 59, 59) if hours == "24" else time(int(hours), int(minutes or 0))


def callback_when(ctx: Context, *, busy: bool = False) -> str:
    """When a callback can come: 「稍后」 when agents are on duty but busy, else when they start."""
    start, _ = ctx.info.agent_hours
    if busy:
        return render("callback.soon")
    today = ctx.local_now.time() < _clock(start)
    return render("callback.today" if today else "callback.tomorrow", start=start)


def callback_text(ctx: Context, skill: Skill, *, busy: bool = False) -> str:
    """「已为您登记回电，…会打给您。」 — or, with no number to call (``callback_number``), when to call again."""
    start, end = ctx.info.agent_hours
    return render("callback", start=start, end=end, when=callback_when(ctx, busy=busy), desk=DESKS[skill.value])


def call_again_text(ctx: Context, *, busy: bool = False) -> str:
    """「请您稍后再打过来。」: a caller we have no number for cannot be promised a callback."""
    return render("callback.call_again", when=callback_when(ctx, busy=busy))


def callback_number(state: CallState) -> str | None:
    """The number a callback would ring: the caller ID, else the identified customer's phone."""
    if state.caller:
        return state.caller
    return state.customer.phone if state.customer is not None and state.customer.phone else None


def request(decision: Decision, state: CallState, ctx: Context) -> TransferRequest:
    return TransferRequest(decision.skill, decision.priority, decision.reason, handoff(decision, state, ctx))


def handoff(decision: Decision, state: CallState, ctx: Context) -> Handoff:
    customer = state.customer
    return Handoff(
        customer_id=customer.id if customer else None,
        customer_name=customer.name if customer else None,
        orders=state.orders,
        intents=state.intents,
        emotion_trend=tuple(e.label for e in state.emotions),
        summary=summary(decision, state),
        transcript=state.transcript,
        kb_suggestions=_kb_suggestions(state, ctx),
    )


def summary(decision: Decision, state: CallState) -> tuple[str, str, str]:
    """Three short lines for the agent: who, what (with the computed facts), how they feel and why."""
    c = state.customer
    if c is None:
        who = "来电客户：未识别（号码不在客户库）"
    else:
        level = VIP_WORDS.get(c.vip_level, c.vip_level)
        who = f"来电客户：{c.name}，{level}，{c.dialect}，历史投诉{past_complaints(c)}次"
    asked = []
    for intent in state.intents:
        word = INTENT_WORDS.get(intent.name)
        if word and word not in asked:
            asked.append(word)
    last = next((t.text for t in reversed(state.turns) if t.text.strip()), "")
    facts = "；".join(state.notes) or ("订单" + "、".join(state.orders) if state.orders else f"客户原话：「{last}」")
    what = f"诉求：{'、'.join(asked) or '未能识别'}；{facts}"
    label = state.emotions[-1].label if state.emotions else EmotionLabel.NEUTRAL
    mood = f"情绪：{LABEL_WORDS[label]}（{TREND_WORDS[trend(state.emotions).value]}）；转接原因：{decision.reason}"
    return (who, what, mood)


def _kb_suggestions(state: CallState, ctx: Context) -> tuple[str, ...]:
    ids = list(state.kb_ids)
    last = next((t.text for t in reversed(state.turns) if t.text.strip()), "")
    if last:
        ids += [h.policy_id for h in ctx.shop.search_policies(last, k=2)]
    return tuple(dict.fromkeys(ids))[:4]


def contact(state: CallState, ctx: Context) -> Contact | None:
    """What this call was about, for the customer's history (None for an unknown caller)."""
    if state.customer is None:
        return None
    asked = list(dict.fromkeys(INTENT_WORDS[i.name] for i in state.intents if i.name in INTENT_WORDS))
    parts = ["来电" + join_list(asked) if asked else "来电未说明诉求"]
    parts += list(state.notes)
    if state.transfer is not None:
        parts.append(f"已转{DESKS[state.transfer.skill.value]}")
    elif state.callback is not None:
        parts.append(f"已登记{DESKS[state.callback.skill.value]}回电")
    complaint = any(i.name == "complaint" for i in state.intents) or (
        state.transfer is not None and state.transfer.skill is Skill.COMPLAINT
    )
    return Contact(ctx.now, "phone", "，".join(parts), complaint)
