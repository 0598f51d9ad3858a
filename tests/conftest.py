"""Fixtures only. The shared ones (stub_broker, stub_worker, db, redis_client, cep_services)
come from the package's own pytest plugin, ``cep_automation.testing``."""
