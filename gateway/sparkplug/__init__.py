"""The gateway's Sparkplug B host side: ``config`` (the ``sparkplug:`` section and its
mapping), ``mapping`` (metrics -> samples), ``sessions`` (births and aliases per edge node),
``host`` (one message -> rows or a reject, rebirth requests), ``link`` (the MQTT side:
subscriptions, STATE, NCMDs) used by ``gateway/service.py``.
"""
