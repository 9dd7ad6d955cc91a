"""The registry client: resolve, pull into the content store, push from it, and the auth
and host configuration they need. Works without a daemon (the CLI drives it directly)."""
