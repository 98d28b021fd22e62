"""Text preparation for speech: replies cut into sentences, and every sentence made speakable.

``split_sentences`` cuts a reply where a TTS engine should start a new utterance. ``speakable``
rewrites what a Chinese voice cannot read (ASCII digits, Latin letters, symbols between numbers)
into Chinese characters, the way a Chinese phone agent says them. Its output has no ASCII digit,
and no Latin letter outside a *kept word*: a run of four or more ASCII letters with at least one
lower-case letter that is not a clothing size (``iPhone``, ``wifi``).
Everything else is shop-neutral: no shop's words or number formats are known here.

The rules, in the order they are applied (each works on what the previous ones left):

======================  =====================================  ==================================
rule                    example                                spoken
======================  =====================================  ==================================
full width (NFKC)       ``３２元`` ``ＸＬ`` ``㎏``              ``32元`` ``XL`` ``kg``;
                                                               ，！？：；（）～… are kept
thousands separator     ``1,299元``                            ``一千二百九十九块``
currency sign           ``¥32.80`` ``￥32.8``                   ``三十二块八``
degrees                 ``25℃`` ``25°``                        ``二十五度``
dates                   ``2024-05-18`` ``2024/5/18``           ``二零二四年五月十八日``
times (and ranges)      ``18:30`` ``9:00-18:00`` ``09:05``     ``十八点半`` ``九点到十八点``
                                                               ``九点零五分``
dashed digit groups     ``400-820-8820`` ``0571-8888``         ``四零零 八二零 八八二零``,
                                                               digit by digit, 幺 for 1
codes                   ``SF1234567890`` ``A12B``              ``艾斯艾弗幺二三…`` ``诶幺二比``
                                                               (letter first, upper case; not
                                                               when a measure word follows:
                                                               ``XL2件`` is 艾克斯艾欧两件)
percent                 ``50%`` ``5%-10%`` ``100%``            ``百分之五十`` ``百分之五到百分之十``
                                                               ``百分之百``
signs between numbers   ``3-5天`` ``3~5天`` ``2x3`` ``1+1``    ``三到五天`` ``二乘三`` ``一加一``
                        ``9点-18点``                           ``九点到十八点``
per                     ``32元/件`` ``5kg/袋`` ``60km/h``      ``三十二块每件`` ``五公斤每袋``
                                                               ``六十公里每小时``
money (元 or 块)        ``32.8元`` ``32.85元`` ``0.5元``       ``三十二块八`` ``三十二块八毛五``
                        ``0.05元`` ``2元`` ``32.05元``         ``五毛`` ``五分`` ``两块``
                                                               ``三十二块零五分``
discounts               ``8折`` ``8.5折``                      ``八折`` ``八五折``
units after a number    ``500ml`` ``1.5L`` ``2kg`` ``3km``     ``五百毫升`` ``一点五升``
                                                               ``两公斤`` ``三公里`` (table below)
numbers                 ``2024年`` ``12`` ``3.5`` ``第2``      ``二零二四年`` ``十二`` ``三点五``
                                                               ``第二``
2 before a measure      ``2件`` ``2点`` ``2到3天`` ``2000``    ``两件`` ``两点`` ``两到三天``
                                                               ``两千`` (``200`` stays ``二百``)
leading zero in dates   ``05月`` ``09点``                      ``五月`` ``九点``
digit strings           ``20240518001`` ``12315`` ``0571``     ``二零二四零五幺八零零幺``
                                                               ``幺二三幺五`` ``零五七幺``
                                                               (5+ digits with no unit after,
                                                               or a leading zero; 幺 for 1)
letters                 ``L码`` ``XL`` ``2XL`` ``VIP`` ``xl``  ``艾欧码`` ``艾克斯艾欧``
                                                               ``二艾克斯艾欧`` ``维艾皮``;
                                                               kept words stay as they are
======================  =====================================  ==================================

Units after a number (``_UNITS``; case matters where a letter means two things): ``ml mL ML Ml``
毫升, ``L l`` 升, ``mg`` 毫克, ``g`` 克 (``G`` is left to the letters: 128G is storage),
``kg Kg KG`` 公斤, ``mm MM`` 毫米, ``cm CM`` 厘米, ``m`` 米 (``M`` is a size), ``km Km KM`` 公里,
``W`` 瓦, ``V`` 伏, ``mAh`` 毫安时. A unit followed by 码 or 号 is a size, not a unit (``3L码``).

Letter names (``_LETTER_NAMES``), the approximations Chinese speakers use on the phone:
A 诶, B 比, C 西, D 迪, E 伊, F 艾弗, G 吉, H 艾尺, I 艾, J 杰, K 开, L 艾欧, M 艾姆, N 艾恩,
O 欧, P 皮, Q 丘, R 阿尔, S 艾斯, T 提, U 优, V 维, W 达布留, X 艾克斯, Y 歪, Z 贼.
A run of up to three letters in any case (``App``, ``app`` and ``APP`` are all 诶皮皮, as Chinese
speakers say it; ``kg`` on its own is spelled too), an all-capital run (abbreviations: ``VIP``,
``OK``) and a size run (``x*`` then ``s``, ``m`` or ``l`` in any case: ``XXL``, ``xs``) are
spelled with these names; a longer run with a lower-case letter (``iPhone``, ``wifi``) is kept as
a word: a voice with an English lexicon reads it, and the hotline's replies rarely contain one.

Not handled (left as they are, digits still read as numbers): fractions (``1/2`` is 一/二),
negative numbers (``-5℃`` is -五度), scores (``3:15`` reads as a time), and
lower-case codes (``sf123456`` keeps ``sf`` and reads the digits).

``speakable`` is idempotent (its output has nothing left for it to rewrite) and pure.
"""

from __future__ import annotations

import re
import unicodedata

# --- sentences -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;…\n])")
_CLAUSE_END = re.compile(r"(?<=[，、：]|,(?!\d))")
_MAX_SENTENCE_CHARS = 30  # longer sentences are cut at commas so the first audio comes sooner


def split_sentences(text: str) -> list[str]:
    """Cut a reply at 。！？；!?; and, in sentences over 30 characters, at commas.

    >>> split_sentences("好的！谢谢;再见")
    ['好的！', '谢谢;', '再见']
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        pieces.extend(_cut_long(sentence.strip()))
    return [p for p in pieces if has_speech(p)]


def _cut_long(sentence: str) -> list[str]:
    if len(sentence) <= _MAX_SENTENCE_CHARS:
        return [sentence]
    out: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if out and len(out[-1]) + len(clause) <= _MAX_SENTENCE_CHARS // 2:
            out[-1] += clause  # keep very short clauses together
        else:
            out.append(clause)
    return [c.strip() for c in out]


def has_speech(text: str) -> bool:
    """Whether ``text`` has anything to say (a letter, digit or Han character, not only punctuation).

    >>> has_speech("。。。"), has_speech("好。")
    (False, True)
    """
    return any(ch.isalnum() for ch in text)


# --- tables ----------------------------------------------------------------------------------

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"  # digit by digit, as order and phone numbers are read
_LETTER_NAMES = {
    "A": "诶",
    "B": "比",
    "C": "西",
    "D": "迪",
    "E": "伊",
    "F": "艾弗",
    "G": "吉",
    "H": "艾尺",
    "I": "艾",
    "J": "杰",
    "K": "开",
    "L": "艾欧",
    "M": "艾姆",
    "N": "艾恩",
    "O": "欧",
    "P": "皮",
    "Q": "丘",
    "R": "阿尔",
    "S": "艾斯",
    "T": "提",
    "U": "优",
    "V": "维",
    "W": "达布留",
    "X": "艾克斯",
    "Y": "歪",
    "Z": "贼",
}
_UNITS = {
    "mAh": "毫安时",
    "ml": "毫升",
    "mL": "毫升",
    "ML": "毫升",
    "Ml": "毫升",
    "mg": "毫克",
    "kg": "公斤",
    "Kg": "公斤",
    "KG": "公斤",
    "km": "公里",
    "Km": "公里",
    "KM": "公里",
    "cm": "厘米",
    "CM": "厘米",
    "mm": "毫米",
    "MM": "毫米",
    "m": "米",
    "L": "升",
    "l": "升",
    "g": "克",
    "W": "瓦",
    "V": "伏",
}
# 2 is 两 before these (两件, 两点, 两公斤); 二 elsewhere (二号, 二月, 第二, 二楼)
_MEASURE_WORDS = (
    "件个天次位双条张份盒箱瓶袋周斤本台只套种款包支把块毛分秒小点年岁人家单折倍辆颗片杯"  # things, time, money
    "克米升公千万亿毫厘瓦伏"  # units and magnitudes (两公斤, 两千, 两毫升)
)
# five or more digits followed by one of these are a quantity, not a digit string
_UNITS_AFTER = _MEASURE_WORDS + "元角月日号度%"
_DATE_TIME_UNITS = "月日号时点分秒"  # 05月 is 五月, not 零五月
_RANGE_UNITS = "点号日天月年元块件个"  # 9点-18点 and 3天-5天 are ranges too
_KEEP_PUNCTUATION = frozenset("，！？：；（）～…＂＇［］｛｝")  # NFKC would make these ASCII
_HAN = "\u4e00-\u9fff"

# --- patterns (re.ASCII: \d is 0-9 only, \s is ASCII white space) ----------------------------

_A = re.ASCII
_NUM = r"\d+(?:\.\d+)?"
_UNIT_NAMES = "|".join(sorted(_UNITS, key=len, reverse=True))
_RANGE = r"[-~～〜–—]"
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))", _A)
_CURRENCY = re.compile(rf"¥\s*({_NUM})(?![\d元块]|\.\d)", _A)
_DEGREES = re.compile(r"(?<=\d)\s*(?:°C?|℃)", _A)
_DATE = re.compile(r"(?<![\d.])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?!\d|\.\d)", _A)
_CLOCK_PART = r"([01]?\d|2[0-3]|24(?=[:：]00))[:：]([0-5]\d)(?:[:：]([0-5]\d))?"
_CLOCK = re.compile(rf"(?<![\d.:：]){_CLOCK_PART}(?:\s*(?:{_RANGE}|至|到)\s*{_CLOCK_PART})?(?!\d|[:：]\d)", _A)
_DASHED_DIGITS = re.compile(r"(?<![\d.-])(?:\d+(?:-\d+){2,}|0\d{2,3}-\d+)(?![\d-]|\.\d)", _A)
_CODE = re.compile(rf"(?<![A-Za-z\d])[A-Z][A-Z\d]*\d[A-Z\d]*(?![A-Za-z\d]|\.\d|[{_MEASURE_WORDS}])", _A)
_PERCENT = re.compile(rf"(?<!\d)(?<!\d\.)({_NUM})\s*(?:%\s*)?(?:(?:{_RANGE}|到|至)\s*({_NUM})\s*)?%", _A)
_RANGE_SIGN = re.compile(rf"(?:(?<=\d)|(?<=\d[{_RANGE_UNITS}]))\s*{_RANGE}\s*(?=\d)", _A)
_TIMES_SIGN = re.compile(r"(?<=\d)\s*[×xX*]\s*(?=\d)", _A)
_PLUS_SIGN = re.compile(r"(?<=\d)\s*\+\s*(?=\d)", _A)
_PER = re.compile(rf"(?<=\d)([元块]|{_UNIT_NAMES})/(?:({_UNIT_NAMES}|h)(?![A-Za-z])|(?=[{_HAN}]))", _A)
_MONEY = re.compile(rf"(?<!\d)(?<!\d\.)({_NUM})(?:\s*到\s*({_NUM}))?\s*([元块])", _A)
_DISCOUNT = re.compile(r"(?<![\d.])([1-9])\.(\d)\s*折", _A)
_UNIT = re.compile(rf"(?<![A-Za-z\d.])({_NUM})\s?({_UNIT_NAMES})(?![A-Za-z]|码|号)", _A)
_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)(\d+)(?:\.(\d+))?(?!\d|\.\d)", _A)
_NEXT_COUNT = re.compile(rf"到\d+(?:\.\d+)?([{_MEASURE_WORDS}])", _A)
_ANY_DIGITS = re.compile(r"\d+", _A)
_LETTERS = re.compile(r"[A-Za-z]+", _A)
_SIZE = re.compile(r"[Xx]*[SMLsml]", _A)
_SPELLED_UP_TO = 3  # letters: a shorter run is spelled whatever its case (App -> 诶皮皮)
_ZEROS = re.compile("零+")


# --- speakable -------------------------------------------------------------------------------


def speakable(text: str) -> str:
    """``text`` with numbers, money, dates, times, codes and letters written as a Chinese agent says them.

    The rules and their tables are in the module docstring. Examples:

    >>> speakable("实付32.8元，满300减50，8.5折")
    '实付三十二块八，满三百减五十，八五折'
    >>> speakable("订单20240518001，2024-05-18 9:00-18:30 送达")
    '订单二零二四零五幺八零零幺，二零二四年五月十八日 九点到十八点半 送达'
    >>> speakable("500ml装2件，XL码，顺丰SF1234567890")
    '五百毫升装两件，艾克斯艾欧码，顺丰艾斯艾弗幺二三四五六七八九零'
    """
    text = _fold_width(text)
    text = _THOUSANDS.sub("", text)
    text = _CURRENCY.sub(r"\1元", text).replace("¥", "")
    text = _DEGREES.sub("度", text)
    text = _DATE.sub(_date, text)
    text = _CLOCK.sub(_clock_range, text)
    text = _DASHED_DIGITS.sub(lambda m: " ".join(_read_digits(g) for g in m.group(0).split("-")), text)
    text = _CODE.sub(_code, text)
    text = _PERCENT.sub(_percent, text)
    text = _RANGE_SIGN.sub("到", text)
    text = _TIMES_SIGN.sub("乘", text)
    text = _PLUS_SIGN.sub("加", text)
    text = _PER.sub(_per, text)
    text = _MONEY.sub(_money, text)
    text = _DISCOUNT.sub(_discount, text)
    text = _UNIT.sub(lambda m: m.group(1) + _UNITS[m.group(2)], text)
    text = _NUMBER.sub(_number, text)
    text = _ANY_DIGITS.sub(lambda m: _read_digits(m.group(0), _DIGITS), text)  # left over: "1.2.3"
    return _LETTERS.sub(_letters, text)


def _fold_width(text: str) -> str:
    """Full-width and other compatibility forms made plain (NFKC), Chinese punctuation kept.

    >>> _fold_width("３２．８元，ＸＬ码")
    '32.8元，XL码'
    """
    if text.isascii():
        return text
    return "".join(ch if ch.isascii() or ch in _KEEP_PUNCTUATION else unicodedata.normalize("NFKC", ch) for ch in text)


def _date(match: re.Match[str]) -> str:
    """2024-05-18 -> 二零二四年五月十八日 (an impossible month or day is left alone)."""
    year, _, month, day = match.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return match.group(0)
    return f"{_read_digits(year, _DIGITS)}年{_integer_words(int(month))}月{_integer_words(int(day))}日"


def _clock_range(match: re.Match[str]) -> str:
    """18:30 -> 十八点半; 9:00-18:00 -> 九点到十八点."""
    spoken = _clock(*match.group(1, 2, 3))
    if match.group(4) is not None:
        spoken += "到" + _clock(*match.group(4, 5, 6))
    return spoken


def _clock(hours_text: str, minutes_text: str, seconds_text: str | None) -> str:
    """A time of day: ("9", "00", None) -> 九点, ("09", "05", None) -> 九点零五分, ("2", "30", None) -> 两点半."""
    hours, minutes, seconds = int(hours_text), int(minutes_text), int(seconds_text or 0)
    spoken = ("两" if hours == 2 else _integer_words(hours)) + "点"
    if minutes == 30 and not seconds:
        return spoken + "半"
    if minutes or seconds:
        spoken += ("零" if 0 < minutes < 10 else "") + _integer_words(minutes) + "分"
    if seconds:
        spoken += ("零" if seconds < 10 else "") + _integer_words(seconds) + "秒"
    return spoken


def _read_digits(digits: str, names: str = _PHONE_DIGITS) -> str:
    """Digit by digit: "12315" -> 幺二三幺五 (with ``_DIGITS``: 一二三一五)."""
    return "".join(names[int(d)] for d in digits)


def _code(match: re.Match[str]) -> str:
    """An upper-case code with digits, letter by letter and digit by digit: JD0012345 -> 杰迪零零幺二三四五."""
    return "".join(_LETTER_NAMES[ch] if ch.isalpha() else _PHONE_DIGITS[int(ch)] for ch in match.group(0))


def _percent(match: re.Match[str]) -> str:
    """50% -> 百分之五十, 100% -> 百分之百, 5-10% -> 百分之五到百分之十."""
    spoken = _percent_words(match.group(1))
    if match.group(2) is not None:
        spoken += "到" + _percent_words(match.group(2))
    return spoken


def _percent_words(number: str) -> str:
    return "百分之" + ("百" if number == "100" else _decimal_words(number))


def _per(match: re.Match[str]) -> str:
    """元/件 -> 元每件, kg/袋 -> 公斤每袋, 元/kg -> 元每公斤, km/h -> 公里每小时 (元 is read by ``_money`` next)."""
    unit, per = match.group(1), match.group(2)
    return _UNITS.get(unit, unit) + "每" + ("小时" if per == "h" else _UNITS.get(per or "", ""))


def _money(match: re.Match[str]) -> str:
    """An amount of 元 (or 块) as said aloud: 32.8元 -> 三十二块八, 3-5元 -> 三到五块."""
    low, high, unit = match.groups()
    following = match.string[match.end() : match.end() + 1]
    if high is None:
        return _yuan(low, unit, following)
    if "." not in low and "." not in high:
        return ("两" if low == "2" else _cardinal(low)) + "到" + _yuan(high, unit, following)
    return _yuan(low, unit, "") + "到" + _yuan(high, unit, following)


def _yuan(amount: str, unit: str, following: str) -> str:
    """One amount in 块, 毛 and 分.

    "32.8" -> 三十二块八, "32.85" -> 三十二块八毛五, "0.5" -> 五毛, "0.05" -> 五分,
    "32.05" -> 三十二块零五分, "2" -> 两块, "0" -> 零元; before 钱 the last unit is said
    ("32.8" + 钱 -> 三十二块八毛钱); three or more decimals are read as a decimal: 一点二三四元.
    """
    whole, _, fraction = amount.partition(".")
    if len(fraction) > 2:
        return _decimal_words(amount) + unit
    jiao, fen = (int(d) for d in fraction.ljust(2, "0"))
    explicit = following == "钱"
    yuan = whole.lstrip("0")
    spoken = ("两" if yuan == "2" else _cardinal(yuan)) + "块" if yuan else ""
    if jiao:
        spoken += ("两" if jiao == 2 and not spoken else _DIGITS[jiao]) + (
            "毛" if fen or explicit or not spoken else ""
        )
    if fen:
        if spoken and not jiao:
            spoken += "零"
        spoken += ("两" if fen == 2 and not spoken else _DIGITS[fen]) + ("分" if explicit or not jiao else "")
    return spoken or "零元"


def _discount(match: re.Match[str]) -> str:
    """8.5折 -> 八五折, 8.0折 -> 八折."""
    tens, ones = int(match.group(1)), int(match.group(2))
    return _DIGITS[tens] + (_DIGITS[ones] if ones else "") + "折"


def _number(match: re.Match[str]) -> str:
    """One number left in the text, read by what follows it (see the module docstring)."""
    whole, fraction = match.group(1), match.group(2)
    text, end = match.string, match.end()
    following = text[end : end + 1]
    if fraction is not None:
        return _decimal_words(f"{whole}.{fraction}")
    if len(whole) == 4 and following == "年":
        return _read_digits(whole, _DIGITS)
    if len(whole) <= 2 and following and following in _DATE_TIME_UNITS:
        whole = whole.lstrip("0") or "0"  # 05月 -> 五月, 09点 -> 九点
    if (whole.startswith("0") and len(whole) > 1) or (
        len(whole) >= 5 and (not following or following not in _UNITS_AFTER)
    ):
        return _read_digits(whole)
    if whole == "2" and text[match.start() - 1 : match.start()] != "第" and _counts(text, end):
        return "两"
    return _cardinal(whole)


def _counts(text: str, end: int) -> bool:
    """Whether the number ending at ``end`` counts something: 2件, 2公斤, 2到3天 (not 2号, 2楼)."""
    following = text[end : end + 1]
    return bool(following and following in _MEASURE_WORDS) or bool(_NEXT_COUNT.match(text, end))


def _letters(match: re.Match[str]) -> str:
    """A run of Latin letters: spelled with Chinese letter names, or kept as an English word.

    "L" -> 艾欧, "VIP" -> 维艾皮, "App" -> 诶皮皮, "xl" -> 艾克斯艾欧 (a size), "iPhone" and "wifi" -> kept.
    """
    word = match.group(0)
    if len(word) <= _SPELLED_UP_TO or word.isupper() or _SIZE.fullmatch(word):
        return "".join(_LETTER_NAMES[ch] for ch in word.upper())
    return word


def _decimal_words(number: str) -> str:
    """ "3.5" -> 三点五, "0.05" -> 零点零五, "12" -> 十二."""
    whole, _, fraction = number.partition(".")
    return _cardinal(whole) + ("点" + _read_digits(fraction, _DIGITS) if fraction else "")


def _cardinal(digits: str) -> str:
    """Chinese numerals for a string of digits; past 16 digits it is read digit by digit."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > 16:
        return _read_digits(significant, _DIGITS)
    return _integer_words(int(significant))


def _integer_words(value: int) -> str:
    """Chinese numerals for 0 <= value < 10**16.

    15 -> 十五, 1005 -> 一千零五, 120000 -> 十二万, 2000 -> 两千, 22000 -> 两万两千, 200 -> 二百.
    """
    if value == 0:
        return "零"
    if value >= 10**16:
        return _read_digits(str(value), _DIGITS)
    groups, words = [], ""
    while value:
        value, group = divmod(value, 10000)
        groups.append(group)
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        if words and group < 1000:
            words += "零"
        words += ("两" if group == 2 and index else _group_words(group)) + ("", "万", "亿", "万亿")[index]
    words = _ZEROS.sub("零", words)
    return words[1:] if words.startswith("一十") else words


def _group_words(group: int) -> str:
    """Chinese numerals for 1 <= group <= 9999, zeros collapsed, no trailing 零: 2305 -> 两千三百零五."""
    out = ""
    for power, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = group // power % 10
        if digit:
            out += ("两" if digit == 2 and power == 1000 else _DIGITS[digit]) + name
        elif out and group % power:
            out += "零"
    return out
