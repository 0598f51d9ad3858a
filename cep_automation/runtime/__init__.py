"""The job runtime: the actor class, the one enqueue path, the job handle, steps, integrations and alerts."""
