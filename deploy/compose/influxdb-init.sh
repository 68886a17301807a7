#!/bin/sh
# Runs once when InfluxDB 2.x initialises: map the bucket to a v1 database so the
# server's InfluxQL reads (/query) find it.
set -eu
bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
influx v1 dbrp create --bucket-id "$bucket_id" --db "$DOCKER_INFLUXDB_INIT_BUCKET" \
  --rp autogen --default
