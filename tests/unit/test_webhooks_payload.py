"""The thin host-warning body (schema, no transcript text, link) and WebhookSettings checks."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from alerts.webhooks import HostEndpoint, WebhookSettings
from alerts.webhooks.payload import EVENT_TYPE, HostWarning, alert_link, thin_body
from alerts.webhooks.signing import generate_secret
from tests.webhook_helpers import make_settings, make_warning


def schema_validator() -> Draft202012Validator:
    text = resources.files("alerts").joinpath("schemas/host_warning.v1.json").read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_body_is_thin_standard_webhooks_json() -> None:
    warning = make_warning(3, room_id="stage-1", alert_id="a/1 b")
    body = thin_body(warning, "https://console.test/")
    doc = json.loads(body)
    assert doc == {
        "type": EVENT_TYPE,
        "timestamp": "2025-11-21T20:00:03.000000Z",
        "data": {"alert_id": "a/1 b", "room_id": "stage-1", "category": "harassment",
                 "severity": "medium", "suggestion": "warn",
                 "link": "https://console.test/alerts/a%2F1%20b"},
    }
    assert b" " not in body.replace(b"a/1 b", b"")  # compact: what is signed is what is sent
    schema_validator().validate(doc)


def test_body_is_stable_bytes() -> None:
    warning = make_warning(1)
    assert thin_body(warning, "https://c.test") == thin_body(warning, "https://c.test")


def test_unicode_is_sent_as_utf8() -> None:
    body = thin_body(make_warning(1, room_id="房间", suggestion="警告"), "https://c.test")
    assert "房间".encode() in body
    schema_validator().validate(json.loads(body))


def test_link_quotes_the_alert_id() -> None:
    assert alert_link("https://c.test", "x?y#z") == "https://c.test/alerts/x%3Fy%23z"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("webhook_id", "a.b", "webhook id"),
    ("room_id", "", "room_id is empty"),
    ("alert_id", "", "alert_id is empty"),
    ("severity", "extreme", "severity 'extreme'"),
    ("occurred_at", float("nan"), "occurred_at"),
    ("occurred_at", -1.0, "occurred_at"),
])
def test_bad_warnings_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_warning(1, **{field: value})


def test_oversized_body_is_refused() -> None:
    with pytest.raises(ValueError, match="over 20000"):
        thin_body(make_warning(1, suggestion="x" * 30_000), "https://c.test")


def test_warning_is_frozen() -> None:
    warning = make_warning(1)
    with pytest.raises(AttributeError):
        warning.room_id = "other"  # type: ignore[misc]
    assert isinstance(warning, HostWarning)


# --- settings ---------------------------------------------------------------------------

def test_defaults_are_off_and_standard() -> None:
    s = WebhookSettings()
    assert not s.enabled and s.hosts == {} and s.allow_networks == []
    assert s.schedule_s == [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400]
    assert s.max_attempts == 10 and 15 <= s.timeout_s <= 30 and s.jitter == 1.0


def test_endpoint_for_room_falls_back_to_default() -> None:
    s = make_settings({"*": "https://all.test/h", "vip": "https://vip.test/h"})
    assert s.endpoint_for("vip") is not None and s.endpoint_for("vip").url == "https://vip.test/h"
    assert s.endpoint_for("other").url == "https://all.test/h"  # type: ignore[union-attr]
    assert make_settings({"vip": "https://vip.test/h"}).endpoint_for("other") is None


def test_settings_from_env_shaped_json() -> None:
    secret = generate_secret()
    s = WebhookSettings.model_validate_json(json.dumps({
        "enabled": True, "hosts": {"*": {"url": "https://h.test/x", "secret": secret}},
        "allow_networks": ["127.0.0.1/32", "fd00::/8"]}))
    assert [str(n) for n in s.allow_networks] == ["127.0.0.1/32", "fd00::/8"]
    assert s.hosts["*"].secret.get_secret_value() == secret
    assert secret not in repr(s)  # secrets stay out of logs


@pytest.mark.parametrize(("values", "message"), [
    ({"enabled": True}, "needs at least one entry in webhooks.hosts"),
    ({"hosts": {"*": {"url": "http://h.test", "secret": generate_secret()}}},
     "use http://"),
    ({"hosts": {"*": {"url": "ftp://h.test", "secret": generate_secret()}}},
     "http:// or https://"),
    ({"hosts": {"*": {"url": "https://u:p@h.test", "secret": generate_secret()}}},
     "credentials"),
    ({"hosts": {"*": {"url": "https://h.test", "secret": "hunter2"}}}, "whsec_"),
    ({"schedule_s": []}, "at least one wait"),
    ({"schedule_s": [0, -5]}, "negative"),
    ({"allow_networks": ["10.0.0.1/8"]}, "allow_networks"),
    ({"console_base_url": "console"}, "console_base_url"),
    ({"jitter": 1.5}, "jitter"),
    ({"max_attempts": 0}, "max_attempts"),
])
def test_bad_settings_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookSettings.model_validate(values)


def test_rotation_secret_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="previous_secret"):
        HostEndpoint(url="https://h.test", secret=generate_secret(),
                     previous_secret="whsec_short")  # type: ignore[arg-type]
