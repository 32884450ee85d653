"""Client quotas (Kafka's ClientQuotaManager), pure: which quota applies to a (user,
client id) and how long a client over it is throttled."""
