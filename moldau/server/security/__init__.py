"""Security: TLS listeners and SASL authentication (PLAIN, SCRAM-SHA-256/512), Kafka's way.

`jaas.py` parses Kafka's JAAS configuration text, `plain.py` and `scram.py` are the SASL
mechanisms' server sides (pure: bytes in, bytes out), `tls.py` builds `ssl.SSLContext`s
from Kafka's `ssl.*` properties, `listener.py` gathers what each listener needs,
`authenticator.py` runs a SASL listener's connections until they are authenticated.
"""
