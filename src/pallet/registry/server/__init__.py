"""`pallet registry`: a distribution-spec server over the content store."""
