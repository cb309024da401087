"""Signing conformance: our headers verify with the reference ``standardwebhooks`` receiver,
any single-bit change is rejected, the 5-minute tolerance holds to the second, rotation."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from alerts.webhooks.payload import thin_body
from alerts.webhooks.signing import (
    check_webhook_id,
    generate_secret,
    parse_secret,
    signed_headers,
)
from tests.webhook_helpers import make_warning

REJECTED = (WebhookVerificationError, ValueError)  # ValueError: bytes no longer UTF-8/base64
SECRET = generate_secret()
KEY = parse_secret(SECRET)

ids = st.from_regex(r"[A-Za-z0-9_\-:]{1,64}", fullmatch=True)
bodies = st.text(max_size=2_000).map(lambda s: s.encode("utf-8"))
offsets = st.integers(min_value=-240, max_value=240)  # well inside the tolerance


def verify(body: bytes, headers: dict[str, str], secret: str = SECRET) -> None:
    Webhook(secret).verify(body, headers, json_parse=False)


@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(webhook_id=ids, body=bodies, offset=offsets)
def test_reference_library_verifies_our_signature(webhook_id: str, body: bytes,
                                                  offset: int) -> None:
    headers = signed_headers([KEY], webhook_id, int(time.time()) + offset, body)
    verify(body, headers)


@settings(max_examples=300)
@given(n=st.integers(0, 10_000), room=st.text(min_size=1, max_size=40),
       suggestion=st.text(min_size=1, max_size=80))
def test_thin_bodies_verify_and_parse_back(n: int, room: str, suggestion: str) -> None:
    warning = make_warning(n, room_id=room, suggestion=suggestion)
    body = thin_body(warning, "https://console.test")
    headers = signed_headers([KEY], warning.webhook_id, int(time.time()), body)
    parsed = Webhook(SECRET).verify(body, headers)
    assert parsed["data"]["room_id"] == room and parsed["data"]["suggestion"] == suggestion


def _flip_text(text: str, index: int, bit: int) -> str:
    i = index % len(text)
    return text[:i] + chr(ord(text[i]) ^ (1 << (bit % 7))) + text[i + 1:]


@settings(max_examples=1_000)
@given(webhook_id=ids, body=bodies.filter(bool), offset=offsets,
       part=st.sampled_from(["id", "timestamp", "body", "signature"]),
       index=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_rejected(webhook_id: str, body: bytes, offset: int, part: str,
                                         index: int, bit: int) -> None:
    headers = signed_headers([KEY], webhook_id, int(time.time()) + offset, body)
    verify(body, headers)  # intact: accepted
    if part == "id":
        headers["webhook-id"] = _flip_text(headers["webhook-id"], index, bit)
    elif part == "timestamp":
        headers["webhook-timestamp"] = _flip_text(headers["webhook-timestamp"], index, bit)
    elif part == "body":
        i = index % len(body)
        body = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1:]
    else:
        version, sig = headers["webhook-signature"].split(",")
        raw = bytearray(base64.b64decode(sig))
        raw[index % len(raw)] ^= 1 << bit
        headers["webhook-signature"] = f"{version},{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(REJECTED):
        verify(body, headers)


@pytest.mark.parametrize(("offset", "accepted"), [
    (-299, True), (299, True), (-301, False), (301, False), (0, True)])
def test_timestamp_tolerance_boundary(offset: int, accepted: bool) -> None:
    """The reference receiver's window is +-300 s; our timestamp is what it checks."""
    body = b'{"type":"roomwarden.host_warning"}'
    headers = signed_headers([KEY], "msg_1", int(time.time()) + offset, body)
    if accepted:
        verify(body, headers)
    else:
        with pytest.raises(WebhookVerificationError, match="too (old|new)"):
            verify(body, headers)


def test_wrong_secret_is_rejected() -> None:
    body = b"{}"
    headers = signed_headers([KEY], "msg_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secret=generate_secret())


def test_rotation_signs_with_both_secrets_until_the_old_one_is_dropped() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"a":1}'
    now = int(time.time())
    during = signed_headers([parse_secret(new), parse_secret(old)], "msg_2", now, body)
    assert len(during["webhook-signature"].split(" ")) == 2
    verify(body, during, secret=new)
    verify(body, during, secret=old)
    after = signed_headers([parse_secret(new)], "msg_2", now, body)
    verify(body, after, secret=new)
    with pytest.raises(WebhookVerificationError):
        verify(body, after, secret=old)


def test_headers_are_the_standard_three_and_json() -> None:
    headers = signed_headers([KEY], "msg_3", 1_700_000_000, b"{}")
    assert headers["webhook-id"] == "msg_3"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"


def test_generated_secrets_are_standard_and_distinct() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_") and len(parse_secret(secret)) == 32
        Webhook(secret)  # the reference library takes it as is
    assert len(parse_secret(generate_secret(64))) == 64
    with pytest.raises(ValueError, match="24-64"):
        generate_secret(16)


@pytest.mark.parametrize(("secret", "message"), [
    ("c2VjcmV0", "must start with 'whsec_'"),
    ("whsec_not base64!", "must be base64"),
    ("whsec_" + base64.b64encode(b"x" * 16).decode(), "has 16 bytes"),
    ("whsec_" + base64.b64encode(b"x" * 65).decode(), "has 65 bytes"),
    ("whsec_", "must be base64"),
])
def test_bad_secrets_are_named(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_secret(secret)


def test_unpadded_secret_is_accepted_like_the_library_does() -> None:
    key = b"k" * 32
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    assert parse_secret(unpadded) == key


@pytest.mark.parametrize("bad", ["", "a.b", "has space", "x" * 129, "é", "a\nb"])
def test_webhook_ids_that_could_break_the_signed_content_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        check_webhook_id(bad)
    with pytest.raises(ValueError):
        signed_headers([KEY], bad, 1, b"{}")


def test_signed_content_is_id_timestamp_body() -> None:
    """Against the spec's construction directly, not just the library's round trip."""
    import hashlib
    import hmac

    body = json.dumps({"k": "v"}).encode()
    headers = signed_headers([KEY], "msg_x", 1_674_087_231, body)
    mac = hmac.new(KEY, b"msg_x.1674087231." + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
