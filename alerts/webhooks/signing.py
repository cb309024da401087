"""Standard Webhooks signatures, made by the reference ``standardwebhooks`` library.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` (HMAC-SHA256, ``v1``), over
the exact body bytes sent. The timestamp is the attempt's, not the event's: each retry is
signed anew, so a receiver's 5-minute tolerance window still accepts a retry sent hours later,
while the id stays the same (the receiver's idempotency key).

Secrets are in the Standard Webhooks form ``whsec_<base64 of 24-64 random bytes>``; during a
rotation two secrets sign each request and ``webhook-signature`` carries both, space-separated.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
WEBHOOK_ID = re.compile(r"[A-Za-z0-9_\-:]{1,128}")
"""What a ``webhook-id`` may be: header-safe and without ``.``, which the signed content uses
as its separator (the spec asks that ids never contain one)."""


def generate_secret(nbytes: int = 32) -> str:
    """A new random signing secret, ``whsec_`` + base64 of ``nbytes`` bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, "
                         f"not {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError saying what is wrong with it.

    Stricter than the library (which would take any string): a typo'd or truncated secret must
    fail at startup, not as signatures the host silently rejects.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r} "
                         f"(Standard Webhooks form)")
    encoded = secret[len(SECRET_PREFIX):]
    if not _BASE64.fullmatch(encoded):
        raise ValueError("webhook secret after 'whsec_' must be base64 (A-Z a-z 0-9 + /, "
                         "'=' padding)")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"webhook secret is not valid base64: {exc}") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"webhook secret has {len(key)} bytes; Standard Webhooks asks for "
                         f"{MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} random bytes")
    return key


def check_webhook_id(webhook_id: str) -> str:
    """``webhook_id`` if it can be a ``webhook-id`` header, else ValueError."""
    if not WEBHOOK_ID.fullmatch(webhook_id):
        raise ValueError(f"webhook id {webhook_id!r} must be 1-128 characters of "
                         f"A-Z a-z 0-9 _ - : (no '.', no spaces)")
    return webhook_id


def sign(secret_keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    if not secret_keys:
        raise ValueError("signing needs at least one secret")
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode("utf-8")  # the library signs str; our bodies are UTF-8 JSON
    return " ".join(Webhook(key).sign(webhook_id, when, text) for key in secret_keys)


def signed_headers(secret_keys: Sequence[bytes], webhook_id: str, timestamp: int,
                   body: bytes) -> dict[str, str]:
    """Every header of one attempt: the three Standard Webhooks ones and the content type."""
    return {
        "webhook-id": check_webhook_id(webhook_id),
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret_keys, webhook_id, timestamp, body),
        "content-type": "application/json",
    }
