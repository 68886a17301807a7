"""OPC UA: config models (``config``), status and timestamp mapping (``codec``), session
set-up (``client``), the driver (``driver.OpcUaDriver``), and the ``edge discover`` and
``edge cert`` commands (``discover``, ``certs``)."""
