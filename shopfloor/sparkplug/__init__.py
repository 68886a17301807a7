"""Sparkplug B (Eclipse Sparkplug 3.0) shared by the edge node and the gateway's host side.

``schema``: the protobuf ``Payload`` message, loaded from the compiled Tahu schema beside
it (``sparkplug_b.proto`` -> ``sparkplug_b.desc``); ``payload``: topics, datatypes, values,
the quality and engineering-unit properties, STATE and rebirth payloads.
"""
