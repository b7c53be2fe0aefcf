"""The prod stack deployed for real on the local Kubernetes cluster, end to end.

Run with ``make e2e-prod`` after ``make cluster`` (or ``python -m
tools.e2e_prod`` with the toolchain's env.sh sourced). On an ephemeral stack
configured as ``Pulumi.prod.yaml`` plus ``cluster/prod-stack.yaml`` (what
this machine needs) plus the few settings this test adds to see things
happen in seconds (listed in ``TEST_OVERRIDES``), it:

1. builds the images, pushes them to the cluster's registry and pulls them
   onto the node, previews with the project's policy pack against the live
   cluster (a mandatory violation fails), and runs ``up`` with the real
   engine and kubernetes provider (every Deployment, Job and the operator's
   chart awaited); a second ``up`` and a ``preview --refresh`` must change
   nothing;
2. checks Pod Security "restricted" on both namespaces: every pod admitted,
   a violating pod rejected;
3. checks the NetworkPolicies from probe pods wearing each workload's
   labels (declared flows open, undeclared flows closed by egress), from
   an unlabelled pod (nothing open) and from a pod in another namespace
   (only the gateway open: the ingress policies close the rest);
4. runs datagen -> features -> train through the jobs CLI as
   SparkApplications of the real Spark Operator, sees each job's executors
   go 0 -> maxExecutors -> 0, runs the CSV group-by-count job on a CSV, and
   sees a scheduled application's first run complete (a failed run fails);
5. serves predictions through the Ingress (TLS by the cluster's controller)
   and through the gateway Service: 200, 401, 429; /metrics and /readyz
   hidden from the Ingress;
6. checks Prometheus: every configured job with its targets up, every
   catalogued metric present, and a stopped workload's alert firing and
   active in Alertmanager;
7. deletes an inference pod under load (5xx counted), shows a pod whose
   model cannot load is not Ready while liveness holds, and rotates the
   gateway's API key through config;
8. lands a file of other columns with ``jobs ingest`` (quarantined with
   its reason, the driver running on), then files while deleting the
   streaming job's driver pod (the stream runs by default in prod): after
   the operator restarts it, every event
   is in the events table once and in each touched entity's online
   counts, and the batch ``features`` job gives every touched entity the
   stream's values;
9. keeps a Redis key and a MinIO object across pod deletion and across
   ``destroy`` + ``up``, and lists what ``destroy`` leaves;
10. unless ``--no-peer``, times ``kubectl apply --server-side`` +
    ``kubectl wait`` of the same rendered manifests, in namespaces of their
    own, as the peer of the first ``up``. Both start from a node holding
    every image (step 1 pulls them there before the first ``up``). A
    measurement, not a check: a peer not ready within 180 s is reported as
    not measured.

A summary table ends the run; the exit status is non-zero on any failure.
"""
