"""Builds the stages from settings and serves HTTP (WHIP, /metrics, /healthz) and the Janus tap.

This is the only place that knows every stage; ``cli`` calls it, nothing else imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.publisher import KafkaPublisher, PublisherParams
from alerts.room_notice import JanusRoomNotifier, RoomNoticeSink
from alerts.webhooks import WebhookDispatcher
from asr.backlog import SegmentBacklog
from asr.frames import Transcript
from asr.recognizer import AsrParams, WhisperRecognizer
from ingest.frames import StreamGap
from ingest.ice import restrict_host_addresses
from ingest.janus_rooms import JanusRoomTap
from ingest.vad import VadParams
from ingest.whep_pull import WhepPuller
from ingest.whip import WhipEndpoint
from policy.classifier import load_classifier
from policy.engine import PolicyEngine
from policy.escalation import EscalationPolicy, Escalator
from policy.frames import Alert
from policy.rules import RulePack, default_pack_path
from roomwarden.escalations import EscalationStage, HostWarningSink, WebhookWarnings
from roomwarden.handoff import SegmentHandoff
from roomwarden.metrics import Metrics
from roomwarden.policy_reload import PolicyReloader
from roomwarden.runner import AlertCallback, Pipeline, Topics
from roomwarden.settings import Settings
from roomwarden.webhook_metrics import WebhookMetrics, build_dispatcher

log = structlog.get_logger(__name__)


def vad_params(settings: Settings) -> VadParams:
    return VadParams(**settings.vad.model_dump())


def load_policy(settings: Settings) -> PolicyEngine:
    """Load the rule pack; a broken pack raises ``RulePackError`` naming file and line."""
    p = settings.policy
    pack = RulePack.load(p.rules or default_pack_path())
    classifier = load_classifier(p.classifier, expected_sha256=p.classifier_sha256)
    log.info("policy_loaded", pack=pack.name, version=pack.version, sha256=pack.sha256,
             rules=len(pack.rules), classifier=p.classifier)
    return PolicyEngine(pack, classifier=classifier, classifier_threshold=p.classifier_threshold)


def policy_reloader(settings: Settings, active: PolicyEngine,
                    apply: Callable[[PolicyEngine], None], metrics: Metrics
                    ) -> PolicyReloader | None:
    """Hot reload of ``policy.rules`` (None when unset: the shipped pack does not change)."""
    if settings.policy.rules is None:
        return None
    return PolicyReloader(settings.policy.rules, apply, lambda _path: load_policy(settings),
                          settings.policy.reload_interval_s, active=active,
                          registry=metrics.registry)


def build_recognizer(settings: Settings) -> WhisperRecognizer:
    a = settings.asr
    return WhisperRecognizer(AsrParams(model=a.model, compute_type=a.compute_type,
                                       cpu_threads=a.cpu_threads, beam_size=a.beam_size,
                                       language=a.language,
                                       room_languages=tuple(sorted(a.room_languages.items())),
                                       pack_window_s=a.pack_window_s, pack_gap_s=a.pack_gap_s,
                                       pack_max_windows=a.pack_max_windows))


def build_publisher(settings: Settings, metrics: Metrics) -> KafkaPublisher:
    k = settings.kafka
    if not k.bootstrap_servers:
        raise ValueError("kafka.bootstrap_servers is not set (ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS)")

    def on_event(name: str, fields: Mapping[str, Any]) -> None:
        if name == "send_failed":
            metrics.publish_failures.inc()

    publisher = KafkaPublisher(
        PublisherParams(
            bootstrap_servers=k.bootstrap_servers,
            client_id=k.client_id,
            acks=k.acks,
            enable_idempotence=k.enable_idempotence,
            linger_ms=k.linger_ms,
            compression_type=None if k.compression_type == "none" else k.compression_type,
            request_timeout_ms=k.request_timeout_ms,
            buffer_max_records=k.buffer_max_records,
        ),
        on_event=on_event,
    )
    metrics.kafka_buffered.set_function(lambda: publisher.buffered)
    metrics.kafka_connected.set_function(lambda: 1.0 if publisher.connected else 0.0)
    return publisher


class SegmentIntake(Protocol):
    """What live sources feed: :class:`Pipeline` (``pipeline.asr = local``) or
    :class:`SegmentHandoff` (``kafka``)."""

    segments: SegmentBacklog

    async def publish_gap(self, gap: StreamGap) -> None: ...

    async def drain(self) -> None: ...


@dataclass
class Running:
    """What :func:`running_pipeline` hands out while the pipeline runs."""

    settings: Settings
    metrics: Metrics
    intake: SegmentIntake
    """Where live sources put segments (``intake.segments``) and gaps (``publish_gap``)."""
    publisher: KafkaPublisher | None
    recognizer: WhisperRecognizer | None
    """The local model; None in distributed mode (``pipeline.asr = kafka``)."""
    janus: JanusRoomTap | None = None
    """The Janus room tap while :func:`janus_tapping` runs one."""
    whep: list[WhepPuller] = field(default_factory=list)
    """The WHEP pullers while :func:`whep_pulling` runs them."""
    notices: RoomNoticeSink | None = None
    """The in-room notice sink, when ``notices.enabled`` (local mode)."""

    @property
    def pipeline(self) -> Pipeline:
        """The local pipeline (ASR, policy, alerts in this process)."""
        if not isinstance(self.intake, Pipeline):
            raise RuntimeError("pipeline.asr = 'kafka': segments are handed to Kafka "
                               "(running.intake); there is no local pipeline")
        return self.intake


def build_notices(settings: Settings, metrics: Metrics) -> RoomNoticeSink | None:
    """The in-room notice sink of ``settings.notices`` (None when disabled)."""
    n = settings.notices
    if not n.enabled:
        return None
    url = n.janus_url or settings.janus.url
    if not url:
        raise ValueError("notices.enabled needs notices.janus_url or janus.url "
                         "(ROOMWARDEN_NOTICES__JANUS_URL)")
    for outcome in ("sent", "failed", "cooldown", "low_confidence", "below_severity"):
        metrics.room_notices.labels(outcome=outcome)  # exported at 0 from the start
    log.info("room_notices_enabled", url=url, min_severity=n.min_severity,
             cooldown_s=n.cooldown_s)
    return RoomNoticeSink(JanusRoomNotifier(url), min_severity=n.min_severity,
                          cooldown_s=n.cooldown_s,
                          on_outcome=lambda o: metrics.room_notices.labels(outcome=o).inc())


def build_webhooks(settings: Settings, metrics: Metrics) -> WebhookDispatcher | None:
    """The host-warning webhook dispatcher of ``settings.webhooks`` (None when disabled); call
    ``start()`` inside the event loop. One dispatcher per outbox file: ``serve`` in local mode,
    ``worker policy`` in distributed mode."""
    if not settings.webhooks.enabled:
        return None
    log.info("host_webhooks_enabled", outbox=str(settings.webhooks.outbox_path),
             hosts=len(settings.webhooks.hosts))
    return build_dispatcher(settings.webhooks, WebhookMetrics(metrics.registry))


def host_warning_sinks(notices: RoomNoticeSink | None,
                       webhooks: WebhookDispatcher | None) -> list[HostWarningSink]:
    """Where the escalation ladder's host warnings go: the in-room notice, the webhook."""
    sinks: list[HostWarningSink] = []
    if notices is not None:
        sinks.append(notices)
    if webhooks is not None:
        sinks.append(WebhookWarnings(webhooks))
    return sinks


def build_escalations(settings: Settings, publisher: KafkaPublisher | None, *,
                      host_warnings: Sequence[HostWarningSink] = ()) -> EscalationStage | None:
    """The escalation ladder of ``policy.escalate`` (default thresholds and cooldowns of
    :class:`policy.escalation.EscalationPolicy`), publishing to ``kafka.escalations_topic`` and
    handing its host warnings to ``host_warnings``."""
    if not settings.policy.escalate:
        return None
    return EscalationStage(Escalator(EscalationPolicy()), sink=publisher,
                           source=f"/roomwarden/{settings.instance}",
                           topic=settings.kafka.escalations_topic, host_warnings=host_warnings)


@asynccontextmanager
async def running_pipeline(
    settings: Settings,
    *,
    kafka: bool = True,
    on_alert: AlertCallback | None = None,
    on_transcript: Callable[[Transcript], None] | None = None,
    metrics: Metrics | None = None,
    shed: bool | None = None,
) -> AsyncIterator[Running]:
    """Start what ``pipeline.asr`` asks for, stop it all on exit (after draining).

    ``local``: recognizer, policy, publisher and :class:`Pipeline`. ``kafka``: publisher and
    :class:`SegmentHandoff` only (no model, no policy: ``worker asr`` and ``worker policy``
    do that), so ``kafka`` must be True and ``on_alert``/``on_transcript`` unset.
    ``shed`` overrides ``pipeline.overload`` (offline jobs pass False: never drop speech)."""
    metrics = metrics or Metrics()
    shed = settings.pipeline.overload == "shed_oldest" if shed is None else shed
    if settings.pipeline.asr == "kafka":
        if not kafka or on_alert is not None or on_transcript is not None:
            raise ValueError("pipeline.asr = 'kafka' hands segments to Kafka for `roomwarden "
                             "worker asr` and `worker policy`; this command needs the local "
                             "pipeline (set pipeline.asr = 'local')")
        async with _handing_off(settings, metrics, shed=shed) as running:
            yield running
        return
    policy = load_policy(settings)  # first: a broken rule pack fails before anything starts
    # Loading verifies the model's sha256 and maps ~75 MB: keep it off the event loop.
    recognizer = await asyncio.to_thread(build_recognizer, settings)
    await asyncio.to_thread(recognizer.warmup)
    notices = build_notices(settings, metrics)
    if notices is not None and not settings.policy.escalate:
        # Without the ladder, every delivered alert is considered for a notice.
        sink, chained = notices, on_alert

        def on_alert(alert: Alert, latency: float | None) -> None:
            sink.submit(alert)  # after the ack; never blocks (sent in the background)
            if chained is not None:
                chained(alert, latency)

    webhooks = build_webhooks(settings, metrics)
    if webhooks is not None:
        await webhooks.start()
    publisher = build_publisher(settings, metrics) if kafka else None
    if publisher is not None:
        await publisher.start()
    pipeline = Pipeline(
        recognizer=recognizer,
        policy=policy,
        sink=publisher,
        metrics=metrics,
        source=f"/roomwarden/{settings.instance}",
        topics=Topics(settings.kafka.alerts_topic, settings.kafka.transcripts_topic,
                      settings.kafka.gaps_topic, settings.kafka.evidence_topic),
        segment_queue=settings.pipeline.segment_queue,
        transcript_queue=settings.pipeline.transcript_queue,
        segment_backlog_s=settings.pipeline.segment_backlog_s,
        shed=shed,
        asr_in_flight=settings.pipeline.asr_in_flight,
        on_alert=on_alert,
        on_transcript=on_transcript,
        escalations=build_escalations(
            settings, publisher, host_warnings=host_warning_sinks(notices, webhooks)),
    )
    await pipeline.start()
    reloader = policy_reloader(settings, policy, pipeline.set_policy, metrics)
    if reloader is not None:
        await reloader.start()
    try:
        yield Running(settings, metrics, pipeline, publisher, recognizer, notices=notices)
        await pipeline.drain()
    finally:
        if reloader is not None:
            await reloader.stop()
        await pipeline.stop()
        if notices is not None:
            await notices.close()
        if webhooks is not None:
            await webhooks.close()  # pending warnings stay in the outbox for the next start
        if publisher is not None:
            await publisher.stop()
        recognizer.close()


@asynccontextmanager
async def _handing_off(settings: Settings, metrics: Metrics, *,
                       shed: bool) -> AsyncIterator[Running]:
    """Distributed mode: publisher + :class:`SegmentHandoff`, no model, no policy."""
    if settings.notices.enabled:
        log.info("room_notices_elsewhere", reason="pipeline.asr = kafka: in-room notices are "
                 "posted by `roomwarden worker policy`")
    publisher = build_publisher(settings, metrics)
    await publisher.start()
    p = settings.pipeline
    handoff = SegmentHandoff(sink=publisher, metrics=metrics,
                             source=f"/roomwarden/{settings.instance}",
                             segments_topic=settings.asr_worker.segments_topic,
                             gaps_topic=settings.kafka.gaps_topic, segment_queue=p.segment_queue,
                             segment_backlog_s=p.segment_backlog_s, shed=shed,
                             in_flight=p.handoff_in_flight)
    log.info("segment_handoff", topic=settings.asr_worker.segments_topic,
             reason="pipeline.asr = kafka: worker asr transcribes, worker policy alerts")
    await handoff.start()
    try:
        yield Running(settings, metrics, handoff, publisher, None)
        await handoff.drain()
    finally:
        await handoff.stop()
        await publisher.stop()


def make_web_app(running: Running) -> tuple[web.Application, WhipEndpoint]:
    """The HTTP app: WHIP ingest, ``/metrics`` and ``/healthz``."""
    settings, metrics = running.settings, running.metrics
    restrict_host_addresses(settings.webrtc.ice_host_addresses)
    token = settings.http.whip_token.get_secret_value() if settings.http.whip_token else None
    if token is None:
        log.warning("whip_open", reason="http.whip_token is not set: anyone can publish")

    def on_event(name: str, fields: dict[str, Any]) -> None:
        if name == "session_started":
            metrics.whip_sessions.inc()
        elif name == "session_ended":
            metrics.whip_sessions.dec()
        elif name == "offer_rejected":
            metrics.whip_offers_rejected.labels(reason=str(fields.get("kind", "invalid"))).inc()

    whip = WhipEndpoint(running.intake.segments, token=token, vad=vad_params(settings),
                        on_event=on_event)
    app = web.Application()
    whip.add_to(app)

    async def metrics_handler(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        kafka_ok = running.publisher is None or running.publisher.connected
        body: dict[str, Any] = {"ok": kafka_ok, "kafka_connected": kafka_ok}
        if running.janus is not None:
            # Informational: WHIP keeps working while Janus is away, so not part of "ok".
            body["janus_connected"] = running.janus.connected
            body["janus_rooms"] = sorted(running.janus.taps)
            body["janus_audiobridge_rooms"] = sorted(running.janus.bridges)
        if running.whep:
            body["whep_sources_up"] = sum(p.connected for p in running.whep)
        return web.json_response(body, status=200 if kafka_ok else 503)

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health)
    return app, whip


@asynccontextmanager
async def janus_tapping(running: Running) -> AsyncIterator[JanusRoomTap | None]:
    """Run the Janus room tap of ``settings.janus`` (if a URL is set) into the pipeline.

    Its gaps are published through :meth:`Pipeline.publish_gap`; on exit the tap is closed
    (subscriptions flushed into the pipeline) and the last gaps are handed over.
    """
    j = running.settings.janus
    if not j.url:
        yield None
        return
    on_gap, pending = _gap_publisher(running)
    tap = JanusRoomTap(j.url, running.intake.segments, rooms=j.rooms,
                       audiobridge_rooms=j.audiobridge_rooms,
                       vad=vad_params(running.settings), poll_interval_s=j.poll_interval_s,
                       backoff_max_s=j.reconnect_max_s, on_gap=on_gap)
    running.metrics.janus_connected.set_function(lambda: 1.0 if tap.connected else 0.0)
    log.info("janus_tap_starting", url=j.url, rooms=j.rooms or "all",
             audiobridge_rooms=j.audiobridge_rooms)
    await tap.start()
    running.janus = tap
    try:
        yield tap
    finally:
        running.janus = None
        await tap.close()
        if pending:
            await asyncio.gather(*list(pending), return_exceptions=True)


def _gap_publisher(running: Running) -> tuple[Callable[[StreamGap], None],
                                              set[asyncio.Task[None]]]:
    """A gap hook for live sources (publishes via :meth:`Pipeline.publish_gap` in a task),
    and the set of those tasks still running (to await on shutdown)."""
    pending: set[asyncio.Task[None]] = set()

    def on_gap(gap: StreamGap) -> None:
        task = asyncio.create_task(running.intake.publish_gap(gap))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return on_gap, pending


@asynccontextmanager
async def whep_pulling(running: Running) -> AsyncIterator[list[WhepPuller]]:
    """Pull every stream of ``settings.whep.sources`` into the pipeline, each restarted with
    backoff when it ends or cannot be reached (``whep_unavailable`` gaps for the time lost)."""
    w = running.settings.whep
    on_gap, pending = _gap_publisher(running)
    pullers = [WhepPuller(s.url, s.room_id, s.speaker_id, running.intake.segments,
                          token=s.token.get_secret_value() if s.token else None,
                          vad=vad_params(running.settings), on_gap=on_gap,
                          backoff_max_s=w.reconnect_max_s) for s in w.sources]
    running.metrics.whep_sources_up.set_function(
        lambda: float(sum(p.connected for p in pullers)))
    for p in pullers:
        log.info("whep_source_starting", url=p.url, room_id=p.room_id, speaker_id=p.speaker_id)
        await p.start()
    running.whep = pullers
    try:
        yield pullers
    finally:
        running.whep = []
        await asyncio.gather(*(p.close() for p in pullers), return_exceptions=True)
        if pending:
            await asyncio.gather(*list(pending), return_exceptions=True)


@asynccontextmanager
async def serving(running: Running, host: str, port: int) -> AsyncIterator[str]:
    """Serve the HTTP app; yields the base URL actually bound (port 0 picks a free one)."""
    app, whip = make_web_app(running)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    url = f"http://{host}:{bound[1]}"
    log.info("http_listening", url=url, whip=f"{url}/whip/{{room}}/{{speaker}}",
             metrics=f"{url}/metrics")
    try:
        async with janus_tapping(running), whep_pulling(running):
            yield url
    finally:
        await whip.close()
        await runner.cleanup()
