"""What the middleware writes and the CLI and web read: idempotency, job state, audit,
dead letters, effects, metrics."""
