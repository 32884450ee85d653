"""Fault injection (Jepsen-style) for Moldau: hosts in network namespaces, faults with
their heals, a workload that records a history, and a pure checker.

`history.py` (the JSON-lines format) and `checker.py` (a history in, anomalies out) are
pure; `netns.py` (hosts on a bridge), `faults.py`, `workload.py` and `runner.py` act on
the machine and need root.
"""
