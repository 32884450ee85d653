"""Running Moldau clusters on this machine: a real ZooKeeper and broker processes.

`zookeeper_process` finds and starts Apache ZooKeeper; `local` is what `moldau cluster
up|status|down` does with a directory holding one ZooKeeper and N brokers.
"""
