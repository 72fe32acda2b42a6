"""The tiers an API key may have (cheap to import: the CLI's help lists them)."""

TIERS = ("anonymous", "free", "pro", "enterprise")
