"""`make bench`: cold start, latency and throughput of the functions, each beside a baseline.

The bench starts its own emulator suite on free ports, measures, prints one table and writes
bench-results.json at the repository root. Every figure is measured next to a baseline taken in the
same run on the same machine (a bare functions-framework function, a raw emulator round trip), and
reported with the ratio measured / baseline: the machine is noisy, absolute numbers mean little.

Sections (run `python -m tests.bench --help` for the knobs):

1. cold start of each deployable function (import + first answer) vs a hello-world function;
2. GET /tenants/{id} latency and throughput vs a function doing one Firestore get;
3. POST /tenants until its audit entry is queryable vs a raw Pub/Sub publish -> push round trip;
4. sustained audit entries/s for one tenant vs raw Firestore creates/s;
5. AccessStore.decide in-process (warm cache, after invalidate()) vs the ID token verification it
   follows (check_revoked, Auth emulator): what authorization adds on top of authentication;
6. a bulk import of 10,000 users (CSV, HTTP API, Cloud Tasks chunks) until the job completes, rows/s
   vs the emulator's raw rate of WriteBatch commits of 500 creates;
7. outbound webhooks: 20 Contact Created events fanned out to 100 endpoints on a local receiver,
   deliveries/s vs the same receiver hit directly, and signing.verify vs a bare HMAC-SHA256.

Every loop is bounded in count and in time; everything started is stopped by process group.
"""
