"""The web console: brokers, topics, messages, consumer groups and replication health.

It talks to the cluster only over the Kafka protocol (confluent-kafka's AdminClient,
Consumer and Producer; kafka-python for DescribeLogDirs), so it works against Apache
Kafka as well as Moldau. Layers, one way:

- pure view data, one module per screen (`brokers`, `topics`, `messages`, `produce`,
  `groups`, `replication`; `inputs` parses form fields): turns what the cluster said
  into rows to show, and what a user typed into validated requests;
- `gateway`: every blocking call to the cluster, each bounded by a timeout;
- `app` (Starlette + Jinja2), `live` (server-sent events), `server` (uvicorn): the web.
  Blocking calls run on worker threads (`offload`), so a slow broker never stalls the
  event loop: the page shows a timeout instead.
"""
