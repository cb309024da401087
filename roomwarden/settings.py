"""All of RoomWarden's settings, in one pydantic-settings tree.

Sources, highest priority first: explicit values passed by the CLI, environment variables
(``ROOMWARDEN_`` prefix, ``__`` between nesting levels, e.g.
``ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``), the TOML file named by ``--config`` or
``ROOMWARDEN_CONFIG``, then the defaults below. Every field says what it is for where it is
defined (the aiokafka habit), so this file doubles as the configuration reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerts.audit.settings import AuditSettings
from alerts.console.settings import ConsoleSettings
from alerts.webhooks.settings import WebhookSettings

CONFIG_ENV = "ROOMWARDEN_CONFIG"


class KafkaSettings(BaseModel):
    """Where alerts and transcripts go (``ROOMWARDEN_KAFKA__*``)."""

    bootstrap_servers: str | None = None
    """``host:port[,host:port]``. Unset: ``demo`` starts the embedded broker; ``serve`` refuses."""
    client_id: str = "roomwarden"
    """Kafka client id, visible in broker logs and quotas."""
    alerts_topic: str = "roomwarden.alerts.v1"
    """Topic for alert CloudEvents (key = room id, so one room's alerts stay ordered)."""
    transcripts_topic: str = "roomwarden.transcripts.v1"
    """Topic for every transcript, flagged or not (the audit trail's raw material)."""
    gaps_topic: str = "roomwarden.gaps.v1"
    """Topic for stream gaps: when a room or speaker could not be heard (Janus down, a track
    died), so consumers do not read "no alert" as "nothing said"."""
    escalations_topic: str = "roomwarden.escalations.v1"
    """Topic for escalations: the moderator's ladder (host warning, operator alert, recommend
    mute / removal / room close, review) decided from each speaker's and room's decaying risk."""
    reviews_topic: str = "roomwarden.reviews.v1"
    """Topic for operators' reviews of alerts (acknowledge, dismiss, escalate) from the console."""
    evidence_topic: str = "roomwarden.evidence.v1"
    """Topic for the audio of flagged speech (a WAV per segment that raised an alert), which the
    audit recorder keeps as evidence."""
    acks: Literal["all", "1", "0"] = "all"
    """Producer acks. ``all``: an alert counts as delivered once every in-sync replica has it."""
    enable_idempotence: bool = False
    """Idempotent producer. Turn on for Apache Kafka; the embedded Tansu broker rejects
    InitProducerId. Alert ids are deterministic, so consumers dedupe either way."""
    linger_ms: int = 5
    """How long the producer waits to fill a batch. 5 ms costs little latency, saves requests."""
    compression_type: Literal["gzip", "none"] = "gzip"
    """Record batch compression (codecs needing no extra native package)."""
    request_timeout_ms: int = 10_000
    """How long one produce request may take before it is retried."""
    buffer_max_records: int = 10_000
    """Records held in memory while Kafka is unreachable; publishing waits when it is full
    (``roomwarden_kafka_buffered_records`` shows the fill)."""


class HttpSettings(BaseModel):
    """The HTTP server: WHIP endpoint, ``/metrics``, ``/healthz`` (``ROOMWARDEN_HTTP__*``)."""

    host: str = "0.0.0.0"
    """Address to listen on. ``demo`` overrides it with 127.0.0.1."""
    port: int = 8080
    """Port to listen on (0 = any free port)."""
    whip_token: SecretStr | None = None
    """Bearer token every WHIP request must carry. Unset: WHIP is open (say so in logs)."""


class WebRtcSettings(BaseModel):
    """WebRTC transport (``ROOMWARDEN_WEBRTC__*``)."""

    ice_host_addresses: list[str] | None = None
    """Restrict ICE host candidates to these addresses (e.g. ``["127.0.0.1"]`` for loopback
    demos, or the media-facing NIC's address). Unset: every non-loopback address of the host."""


class JanusSettings(BaseModel):
    """Tapping the rooms of a Janus media server directly (``ROOMWARDEN_JANUS__*``).

    RoomWarden joins each VideoRoom as a hidden subscriber of every publisher's audio (see
    ``ingest.janus_rooms``); ``serve --janus URL`` overrides :attr:`url`.
    """

    url: str | None = None
    """Janus HTTP API root, e.g. ``http://janus:8088/janus``. Unset: no Janus tap."""
    rooms: list[int] | None = None
    """VideoRoom ids to tap, e.g. ``[1234, 5678]`` (env: a JSON list). Unset: every room the
    VideoRoom ``list`` request shows (private rooms are not listed: name them here)."""
    poll_interval_s: float = Field(default=2.0, gt=0)
    """Period of room discovery (``list``) and of each room's ``listparticipants`` poll: how
    long a new speaker may talk before being heard, at worst."""
    reconnect_max_s: float = Field(default=5.0, gt=0)
    """Cap of the exponential backoff (with jitter) between reconnection attempts while Janus
    is unreachable."""
    audiobridge_rooms: list[int] = []
    """AudioBridge room ids to tap as a muted listener (visible in the room as ``RoomWarden``),
    e.g. ``[4321]`` (env: a JSON list). The mix is credited to speakers from Janus's
    ``talking`` events (rooms need ``audio_level_event``), else to speaker ``room``. Tapped by
    the same session as the VideoRooms, so they share its reconnects and outage gaps."""


class WhepSourceSettings(BaseModel):
    """One WHEP endpoint to pull (an item of ``whep.sources``)."""

    url: str
    """The WHEP endpoint, e.g. ``https://sfu.example/whep/endpoint/stage``."""
    room_id: str
    """Room id stamped on the stream's segments, alerts and gaps."""
    speaker_id: str
    """Speaker id stamped on the stream's segments (a WHEP stream is one speaker, or a mix)."""
    token: SecretStr | None = None
    """Bearer token sent with the WHEP requests, if the endpoint needs one."""


class WhepSettings(BaseModel):
    """Pulling remote streams over WHEP (``ROOMWARDEN_WHEP__*``); started by ``serve``."""

    sources: list[WhepSourceSettings] = []
    """Streams to pull, e.g. ``[{"url": "http://sfu/whep/stage", "room_id": "stage",
    "speaker_id": "host"}]`` (env: a JSON list). Each is restarted (exponential backoff with
    jitter) whenever it cannot be reached or ends; the time it was not heard is reported as a
    ``whep_unavailable`` gap."""
    reconnect_max_s: float = Field(default=10.0, gt=0)
    """Cap of the backoff between attempts to (re)start one source."""


class NoticeSettings(BaseModel):
    """In-room notices to the host, as TextRoom chat through Janus (``ROOMWARDEN_NOTICES__*``).

    With the escalation ladder on (``policy.escalate``, the default) a notice is posted for each
    ``host_warning`` the ladder decides (it already handles confidence and cooldowns: a rant is
    one notice), and :attr:`min_severity` / :attr:`cooldown_s` do not apply. Without the ladder,
    each alert on a confident transcript is considered (low-confidence ones never trigger
    automatic action). The TextRoom room has the alert's room id (created if missing)."""

    enabled: bool = False
    """Post host warnings into the room (see above)."""
    min_severity: Literal["low", "medium", "high", "critical"] = "high"
    """Without the ladder: least severe alert category that warns the host in the room."""
    janus_url: str | None = None
    """Janus HTTP API root whose TextRoom plugin carries the notices. Unset: ``janus.url``."""
    cooldown_s: float = Field(default=60.0, ge=0)
    """Without the ladder: at most one notice per room per this many seconds (later alerts in
    it are skipped and counted as ``cooldown``), so a heated room is not flooded."""


class VadSettings(BaseModel):
    """Speech segmentation (``ROOMWARDEN_VAD__*``); see ``ingest.vad.VadParams``."""

    aggressiveness: int = Field(default=2, ge=0, le=3)
    """webrtcvad mode 0-3: higher rejects more non-speech (and more quiet speech)."""
    frame_ms: Literal[10, 20, 30] = 30
    """VAD frame length (webrtcvad accepts 10, 20 or 30 ms)."""
    pre_roll_ms: int = 300
    """Audio kept before detected onset, so the first syllable is not clipped."""
    hangover_ms: int = 450
    """Silence that ends an utterance. The main latency knob: alerts cannot come sooner."""
    min_speech_ms: int = 250
    """Voiced runs shorter than this are dropped (clicks, coughs)."""
    max_segment_s: float = 15.0
    """Long monologues are force-split here so alerts are not held back by a speaker who never
    pauses."""


class AsrSettings(BaseModel):
    """Speech recognition (``ROOMWARDEN_ASR__*``); see ``asr.recognizer.AsrParams``."""

    model: str = "tiny.en"
    """A registry name (``tiny.en``: bundled, verified by sha256) or a CTranslate2 model dir."""
    compute_type: str = "int8"
    """CTranslate2 compute type. int8 is ~2x faster than float32 on CPU at nearly equal WER."""
    cpu_threads: int = 2
    """Threads for one decode. Defaults to this machine's 2 cores."""
    beam_size: int = 1
    """Greedy decoding: a beam buys little accuracy for short utterances and costs latency."""
    language: str | None = "en"
    """Decode language; unset = detect per segment (needs a multilingual model). English-only
    models (``tiny.en``) always decode English."""
    room_languages: dict[str, str] = Field(default_factory=dict)
    """Per-room language hints, room id -> ISO 639-1 code (e.g. ``{"lobby-cn": "zh"}``); other
    rooms use ``language``. Hinted rooms are packed across speakers; detected ones decode one
    segment at a time (Whisper detects one language per window)."""
    pack_window_s: float = Field(default=28.0, ge=0, le=30)
    """Cross-speaker packing: segments waiting for the decoder share one Whisper window of up
    to this many seconds (3.3x the throughput of one-at-a-time on the sample room). 0 = off."""
    pack_gap_s: float = Field(default=0.6, ge=0.2, le=5)
    """Silence between packed segments; above Whisper's word-timestamp error, so every word is
    attributed to the right speaker."""
    pack_max_windows: int = Field(default=4, ge=1)
    """Packed windows decoded as one CTranslate2 batch (their decoder steps shared). More =
    more throughput under load; the first segment of a batch waits for all of it."""


class PolicySettings(BaseModel):
    """The rule pack (``ROOMWARDEN_POLICY__*``)."""

    rules: Path | None = None
    """Rule pack YAML. Unset: the default pack shipped in ``policy/packs/default.yaml``."""
    escalate: bool = True
    """Run alerts through the escalation ladder (``policy.escalation``: decaying risk per
    speaker and room, cooldowns), publish escalations on ``kafka.escalations_topic``, and warn
    hosts (in-room notice, webhooks) on its ``host_warning`` decisions only. In ``serve`` and in
    ``worker policy`` alike."""
    classifier: str = "builtin"
    """Abuse/toxicity text classifier: ``builtin`` (English: trained on Davidson et al., MIT;
    Chinese: on COLD, Apache-2.0; held-out numbers in ``bench/RESULTS.md``), ``none``, or the
    path of an artifact directory (``classifier.json`` + weights, as written by
    ``python -m policy.train_classifier``)."""
    classifier_sha256: str | None = None
    """Pin for a classifier artifact directory (sha256 of its ``classifier.json``)."""
    classifier_threshold: float = Field(default=0.9, ge=0, le=1)
    """Calibrated P(abusive) at which the classifier raises a ``review`` alert. 0.9: the
    probabilities are calibrated on datasets 50-83 % abusive, far more than a live room."""
    reload_interval_s: float = Field(default=2.0, ge=0)
    """With ``rules`` set: seconds between checks of the pack file for changes (and on
    ``SIGHUP``); a changed pack that loads is swapped in atomically, a broken one is logged
    (``roomwarden_policy_reloads_total{outcome="failed"}``) and the previous pack stays in
    force. ``0``: no polling (``SIGHUP`` still reloads)."""


class PipelineSettings(BaseModel):
    """Queues between stages (``ROOMWARDEN_PIPELINE__*``). Bounded, so memory is bounded."""

    segment_queue: int = Field(default=256, ge=1)
    """Most speech segments waiting for ASR."""
    segment_backlog_s: float = Field(default=120.0, gt=0)
    """Most seconds of speech waiting for ASR. Beyond it (or ``segment_queue``), the oldest
    waiting speech is shed (see ``overload``)."""
    overload: Literal["shed_oldest", "block"] = "shed_oldest"
    """When ASR falls behind: ``shed_oldest`` drops the oldest waiting speech and publishes it
    as a gap (reason ``asr_overload``) -- a live room cannot wait; ``block`` makes ingest wait
    (offline jobs; ``moderate`` always blocks)."""
    asr_in_flight: int = Field(default=16, ge=1)
    """Segments handed to the recognizer at once; it packs what it holds into shared windows,
    so this should cover about two windows (16 x ~3 s utterances)."""
    transcript_queue: int = 256
    """Transcripts waiting for policy and publishing."""
    asr: Literal["local", "kafka"] = "local"
    """Where speech is transcribed. ``local``: in this process (``serve`` loads the model and
    runs policy, as one process). ``kafka``: distributed mode -- ``serve`` loads no model and
    runs no policy; it publishes every segment (``alerts.segment_record``, key = room id) to
    ``asr_worker.segments_topic`` for ``roomwarden worker asr``, whose transcripts
    ``roomwarden worker policy`` turns into alerts. The backlog above still bounds what waits
    (now for Kafka): it only sheds (``asr_overload`` gaps) when Kafka is unreachable for long
    enough to fill it. ``demo`` and ``moderate`` need ``local``."""
    handoff_in_flight: int = Field(default=32, ge=1)
    """``asr = kafka``: segments handed to the Kafka producer and not yet acknowledged, at
    most. Acks take milliseconds, so this only binds while Kafka is unreachable: then segments
    wait in the backlog (bounded in seconds of speech, shed oldest-first) rather than in the
    producer's buffer (bounded only in records, up to 0.5 MB each)."""


class ConsumerGroupSettings(BaseModel):
    """What every consumer-group worker (``roomwarden worker ...``) shares: its group, the
    batch it polls, Kafka's group timeouts and its own ``/metrics`` (see
    ``roomwarden.worker_loop``)."""

    group_id: str
    """Consumer group: every worker of the group shares the input topic's partitions."""
    dlq_topic: str
    """Dead-letter topic: rejected records, unchanged, with ``roomwarden-dlq-*`` headers."""
    max_batch: int = Field(default=16, ge=1)
    """Records per poll, processed together and committed together; a crash re-processes at
    most one poll."""
    poll_timeout_ms: int = Field(default=500, gt=0)
    """How long one poll waits for records; also how late SIGTERM is noticed when idle."""
    fetch_max_wait_ms: int = Field(default=100, gt=0)
    """How long the broker may hold a fetch that has no data yet. Apache Kafka answers as
    soon as a record arrives; Tansu (the embedded broker) holds a fetch up to this long, which
    lands on the hop's latency (sample room, distributed mode: 0.02-0.26 s per hop at
    aiokafka's default of 500, at most 0.06 s at 100)."""
    session_timeout_ms: int = Field(default=10_000, gt=0)
    """A worker silent this long is dropped from the group and its partitions reassigned."""
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    """Heartbeats to the group coordinator (a third of the session timeout, by habit)."""
    max_poll_interval_ms: int = Field(default=300_000, gt=0)
    """A batch taking longer than this (Kafka down for output) makes the worker leave the
    group; its batch is then re-processed by another member."""
    revoke_wait_s: float = Field(default=30.0, ge=0)
    """On a rebalance, how long to wait for the batch in flight to be acked and committed
    before letting the partitions go (it is re-processed elsewhere if this runs out)."""
    metrics_host: str = "0.0.0.0"
    """Address of the worker's own ``/metrics`` and ``/healthz``."""
    metrics_port: int = Field(default=9464, ge=0)
    """Port of ``/metrics`` and ``/healthz`` (0 = any free port, logged)."""


class AsrWorkerSettings(ConsumerGroupSettings):
    """``roomwarden worker asr`` (``ROOMWARDEN_ASR_WORKER__*``): segments in, transcripts out
    (to ``kafka.transcripts_topic``); model from ``asr.*``, Kafka from ``kafka.*``."""

    group_id: str = "roomwarden-asr"
    """Consumer group: every ASR worker of the group shares the segments topic's partitions."""
    segments_topic: str = "roomwarden.segments.v1"
    """Topic of segment records (``alerts.segment_record``) to transcribe; also where ``serve``
    publishes segments when ``pipeline.asr = kafka``."""
    dlq_topic: str = "roomwarden.segments.dlq.v1"
    """Dead-letter topic for segment records: bad input (reason ``wrong_sample_rate``,
    ``empty_audio``, ...) or audio the recognizer failed on (``asr_failed``)."""
    max_batch: int = Field(default=16, ge=1)
    """Segments per poll, transcribed concurrently and committed together. The recognizer
    packs concurrent segments into shared windows, so larger polls go faster (sample room,
    tiny.en, 2 cores: 2.8 / 6.2 / 10.3 / 11.5 audio-s per wall-s at 1 / 8 / 16 / 32); a crash
    re-processes at most one poll. 16 matches ``pipeline.asr_in_flight``."""
    metrics_port: int = Field(default=9464, ge=0)
    """Port of the ASR worker's ``/metrics`` and ``/healthz`` (0 = any free port, logged)."""


AUDIT_DLQ_TOPIC = "roomwarden.audit.dlq.v1"


class AuditWorkerSettings(ConsumerGroupSettings):
    """``roomwarden worker audit`` (``ROOMWARDEN_AUDIT_WORKER__*``): the audit recorder. It
    follows ``kafka.transcripts_topic``, ``kafka.alerts_topic``, ``kafka.gaps_topic``,
    ``kafka.escalations_topic``, ``kafka.reviews_topic`` and ``kafka.evidence_topic``; the store
    is ``audit.*``."""

    group_id: str = "roomwarden-audit"
    """Consumer group of the recorders. One recorder per store is the usual deployment (a
    second one only takes over partitions when the first dies)."""
    dlq_topic: str = AUDIT_DLQ_TOPIC
    """Dead-letter topic: records that are not the event their topic carries (reason
    ``not_a_cloudevent``, ``wrong_type``, ``bad_data``, ``checksum_mismatch``, ...) or that the
    store refused (``store_refused``), unchanged, with ``roomwarden-dlq-*`` headers."""
    max_batch: int = Field(default=256, ge=1)
    """Records per poll, appended in one store transaction and committed together: one disk
    flush per poll, so larger polls append faster; a crash re-delivers at most one poll (its
    entries are skipped as already recorded). Evidence records are up to 1 MB each, so this
    also bounds memory: Kafka's fetch limits usually bind first."""
    metrics_port: int = Field(default=9466, ge=0)
    """Port of the recorder's ``/metrics`` and ``/healthz`` (0 = any free port, logged)."""


class PolicyWorkerSettings(ConsumerGroupSettings):
    """``roomwarden worker policy`` (``ROOMWARDEN_POLICY_WORKER__*``): transcripts in (from
    ``kafka.transcripts_topic``), alerts out (to ``kafka.alerts_topic``); rules from
    ``policy.rules``; in-room notices from ``notices.*``."""

    group_id: str = "roomwarden-policy"
    """Consumer group of the policy workers."""
    dlq_topic: str = "roomwarden.transcripts.dlq.v1"
    """Dead-letter topic for transcript records that cannot be read (reason
    ``not_a_transcript``, ``bad_data``, ...) or that policy failed on (``policy_failed``)."""
    max_batch: int = Field(default=64, ge=1)
    """Transcripts per poll. Policy takes microseconds per transcript, so a batch costs one
    round of acks and one commit; larger batches mean fewer commits, more re-processed
    transcripts after a crash (their alerts dedupe by id)."""
    metrics_port: int = Field(default=9465, ge=0)
    """Port of the policy worker's ``/metrics`` and ``/healthz`` (0 = any free port)."""


class LogSettings(BaseModel):
    """Logging (``ROOMWARDEN_LOG__*``)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: human-readable on a terminal, JSON lines otherwise."""


class Settings(BaseSettings):
    """The root of the settings tree."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMWARDEN_", env_nested_delimiter="__", extra="forbid"
    )

    instance: str = "roomwarden-0"
    """Name of this process; becomes the CloudEvents ``source`` (``/roomwarden/<instance>``)."""
    kafka: KafkaSettings = KafkaSettings()
    http: HttpSettings = HttpSettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    janus: JanusSettings = JanusSettings()
    whep: WhepSettings = WhepSettings()
    notices: NoticeSettings = NoticeSettings()
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    """Host warnings as Standard Webhooks to each room's host endpoint (``alerts.webhooks``)."""
    vad: VadSettings = VadSettings()
    asr: AsrSettings = AsrSettings()
    policy: PolicySettings = PolicySettings()
    pipeline: PipelineSettings = PipelineSettings()
    asr_worker: AsrWorkerSettings = AsrWorkerSettings()
    """``roomwarden worker asr`` (``ROOMWARDEN_ASR_WORKER__*``, TOML ``[asr_worker]``)."""
    policy_worker: PolicyWorkerSettings = PolicyWorkerSettings()
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """The audit log (``alerts.audit``): where it lives, its signing key, retention."""
    audit_worker: AuditWorkerSettings = AuditWorkerSettings()
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """The operator console (``roomwarden console``): listen address, access tokens, sessions."""
    """``roomwarden worker policy`` (``ROOMWARDEN_POLICY_WORKER__*``, TOML ``[policy_worker]``)."""
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get(CONFIG_ENV)
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        sources.append(file_secret_settings)
        return tuple(sources)


class ConfigFileError(Exception):
    """The TOML file named by ``--config`` is missing or unreadable."""


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """Build settings from env + an optional TOML file, with explicit overrides on top."""
    if config is not None:
        if not config.is_file():
            raise ConfigFileError(f"config file {config} does not exist")
        os.environ[CONFIG_ENV] = str(config)
    elif (env_config := os.environ.get(CONFIG_ENV)) and not Path(env_config).is_file():
        raise ConfigFileError(f"{CONFIG_ENV}={env_config}: no such file")
    return Settings(**overrides)  # type: ignore[arg-type]
