"""The `orderly` command line: the commands (`commands`), their arguments and output, the store's read-only
views (`queries`) and `orderly doctor`. Data on stdout, messages on stderr, one line per error."""
