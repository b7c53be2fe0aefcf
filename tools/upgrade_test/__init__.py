"""A stack deployed by the previous release, updated in place by this checkout, for real.

Run with ``make upgrade-test`` (or ``python -m tools.upgrade_test --tier
dev|prod`` with the toolchain's env.sh sourced; ``prod`` needs ``make
cluster``). In a state backend of its own (a temporary directory), it:

1. checks out the previous release (the newest released version in
   CHANGELOG.md and the commit it names) as a git worktree, and deploys a
   throwaway stack with that program, configured like the end-to-end runs
   (free host ports and stand-ins on dev; the cluster's overrides and a
   namespace of its own on prod);
2. writes data: an object in the raw and lake buckets, online features and
   a marker key in Redis, a model in the registry; a prediction through the
   gateway must answer with that model;
3. previews this checkout's program on the same stack and state: every
   step is counted, and no step may delete or replace anything (volumes,
   claims, namespaces and generated passwords above all);
4. runs ``up`` with this checkout while a steady load of predictions goes
   through the gateway: every one must answer 200;
5. checks that the data and the model are intact, that predictions still
   answer, that every output of the old stack (the credentials among them)
   is unchanged and that the new outputs say where the platform is
   deployed, and that a second preview changes nothing;
6. destroys the stack with its data (``purgeOnDestroy``).

Whatever happens, the stack, its data, the worktree and the state are
removed at the end. A summary with the step counts and timings ends the
run; the exit status is non-zero on any failure.
"""
