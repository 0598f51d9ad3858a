"""Development tooling, never imported by production code: embedded servers, demo data and demo services."""
