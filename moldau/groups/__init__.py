"""Consumer groups: the classic group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup
state machine), committed offsets, and the records of ``__consumer_offsets``. Pure logic:
no sockets, no files, no clock; see :mod:`moldau.groups.coordinator`."""
