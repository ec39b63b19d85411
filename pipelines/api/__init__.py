"""The REST API (/api/v1/): the same acts as the operations UI, for scripts and other systems.

Every view calls the functions the UI calls (discovery, the redrive service, the incident transitions,
the trace lookup, the silences' compare-and-set), asks `pipelines.access` about every object through
its pipeline (not visible: 404; visible but not permitted, by the user or the token's scopes: 403),
writes the audit trail with `through=API`, and answers every error as one JSON shape
(`pipelines.api.errors`). Tokens are issued and revoked in the admin only (`pipelines.admin.tokens`).
"""
