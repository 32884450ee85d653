"""How a SASL exchange fails, as Kafka tells them apart."""


class SaslError(Exception):
    """The exchange failed; the detail is for the broker's log only. The client gets
    Kafka's generic "Authentication failed during authentication due to invalid
    credentials with SASL mechanism <m>" (which does not say whether the user exists)."""


class SaslAuthenticationError(SaslError):
    """The exchange failed with a message Kafka sends to the client as is."""
