"""Prometheus metrics, in one place.

Stages know nothing of Prometheus: the runner observes events as they cross the queues between
stages, and reads gauges (queue depths, Kafka buffer) at scrape time through callbacks. Names
follow Prometheus conventions (``roomwarden_`` prefix, base units, ``_total``/``_seconds``).
Room and speaker ids are never labels: they are unbounded, and belong in logs.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# End-of-speech -> alert acked. Dense where the product promise lives (1-2 s), reaching 30 s so
# an overloaded system is still measured, not clipped.
LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0)
# Decode time of one segment.
ASR_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
SEGMENT_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 15.0, 30.0)


class Metrics:
    """Every metric RoomWarden exports, on its own registry (tests get a fresh one each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.whip_sessions = Gauge(
            "roomwarden_whip_sessions", "WHIP publisher sessions currently open.", registry=r
        )
        self.whip_offers_rejected = Counter(
            "roomwarden_whip_offers_rejected_total",
            "WHIP offers refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.segments = Counter(
            "roomwarden_segments_total", "Speech segments cut by VAD.", registry=r
        )
        self.segment_duration = Histogram(
            "roomwarden_segment_duration_seconds",
            "Length of speech segments.",
            buckets=SEGMENT_BUCKETS,
            registry=r,
        )
        self.asr_audio = Counter(
            "roomwarden_asr_audio_seconds_total", "Seconds of speech transcribed.", registry=r
        )
        self.asr_received = Counter(
            "roomwarden_asr_received_seconds_total",
            "Seconds of speech handed to ASR. Equals transcribed seconds plus gap seconds of "
            "reasons asr_overload and asr_failed, plus what is still waiting.",
            registry=r,
        )
        self.asr_backlog = Gauge(
            "roomwarden_asr_backlog_seconds", "Seconds of speech waiting for ASR.", registry=r
        )
        self.asr_batch = Histogram(
            "roomwarden_asr_batch_segments",
            "Segments decoded together in one Whisper window (cross-speaker packing).",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=r,
        )
        self.asr_decode = Histogram(
            "roomwarden_asr_decode_seconds",
            "Wall time to decode one segment.",
            buckets=ASR_BUCKETS,
            registry=r,
        )
        self.asr_queue_wait = Histogram(
            "roomwarden_asr_queue_wait_seconds",
            "Time a segment waited for the recognizer.",
            buckets=ASR_BUCKETS,
            registry=r,
        )
        self.transcripts = Counter(
            "roomwarden_transcripts_total",
            "Transcripts, by confidence class (confident, low, rejected).",
            ["confidence_class"],
            registry=r,
        )
        self.alerts = Counter(
            "roomwarden_alerts_total", "Alerts raised, by category.", ["category"], registry=r
        )
        self.escalations = Counter(
            "roomwarden_escalations_total",
            "Escalations decided (host_warning, operator_alert, recommend_mute, "
            "recommend_remove, recommend_close_room, review).",
            ["action"],
            registry=r,
        )
        self.alert_latency = Histogram(
            "roomwarden_alert_latency_seconds",
            "End of speech (last voiced frame received) to alert acknowledged by Kafka.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.published = Counter(
            "roomwarden_kafka_records_acked_total", "Records acknowledged by Kafka.", ["topic"],
            registry=r,
        )
        self.publish_failures = Counter(
            "roomwarden_kafka_send_failures_total", "Produce attempts that failed.", registry=r
        )
        self.kafka_buffered = Gauge(
            "roomwarden_kafka_buffered_records",
            "Records waiting to be delivered (grows while Kafka is unreachable).",
            registry=r,
        )
        self.kafka_connected = Gauge(
            "roomwarden_kafka_connected", "1 when the producer is connected.", registry=r
        )
        self.queue_depth = Gauge(
            "roomwarden_queue_depth", "Items waiting between stages.", ["queue"], registry=r
        )
        self.gaps = Counter(
            "roomwarden_gaps_total",
            "Stretches of time a room or speaker could not be heard, by reason.",
            ["reason"],
            registry=r,
        )
        self.gap_seconds = Counter(
            "roomwarden_gap_seconds_total",
            "Seconds not heard (summed over gaps, so rooms x seconds), by reason.",
            ["reason"],
            registry=r,
        )
        self.janus_connected = Gauge(
            "roomwarden_janus_connected", "1 while the Janus room tap has a live session.",
            registry=r,
        )
        self.whep_sources_up = Gauge(
            "roomwarden_whep_sources_up", "Configured WHEP sources currently streaming.",
            registry=r,
        )
        self.room_notices = Counter(
            "roomwarden_room_notices_total",
            "Alerts considered for an in-room notice, by outcome (sent, failed, cooldown, "
            "low_confidence, below_severity).",
            ["outcome"],
            registry=r,
        )
        self.stage_errors = Counter(
            "roomwarden_stage_errors_total", "Items a stage failed on, by stage.", ["stage"],
            registry=r,
        )

    def count_gap(self, reason: str, seconds: float) -> None:
        """One stream gap of ``seconds`` (the runner and the Kafka hand-off both report them)."""
        self.gaps.labels(reason=reason).inc()
        self.gap_seconds.labels(reason=reason).inc(seconds)

    def watch_queue(self, name: str, size: Callable[[], int]) -> None:
        """Report a queue's depth at scrape time (no work on the hot path)."""
        self.queue_depth.labels(queue=name).set_function(size)
