"""Domain logic that needs no broker: leads, campaigns, rollups, backups, course content, PDF text."""
