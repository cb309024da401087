"""Alerts stage: verdicts and transcripts out to Kafka as CloudEvents.

May import ``policy``, ``asr`` and ``ingest`` types; nothing imports ``alerts`` but the
composition root.
"""
