"""Federation by aggregates (issue 16): each enterprise runs its own shopfloor and pushes
to a cluster server only what the comparison needs, per day and month: equipment counts
by class, the additive OEE totals and data completeness. The cluster never sees a sample.

- ``config``: the enterprise's ``federation:`` section and the cluster server's config;
- ``periods``: day, month and quarter labels and bounds in one time zone;
- ``aggregates``: one enterprise's aggregates of a period, from the server's own metric
  code (``oee.totals_by``, ``digitalization.counts``), and the wire model ``Aggregate``;
- ``uplink``: the durable outbox (SQLite) and the thread that pushes it over HTTP(S);
- ``store``: the cluster's SQLite of aggregates (one row per enterprise and period);
- ``indicators``: the cluster's history, pooled and mean of enterprises, published
  figures, gaps and most improved; ``export``: CSV and XLSX of them;
- ``cluster``: the cluster server (``create_cluster_app``, ``run``), its views in
  ``cluster_routes``; ``enterprise``: the uplink an enterprise server starts; ``db``: how
  the SQLite files are opened.
"""
