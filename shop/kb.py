"""The knowledge base: BM25 over jieba tokens of the policy articles, answered sentence by sentence.

Articles are ranked with BM25 (k1 1.5, b 0.75) over title (counted twice), tags and text. Within
each top article the sentences are scored by the query terms they hold (BM25 idf of the article
corpus); the answer is the best sentence, plus the next best when it covers a query term the
first does not. Queries are normalised first: a shop dictionary keeps 满减, 运费险, 七天无理由 ...
whole, and colloquial words map to the articles' words (退钱 -> 退款, 咋 -> 怎么, 专票 -> 专用发票).
jieba runs on its own ``Tokenizer`` so the shop dictionary never leaks into other packages.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import jieba

from core.shop import KbHit, Policy

jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print

K1, B = 1.5, 0.75
MIN_RELATIVE = 0.2  # a hit scoring under this share of the best one is noise, not an alternative

SHOP_WORDS = (
    "满减", "七天无理由", "无理由退货", "运费险", "补差价", "补差", "补发",
    "保价", "价格保护", "专用发票", "增值税专用发票", "普通发票", "电子发票", "优惠券", "新人券", "凑单",
    "换货", "退货", "退款", "到账", "改地址", "拦截", "转寄", "丢件", "破损", "签收", "揽收",
    "物流异常", "金卡", "铂金", "会员", "发货", "预售", "补货", "原路退回", "时效", "吊牌", "尺码",
)  # fmt: skip

# Caller words -> the articles' words (a value may hold several words, space-separated).
SYNONYMS = {
    "退钱": "退款", "钱退": "退款", "返钱": "退款", "退回来": "退款", "咋": "怎么", "咋样": "怎么样",
    "多久": "时效", "多长时间": "时效", "几天": "时效", "啥时候": "时效", "什么时候": "时效",
    "专票": "专用发票 发票", "普票": "普通发票 发票", "开票": "发票", "票": "发票", "发票": "发票",
    "退": "退货", "不想要": "七天无理由 退货", "不要了": "退货",
    "换": "换货", "换个": "换货", "换码": "换货 尺码", "码": "尺码", "码子": "尺码",
    "邮费": "运费", "快递费": "运费", "谁出": "承担", "谁付": "承担", "谁掏": "承担",
    "算": "计算", "怎么算": "计算", "快递": "快递 物流", "包裹": "物流 快递", "不动": "未更新 物流异常",
    "没动": "未更新 物流异常", "没更新": "未更新 物流异常", "丢了": "丢件", "坏了": "破损", "烂了": "破损",
    "会员": "会员", "vip": "会员", "VIP": "会员", "降价": "降价 保价", "便宜": "降价", "差价": "补差价",
    "改": "修改", "地址": "地址 收货地址", "发出": "发货", "寄出": "发货", "到": "到账", "券": "优惠券",
}  # fmt: skip

STOPWORDS = frozenset(
    "的 了 吗 呢 啊 吧 呀 么 嘛 我 你 您 他 她 是 在 有 和 就 都 也 还 要 想 能 可以 可 会 个 一个 这 那 "
    "怎么 怎么样 怎样 什么 如何 为什么 请问 一下 下 给 让 把 被 对 跟 吗 呗 哦 嗯 啦 就是 谁 多少 哪 哪里 "
    "， 。 ？ ！ 、 ； ： , . ? ! ; :".split()
)

_SENTENCE = re.compile(r"[^。！？!?]+[。！？!?]?")
_CARRIER = re.compile(r"([\u4e00-\u9fff]{2})(?:快递|速运|速递)")  # the shop's own carriers, named in its policies


@dataclass(frozen=True, slots=True)
class _Doc:
    policy: Policy
    terms: Counter[str]
    length: int
    sentences: tuple[str, ...]


class KnowledgeBase:
    """BM25 over a shop's policy articles; ``search`` returns the sentences that answer."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self._tok = _tokenizer()
        self._carriers = _add_carriers(self._tok, " ".join(p.text for p in policies))
        self._docs = [self._doc(p) for p in policies]
        n = len(self._docs)
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(set(doc.terms))
        self._idf = {t: math.log((n - f + 0.5) / (f + 0.5) + 1) for t, f in df.items()}
        self._avg_len = sum(d.length for d in self._docs) / n if n else 1.0

    def _doc(self, policy: Policy) -> _Doc:
        tokens = self.tokens(policy.title) * 2 + [t for tag in policy.tags for t in self.tokens(tag)]
        tokens += self.tokens(policy.text)
        sentences = tuple(s.strip() for s in _SENTENCE.findall(policy.text) if s.strip())
        return _Doc(policy, Counter(tokens), len(tokens), sentences)

    def tokens(self, text: str) -> list[str]:
        """Search tokens of ``text`` (sub-words too), stopwords dropped."""
        return [t for t in self._tok.lcut_for_search(text) if t.strip() and t not in STOPWORDS]

    def query_terms(self, query: str) -> list[str]:
        """The query's words mapped to the articles' vocabulary; single characters only via synonyms."""
        terms: list[str] = []
        for tok in self._tok.lcut_for_search(query.strip()):
            if tok in SYNONYMS:
                terms.extend(SYNONYMS[tok].split())
            elif tok in self._carriers:  # a carrier's short name (顺丰 for 顺丰速运) asks about delivery
                terms.extend((tok, "快递"))
            elif len(tok) > 1 and tok not in STOPWORDS:
                terms.append(tok)
        return list(dict.fromkeys(t for t in terms if t not in STOPWORDS))

    def search(self, query: str, k: int = 3) -> list[KbHit]:
        """Up to ``k`` articles with a positive score, best first, each with its answering sentences."""
        terms = [t for t in self.query_terms(query) if t in self._idf]
        if not terms or k <= 0:
            return []
        scored = sorted(((self._score(d, terms), i) for i, d in enumerate(self._docs)), key=lambda x: (-x[0], x[1]))
        hits = []
        for score, i in scored[:k]:
            if score <= 0 or score < MIN_RELATIVE * scored[0][0]:
                break
            doc = self._docs[i]
            hits.append(KbHit(doc.policy.id, doc.policy.title, self._answer(doc, terms), round(score, 4)))
        return hits

    def _score(self, doc: _Doc, terms: list[str]) -> float:
        norm = K1 * (1 - B + B * doc.length / self._avg_len)
        total = 0.0
        for t in terms:
            tf = doc.terms.get(t, 0)
            if tf:
                total += self._idf[t] * tf * (K1 + 1) / (tf + norm)
        return total

    def _answer(self, doc: _Doc, terms: list[str]) -> str:
        """The best sentence, and a second one when it covers a query term the first lacks."""
        if not doc.sentences:
            return doc.policy.text
        covered = [{t for t in terms if t in set(self.tokens(s))} for s in doc.sentences]
        weight = [sum(self._idf[t] for t in c) for c in covered]
        best = max(range(len(doc.sentences)), key=lambda i: (weight[i], -i))
        if weight[best] == 0:
            return doc.sentences[0]
        extra = [i for i in range(len(doc.sentences)) if i != best and covered[i] - covered[best]]
        chosen = [best]
        if extra:
            chosen.append(max(extra, key=lambda i: (sum(self._idf[t] for t in covered[i] - covered[best]), -i)))
        return "".join(doc.sentences[i] for i in sorted(chosen))


_LOCK = threading.Lock()
_TOKENIZER: jieba.Tokenizer | None = None


def _tokenizer() -> jieba.Tokenizer:
    """One shared jieba tokenizer with the shop dictionary (loading the dictionary takes ~1 s)."""
    global _TOKENIZER
    with _LOCK:
        if _TOKENIZER is None:
            tok = jieba.Tokenizer()
            tok.initialize()
            for word in SHOP_WORDS:
                tok.add_word(word, freq=20000)
            for word in SYNONYMS:
                if len(word) > 1:
                    tok.add_word(word, freq=2000)
            _TOKENIZER = tok
        return _TOKENIZER


def _add_carriers(tok: jieba.Tokenizer, text: str) -> frozenset[str]:
    """Keep the carriers a shop's policies name whole (中文名 + 快递/速运/速递); their short names."""
    found = list(_CARRIER.finditer(text))
    with _LOCK:
        for match in found:
            tok.add_word(match.group(), freq=20000)
            tok.add_word(match.group(1), freq=20000)
    return frozenset(match.group(1) for match in found)
