"""The ingest boundary: the HTTP client of the two remotes, the bytes of a page into records or columns, the
paging rules, and the pandera schemas that decide what is stored and what is quarantined (CONTRACT.md section 1)."""
