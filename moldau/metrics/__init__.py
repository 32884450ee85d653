"""Prometheus metrics with the names Kafka's JMX exporter and kafka_exporter produce, so
existing Grafana dashboards work unchanged.

- `registry.py`: counters, gauges and summaries, updated from the event loop with no
  locks, and the Prometheus text exposition (format 0.0.4).
- `kafka.py`: Kafka's metrics by their exported names, with one method per event the
  broker reports (a produce appended, a request answered, an ISR shrank...), and the
  gauges computed at scrape time from a `BrokerSnapshot` the broker hands over.
- `http.py`: the `/metrics` endpoint on an asyncio server.

Nothing here imports the broker: the broker calls in (see `kafka.BrokerMetrics`).
"""
