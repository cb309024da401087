"""The operator console: a web page with the live alert stream, reviews and the auditor export.

Modules: :mod:`~alerts.console.settings` (``ConsoleSettings``), :mod:`~alerts.console.auth`
(tokens, sessions, roles), :mod:`~alerts.console.feed` (recent alerts and the SSE fan-out),
:mod:`~alerts.console.risk` (per-room risk view), :mod:`~alerts.console.live` (the Kafka tail),
:mod:`~alerts.console.history` (reading the audit store), :mod:`~alerts.console.reviews`
(review events on ``roomwarden.reviews.v1``), :mod:`~alerts.console.app` (the aiohttp app) and
``static/`` (one page, vanilla JS and CSS, served locally).
"""
