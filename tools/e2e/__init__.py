"""The dev stack deployed for real on the local Docker engine, end to end.

Run with ``make e2e`` (or ``python -m tools.e2e`` with the toolchain's
env.sh sourced). On an ephemeral stack that takes ``Pulumi.dev.yaml`` plus
what this machine needs (free host ports; stand-ins for Redis and
Prometheus and no Grafana when those official images cannot be had), it:

1. builds the project's images and brings the stack up; every container
   must report healthy;
2. submits ``datagen`` -> ``features`` -> ``train`` through the jobs CLI to
   the stack's Spark cluster (S3A to MinIO); features must be in Redis and
   the model and ``LATEST`` in MinIO;
3. calls the gateway: a known entity scores with the new model's version,
   no key is 401, a malformed body 4xx, a burst over the limit 429;
4. asks Prometheus for its targets (all up) and for every metric the alert
   rules and the dashboard read (each has series), and, if deployed,
   Grafana for the provisioned dashboard;
5. runs ``up`` again: zero changes;
6. kills the inference process: the gateway answers 5xx quickly, the
   container is restarted, predictions resume; replaces the Redis and MinIO
   containers: their data is still there;
7. stops the gateway's container: its ServiceDown alert reaches
   Alertmanager (through its API); ``refresh`` drops the stopped container
   from the state and ``up`` brings it back;
8. turns the streaming job on through config and ``up``: a file of other
   columns landed with ``jobs ingest`` is quarantined with its reason;
   files land while the stream's driver is killed, and every event is
   then in the events table once and in each touched entity's online
   counts; the batch ``features`` job gives every touched entity the
   stream's values; the freshness benchmark
   (``benchmarks/stream/freshness.py``) runs;
9. destroys the stack: no container or network left, data volumes kept
   (then removed by the test, which made them).

Every running container must have a read-only root filesystem, and its
files under /run/secrets must belong to its user with mode 0400.

A summary table of timings ends the run; the exit status is non-zero on
any failure.
"""
