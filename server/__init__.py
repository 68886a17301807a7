"""shopfloor server: the metrics API and dashboard (``app``), its routes (``api/``), the
OEE and digitalization computations beside them and the Numba kernels (``kernels/``)."""
