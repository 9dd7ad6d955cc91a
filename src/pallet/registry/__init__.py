"""The OCI distribution-spec, both sides: `server` (pallet registry) and `client` (pull,
push, auth). Shared here: the spec's error codes, names and byte ranges."""
