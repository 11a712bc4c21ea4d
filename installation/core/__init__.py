"""core/: what every room shares and nothing else. The typed messages that flow between
stages, the channels that carry them (latest-value slots, bounded queues), the worker thread
base and the supervisor that restarts stalled stages, the event log and the one event hook,
the small interfaces behind which every outside thing sits, the download policy, the device
rule and the text rules. Imports no other room."""
