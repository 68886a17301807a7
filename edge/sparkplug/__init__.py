"""The edge agent as a Sparkplug B edge node (``sparkplug:`` in the edge config):
``config`` (the section), ``bdseq`` (the birth/death sequence, persisted), ``book`` (metric
definitions, aliases, datatypes and current values -> birth and data payloads), ``node``
(the MQTT session: births, data from the outbox, rebirth, the primary host's STATE) and
``ports`` (what the agent publishes through, one per device).
"""
