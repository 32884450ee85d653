"""Authorization (Kafka's AclAuthorizer), pure: the ACL model (`acl.py`), the decision
(`authorizer.py`), which checks each API makes (`operations.py`), the ZooKeeper storage
format of ACLs (`store.py`), and principals (`principal.py`, `ssl_principal_mapper.py`).
Imports only moldau.protocol; the server loads, watches and persists ACLs."""
