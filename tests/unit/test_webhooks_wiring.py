"""The composition-root side of webhooks: metrics as the dispatcher's observer, and the
``roomwarden webhooks`` commands."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from alerts.webhooks import AttemptResult, WebhookDispatcher
from alerts.webhooks.outbox import Outbox
from alerts.webhooks.signing import parse_secret
from roomwarden.cli_webhooks import webhooks_app
from roomwarden.webhook_metrics import WebhookMetrics, build_dispatcher
from tests.webhook_helpers import FakeClock, ScriptedSender, make_settings, make_warning, settle


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    assert got is not None, (name, labels)
    return got


async def test_metrics_count_outcomes_latency_and_pending(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    assert value(registry, "roomwarden_webhook_deliveries_total", outcome="refused_address") == 0
    clock = FakeClock()
    sender = ScriptedSender(clock, [AttemptResult(status=500), AttemptResult(status=200)])
    outbox = Outbox(tmp_path / "o.sqlite3")
    dispatcher = WebhookDispatcher(make_settings({"*": "https://h.test/x"}), sender=sender,
                                   outbox=outbox, observer=metrics, clock=clock,
                                   sleep=clock.sleep, rand=lambda: 0.0, max_idle_s=1e9)
    metrics.watch(dispatcher)
    await dispatcher.start()
    warning = make_warning(1)
    dispatcher.submit(warning)
    dispatcher.submit(warning)
    assert value(registry, "roomwarden_webhook_outbox_pending") == 1
    await settle(outbox, warning.webhook_id)
    await dispatcher.close()
    assert value(registry, "roomwarden_webhook_warnings_total", outcome="queued") == 1
    assert value(registry, "roomwarden_webhook_warnings_total", outcome="duplicate") == 1
    assert value(registry, "roomwarden_webhook_deliveries_total", outcome="retried") == 1
    assert value(registry, "roomwarden_webhook_deliveries_total", outcome="delivered") == 1
    assert value(registry, "roomwarden_webhook_delivery_latency_seconds_count") == 1
    assert value(registry, "roomwarden_webhook_delivery_latency_seconds_sum") == 5
    assert value(registry, "roomwarden_webhook_outbox_pending") == 0
    outbox.close()


async def test_build_dispatcher_opens_the_configured_outbox(tmp_path: Path) -> None:
    settings = make_settings({"*": "https://h.test/x"}, outbox_path=tmp_path / "w" / "o.db")
    dispatcher = build_dispatcher(settings, WebhookMetrics(CollectorRegistry()))
    assert dispatcher.pending_count() == 0
    await dispatcher.start()
    assert (tmp_path / "w" / "o.db").is_file()
    await dispatcher.close()


def test_cli_secret_status_enable(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(webhooks_app, ["secret"])
    assert out.exit_code == 0 and len(parse_secret(out.output.strip())) == 32
    assert runner.invoke(webhooks_app, ["secret", "--bytes", "8"]).exit_code == 2

    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    box.add("w1", "r", b"{}", now=1.0)
    box.disable_endpoint("https://gone.test/x", now=2.0, webhook_id="w0", status=410)
    box.close()
    status = runner.invoke(webhooks_app, ["status", str(path)])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert doc["deliveries"]["pending"] == 1
    assert [e["url"] for e in doc["disabled_endpoints"]] == ["https://gone.test/x"]
    assert runner.invoke(webhooks_app, ["enable", str(path), "https://gone.test/x"]).exit_code == 0
    assert runner.invoke(webhooks_app, ["enable", str(path), "https://gone.test/x"]).exit_code == 1
    assert runner.invoke(webhooks_app, ["status", str(tmp_path / "none")]).exit_code == 2
